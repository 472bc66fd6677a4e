// score_blocks op, CUDA. A[b, i, :] = (1/Hq) sum_h softmax_j(<q[h, i], k[h/g, j]> * scale).
// Two tile kernels, no per-head logits in global memory:
//   1. row statistics: CTA (row tile, head, batch x key-tile split) sweeps its key-block tiles
//      and keeps an online (max, sum) per row; writes offset = max + log2(sum) (log2 domain),
//      one float per (batch, head, row), into a stream-ordered workspace (B * Hq * rows
//      floats); with several key-tile splits (decode: 32 window rows) the (max, sum) pairs
//      go to the workspace and a small kernel merges them in split order;
//   2. scores: CTA (col tile, row tile, batch x head split) loops over its heads, recomputes
//      the logits and accumulates exp2(logit - offset) in registers. Small problems split
//      the heads over CTAs (partial sums in the workspace, then a fixed-order sum kernel: the
//      result is deterministic); large ones (128K tokens: 1024 tiles) write A directly.
// Both kernels run one flat loop over (tile or head, 32-wide sketch chunk) steps with the
// next step's global loads in registers while the current chunk is multiplied.
// Row normalization: each head's softmax row sums to 1, so the head sum of a row is Hq up to
// rounding (~1e-7 relative); dividing by Hq is the contract's "divide by its sum" without a
// third pass. With col_counts (padded sketches of a ragged batch) batch row b's softmax runs
// over its first col_counts[b] columns (the row statistics sweep only those tiles) and the
// other columns are written as 0. Kernel-only: no ATen.
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/params.h"
#include "sketchwalk/sketch_score.cuh"

namespace sketchwalk {
namespace {

using Traits = ScoreTileTraits;

// The columns of batch row b's softmax: all, or col_counts[b] (padded sketches of a ragged
// batch; the host checks 1 <= count <= cols when it validates).
__device__ __forceinline__ int live_cols(const ScoreBlocksParams& p, int batch_idx) {
  return p.col_counts != nullptr ? min(p.cols, __ldg(p.col_counts + batch_idx)) : p.cols;
}

__global__ void __launch_bounds__(Traits::kThreads)
    score_row_stats_kernel(const ScoreBlocksParams p, int col_splits, float* __restrict__ row_offset,
                           float2* __restrict__ split_stats) {
  __shared__ __align__(16) float q_s[Traits::kTileK][Traits::kSmemStride];
  __shared__ __align__(16) float k_s[Traits::kTileK][Traits::kSmemStride];
  const int tid = threadIdx.x;
  const int ty = tid / Traits::kThreadCols, tx = tid % Traits::kThreadCols;
  const int row0 = blockIdx.x * Traits::kTileRows;
  const int head = blockIdx.y;
  const int batch_idx = blockIdx.z / col_splits;
  const int col_split = blockIdx.z % col_splits;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const float* q = p.q_sketch + batch_idx * p.q_batch_stride + head * p.q_head_stride +
                   row0 * p.q_row_stride;
  const float* k = p.k_sketch + batch_idx * p.k_batch_stride + kv_head * p.k_head_stride;
  const int rows_valid = min(Traits::kTileRows, p.rows - row0);
  const int batch_cols = live_cols(p, batch_idx);
  const float scale2 = p.logit_scale * kLog2e;
  const int chunks = ceil_div(p.sketch_dim, Traits::kTileK);
  const int col_tiles = ceil_div(batch_cols, Traits::kTileCols);
  const int tile_begin = col_split * col_tiles / col_splits;
  const int tile_end = (col_split + 1) * col_tiles / col_splits;
  const int steps = (tile_end - tile_begin) * chunks;

  float run_max[Traits::kMicroRows], run_sum[Traits::kMicroRows];
#pragma unroll
  for (int a = 0; a < Traits::kMicroRows; ++a) {
    run_max[a] = -INFINITY;
    run_sum[a] = 0.f;
  }

  float q_frag[Traits::kFragSize], k_frag[Traits::kFragSize];
  const auto fetch = [&](int step) {
    const int col0 = (tile_begin + step / chunks) * Traits::kTileCols;
    const int k0 = (step % chunks) * Traits::kTileK;
    block::fetch_sketch_tile(q, p.q_row_stride, rows_valid, k0, p.sketch_dim, tid, q_frag);
    block::fetch_sketch_tile(k + col0 * p.k_row_stride, p.k_row_stride,
                             min(Traits::kTileCols, batch_cols - col0), k0, p.sketch_dim, tid,
                             k_frag);
  };
  if (steps > 0) fetch(0);
  float acc[Traits::kMicroRows][Traits::kMicroCols] = {};
  for (int step = 0; step < steps; ++step) {
    __syncthreads();  // the previous chunk's readers are done
    block::store_sketch_tile_transposed(q_frag, q_s, tid);
    block::store_sketch_tile_transposed(k_frag, k_s, tid);
    __syncthreads();
    if (step + 1 < steps) fetch(step + 1);
    block::tile_product_accumulate(q_s, k_s, ty, tx, acc);
    if (step % chunks != chunks - 1) continue;

    const int cols_valid =
        min(Traits::kTileCols, batch_cols - (tile_begin + step / chunks) * Traits::kTileCols);
#pragma unroll
    for (int a = 0; a < Traits::kMicroRows; ++a) {
      float l[Traits::kMicroCols];
      float tile_max = -INFINITY;
#pragma unroll
      for (int c = 0; c < Traits::kMicroCols; ++c) {
        l[c] = (tx * Traits::kMicroCols + c < cols_valid) ? acc[a][c] * scale2 : -INFINITY;  // ragged last tile
        tile_max = fmaxf(tile_max, l[c]);
        acc[a][c] = 0.f;
      }
      if (tile_max == -INFINITY) continue;
      float tile_sum = 0.f;
#pragma unroll
      for (int c = 0; c < Traits::kMicroCols; ++c) tile_sum += exp2f(l[c] - tile_max);
      thread::merge_softmax_stats(run_max[a], run_sum[a], tile_max, tile_sum);
    }
  }

  // Merge across the 16 threads (tx) sharing each row: lanes differ in bits 0..3.
#pragma unroll
  for (int a = 0; a < Traits::kMicroRows; ++a) {
#pragma unroll
    for (int off = 1; off < Traits::kThreadCols; off <<= 1) {
      const float other_max = __shfl_xor_sync(0xffffffffu, run_max[a], off);
      const float other_sum = __shfl_xor_sync(0xffffffffu, run_sum[a], off);
      thread::merge_softmax_stats(run_max[a], run_sum[a], other_max, other_sum);
    }
    const int r = ty * Traits::kMicroRows + a;
    if (tx == 0 && r < rows_valid) {
      const int64_t at = (static_cast<int64_t>(batch_idx) * p.num_q_heads + head) * p.rows +
                         row0 + r;
      if (col_splits == 1) {
        row_offset[at] = run_max[a] + log2f(run_sum[a]);
      } else {  // merged by merge_row_stats_kernel
        split_stats[static_cast<int64_t>(col_split) * p.batch * p.num_q_heads * p.rows + at] =
            make_float2(run_max[a], run_sum[a]);
      }
    }
  }
}

// Column-split statistics -> offsets, one thread per (batch, head, row), splits in order.
__global__ void merge_row_stats_kernel(const float2* __restrict__ split_stats, int col_splits,
                                       int64_t count, float* __restrict__ row_offset) {
  const int64_t at = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (at >= count) return;
  float run_max = -INFINITY, run_sum = 0.f;
  for (int split = 0; split < col_splits; ++split) {
    const float2 st = split_stats[split * count + at];
    thread::merge_softmax_stats(run_max, run_sum, st.x, st.y);
  }
  row_offset[at] = run_max + log2f(run_sum);
}

// partial == nullptr: one split, write A scaled by 1/Hq; else write this split's raw head sum
// to partial[split][batch][row][col].
__global__ void __launch_bounds__(Traits::kThreads)
    score_blocks_kernel(const ScoreBlocksParams p, const float* __restrict__ row_offset,
                        int head_splits, float* __restrict__ partial) {
  __shared__ __align__(16) float q_s[Traits::kTileK][Traits::kSmemStride];
  __shared__ __align__(16) float k_s[Traits::kTileK][Traits::kSmemStride];
  const int tid = threadIdx.x;
  const int ty = tid / Traits::kThreadCols, tx = tid % Traits::kThreadCols;
  const int col0 = blockIdx.x * Traits::kTileCols;
  const int row0 = blockIdx.y * Traits::kTileRows;
  const int batch_idx = blockIdx.z / head_splits;
  const int split = blockIdx.z % head_splits;
  const int head_begin = split * p.num_q_heads / head_splits;
  const int head_end = (split + 1) * p.num_q_heads / head_splits;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows_valid = min(Traits::kTileRows, p.rows - row0);
  const int cols_valid = min(Traits::kTileCols, p.cols - col0);
  const int batch_cols = live_cols(p, batch_idx);
  const float scale2 = p.logit_scale * kLog2e;
  const int chunks = ceil_div(p.sketch_dim, Traits::kTileK);
  const int steps = (head_end - head_begin) * chunks;
  const float* q_batch = p.q_sketch + batch_idx * p.q_batch_stride + row0 * p.q_row_stride;
  const float* k_batch = p.k_sketch + batch_idx * p.k_batch_stride + col0 * p.k_row_stride;
  const float* offset_batch =
      row_offset + static_cast<int64_t>(batch_idx) * p.num_q_heads * p.rows + row0;

  float q_frag[Traits::kFragSize], k_frag[Traits::kFragSize];
  float next_offset[Traits::kMicroRows], offset[Traits::kMicroRows];
  const auto fetch = [&](int step) {
    const int head = head_begin + step / chunks;
    const int k0 = (step % chunks) * Traits::kTileK;
    block::fetch_sketch_tile(q_batch + head * p.q_head_stride, p.q_row_stride, rows_valid, k0,
                             p.sketch_dim, tid, q_frag);
    block::fetch_sketch_tile(k_batch + (head / group) * p.k_head_stride, p.k_row_stride,
                             cols_valid, k0, p.sketch_dim, tid, k_frag);
    if (k0 == 0) {
#pragma unroll
      for (int a = 0; a < Traits::kMicroRows; ++a) {
        const int r = ty * Traits::kMicroRows + a;
        next_offset[a] = r < rows_valid ? offset_batch[head * p.rows + r] : 0.f;
      }
    }
  };

  float prob[Traits::kMicroRows][Traits::kMicroCols] = {};
  float acc[Traits::kMicroRows][Traits::kMicroCols] = {};
  if (steps > 0) fetch(0);
  for (int step = 0; step < steps; ++step) {
    __syncthreads();
    block::store_sketch_tile_transposed(q_frag, q_s, tid);
    block::store_sketch_tile_transposed(k_frag, k_s, tid);
    if (step % chunks == 0) {
#pragma unroll
      for (int a = 0; a < Traits::kMicroRows; ++a) offset[a] = next_offset[a];
    }
    __syncthreads();
    if (step + 1 < steps) fetch(step + 1);
    block::tile_product_accumulate(q_s, k_s, ty, tx, acc);
    if (step % chunks != chunks - 1) continue;
#pragma unroll
    for (int a = 0; a < Traits::kMicroRows; ++a) {
#pragma unroll
      for (int c = 0; c < Traits::kMicroCols; ++c) {
        prob[a][c] += exp2f(fmaf(acc[a][c], scale2, -offset[a]));
        acc[a][c] = 0.f;
      }
    }
  }

  const float out_scale = partial == nullptr ? 1.f / static_cast<float>(p.num_q_heads) : 1.f;
  float* out = partial == nullptr
                   ? p.out + static_cast<int64_t>(batch_idx) * p.rows * p.cols
                   : partial + (static_cast<int64_t>(split) * p.batch + batch_idx) * p.rows * p.cols;
#pragma unroll
  for (int a = 0; a < Traits::kMicroRows; ++a) {
    const int r = ty * Traits::kMicroRows + a;
    if (r >= rows_valid) continue;
#pragma unroll
    for (int c = 0; c < Traits::kMicroCols; ++c) {
      const int col = tx * Traits::kMicroCols + c;
      if (col < cols_valid)
        out[static_cast<int64_t>(row0 + r) * p.cols + col0 + col] =
            col0 + col < batch_cols ? prob[a][c] * out_scale : 0.f;
    }
  }
}

// out[e] = (1/Hq) * sum_s partial[s][e], s in order: deterministic.
__global__ void sum_head_splits_kernel(const float* __restrict__ partial, int head_splits,
                                       int64_t elems, float inv_heads, float* __restrict__ out) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < elems;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int split = 0; split < head_splits; ++split) s += partial[split * elems + e];
    out[e] = s * inv_heads;
  }
}

// Splits for small grids: enough CTAs for ~2 per SM, capped by the work that can be split.
// H100 (132 SMs), Llama-3.1-8B (Hq 32):
//   score kernel over heads: 8K tokens = 2x2 tiles -> 32 splits; 32K = 8x8 -> 5; 128K -> 1;
//   statistics kernel over key tiles: prefill 8K has 2 row tiles x 32 heads = 64 CTAs -> 5,
//   capped at its 2 key tiles; 128K -> 1; decode (32 window rows x 2048 key blocks at 128K)
//   has 32 CTAs that would each sweep 32 key tiles in sequence -> 9 splits.
int splits_for_occupancy(int ctas, int max_splits) {
  const int sms = current_device_sm_count();
  const int want = ceil_div(2 * sms, ctas > 0 ? ctas : 1);
  return want < 1 ? 1 : (want > max_splits ? max_splits : want);
}

}  // namespace

cudaError_t run_score_blocks(const ScoreBlocksParams& params, cudaStream_t stream) {
  const ScoreBlocksParams& p = params;
  if (p.batch == 0 || p.rows == 0 || p.cols == 0) return cudaSuccess;
  if (p.num_q_heads < 1 || p.num_kv_heads < 1 || p.num_q_heads % p.num_kv_heads != 0 ||
      p.sketch_dim < 1 || p.batch > kMaxGridYZ || p.num_q_heads > kMaxGridYZ)
    return cudaErrorInvalidValue;
  const int col_tiles = ceil_div(p.cols, Traits::kTileCols);
  const int row_tiles = ceil_div(p.rows, Traits::kTileRows);
  int splits = splits_for_occupancy(col_tiles * row_tiles * p.batch, p.num_q_heads);
  if (static_cast<int64_t>(splits) * p.batch > kMaxGridYZ) splits = kMaxGridYZ / p.batch;
  int col_splits = splits_for_occupancy(row_tiles * p.num_q_heads * p.batch, col_tiles);
  if (static_cast<int64_t>(col_splits) * p.batch > kMaxGridYZ) col_splits = kMaxGridYZ / p.batch;

  // Workspace (stream-ordered, so graph-capturable): row offsets, then split partial sums.
  // TODO(score_blocks owner): take a caller-provided workspace once launch.h has one.
  const size_t offset_floats = static_cast<size_t>(p.batch) * p.num_q_heads * p.rows;
  const int64_t elems = static_cast<int64_t>(p.batch) * p.rows * p.cols;
  const size_t partial_floats = splits > 1 ? static_cast<size_t>(splits) * elems : 0;
  const size_t stats_pairs = col_splits > 1 ? static_cast<size_t>(col_splits) * offset_floats : 0;
  const auto round256 = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const size_t offset_bytes = round256(offset_floats * sizeof(float));
  const size_t partial_bytes = round256(partial_floats * sizeof(float));
  char* workspace = nullptr;
  cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(&workspace),
                                    offset_bytes + partial_bytes + stats_pairs * sizeof(float2),
                                    stream);
  if (err != cudaSuccess) return err;
  float* row_offset = reinterpret_cast<float*>(workspace);
  float* partial = splits > 1 ? reinterpret_cast<float*>(workspace + offset_bytes) : nullptr;
  float2* split_stats =
      col_splits > 1 ? reinterpret_cast<float2*>(workspace + offset_bytes + partial_bytes)
                     : nullptr;

  const dim3 stats_grid(row_tiles, p.num_q_heads, p.batch * col_splits);
  score_row_stats_kernel<<<stats_grid, Traits::kThreads, 0, stream>>>(p, col_splits, row_offset,
                                                                       split_stats);
  err = cudaGetLastError();
  if (err == cudaSuccess && col_splits > 1) {
    const int64_t count = static_cast<int64_t>(offset_floats);
    merge_row_stats_kernel<<<static_cast<unsigned>(ceil_div<int64_t>(count, 256)), 256, 0,
                             stream>>>(split_stats, col_splits, count, row_offset);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) {
    const dim3 grid(col_tiles, row_tiles, p.batch * splits);
    score_blocks_kernel<<<grid, Traits::kThreads, 0, stream>>>(p, row_offset, splits, partial);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess && splits > 1) {
    const int64_t blocks = ceil_div<int64_t>(elems, 256);
    sum_head_splits_kernel<<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), 256, 0,
                             stream>>>(partial, splits, elems,
                                       1.f / static_cast<float>(p.num_q_heads), p.out);
    err = cudaGetLastError();
  }
  const cudaError_t free_err = cudaFreeAsync(workspace, stream);
  return err != cudaSuccess ? err : free_err;
}

}  // namespace sketchwalk
