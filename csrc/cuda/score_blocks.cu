// score_blocks op, CUDA. A[b, i, :] = (1/Hq) sum_h softmax_j(<q[h, i], k[h/g, j]> * scale).
// Two tile kernels, no per-head logits in global memory:
//   1. row statistics: CTA (row tile, head, batch) sweeps all key-block tiles and keeps an
//      online (max, sum) per row; writes offset = max + log2(sum) (log2 domain), one float
//      per (batch, head, row) into a stream-ordered workspace (B * Hq * rows floats);
//   2. scores: CTA (col tile, row tile, batch) loops over the heads, recomputes the logits
//      and accumulates exp2(logit - offset) in registers; one store per output.
// Row normalization: each head's softmax row sums to 1, so the head sum of a row is Hq up to
// rounding (~1e-7 relative); dividing by Hq is the contract's "divide by its sum" without a
// third pass. Kernel-only: no ATen.
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/params.h"
#include "sketchwalk/sketch_score.cuh"

namespace sketchwalk {
namespace {

using Traits = ScoreTileTraits;

__global__ void __launch_bounds__(Traits::kThreads)
    score_row_stats_kernel(const ScoreBlocksParams p, float* __restrict__ row_offset) {
  __shared__ __align__(16) float q_s[Traits::kTileK][Traits::kSmemStride];
  __shared__ __align__(16) float k_s[Traits::kTileK][Traits::kSmemStride];
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
  const int row0 = blockIdx.x * Traits::kTileRows;
  const int head = blockIdx.y;
  const int batch_idx = blockIdx.z;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const float* q = p.q_sketch + batch_idx * p.q_batch_stride + head * p.q_head_stride +
                   row0 * p.q_row_stride;
  const float* k = p.k_sketch + batch_idx * p.k_batch_stride + kv_head * p.k_head_stride;
  const int rows_valid = min(Traits::kTileRows, p.rows - row0);
  const float scale2 = p.logit_scale * kLog2e;

  float run_max[4], run_sum[4];
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    run_max[a] = -INFINITY;
    run_sum[a] = 0.f;
  }

  for (int col0 = 0; col0 < p.cols; col0 += Traits::kTileCols) {
    const int cols_valid = min(Traits::kTileCols, p.cols - col0);
    float acc[4][4] = {};
    for (int k0 = 0; k0 < p.sketch_dim; k0 += Traits::kTileK) {
      __syncthreads();
      block::load_sketch_tile_transposed(q, p.q_row_stride, rows_valid, k0, p.sketch_dim, q_s,
                                         tid);
      block::load_sketch_tile_transposed(k + col0 * p.k_row_stride, p.k_row_stride, cols_valid,
                                         k0, p.sketch_dim, k_s, tid);
      __syncthreads();
      block::tile_product_accumulate(q_s, k_s, ty, tx, acc);
    }
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      float l[4];
      float tile_max = -INFINITY;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        l[c] = (tx * 4 + c < cols_valid) ? acc[a][c] * scale2 : -INFINITY;  // ragged last tile
        tile_max = fmaxf(tile_max, l[c]);
      }
      if (tile_max == -INFINITY) continue;
      float tile_sum = 0.f;
#pragma unroll
      for (int c = 0; c < 4; ++c) tile_sum += exp2f(l[c] - tile_max);
      thread::merge_softmax_stats(run_max[a], run_sum[a], tile_max, tile_sum);
    }
  }

  // Merge across the 16 threads (tx) sharing each row: lanes differ in bits 0..3.
#pragma unroll
  for (int a = 0; a < 4; ++a) {
#pragma unroll
    for (int off = 1; off < 16; off <<= 1) {
      const float other_max = __shfl_xor_sync(0xffffffffu, run_max[a], off);
      const float other_sum = __shfl_xor_sync(0xffffffffu, run_sum[a], off);
      thread::merge_softmax_stats(run_max[a], run_sum[a], other_max, other_sum);
    }
    const int r = ty * 4 + a;
    if (tx == 0 && r < rows_valid) {
      const int64_t at = (static_cast<int64_t>(batch_idx) * p.num_q_heads + head) * p.rows +
                         row0 + r;
      row_offset[at] = run_max[a] + log2f(run_sum[a]);
    }
  }
}

__global__ void __launch_bounds__(Traits::kThreads)
    score_blocks_kernel(const ScoreBlocksParams p, const float* __restrict__ row_offset) {
  __shared__ __align__(16) float q_s[Traits::kTileK][Traits::kSmemStride];
  __shared__ __align__(16) float k_s[Traits::kTileK][Traits::kSmemStride];
  const int tid = threadIdx.x;
  const int ty = tid / 16, tx = tid % 16;
  const int col0 = blockIdx.x * Traits::kTileCols;
  const int row0 = blockIdx.y * Traits::kTileRows;
  const int batch_idx = blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int rows_valid = min(Traits::kTileRows, p.rows - row0);
  const int cols_valid = min(Traits::kTileCols, p.cols - col0);
  const float scale2 = p.logit_scale * kLog2e;

  float prob[4][4] = {};
  for (int head = 0; head < p.num_q_heads; ++head) {
    const float* q = p.q_sketch + batch_idx * p.q_batch_stride + head * p.q_head_stride +
                     row0 * p.q_row_stride;
    const float* k = p.k_sketch + batch_idx * p.k_batch_stride +
                     (head / group) * p.k_head_stride + col0 * p.k_row_stride;
    float offset[4];
#pragma unroll
    for (int a = 0; a < 4; ++a) {
      const int r = ty * 4 + a;
      offset[a] = r < rows_valid
                      ? row_offset[(static_cast<int64_t>(batch_idx) * p.num_q_heads + head) *
                                       p.rows +
                                   row0 + r]
                      : 0.f;
    }
    float acc[4][4] = {};
    for (int k0 = 0; k0 < p.sketch_dim; k0 += Traits::kTileK) {
      __syncthreads();
      block::load_sketch_tile_transposed(q, p.q_row_stride, rows_valid, k0, p.sketch_dim, q_s,
                                         tid);
      block::load_sketch_tile_transposed(k, p.k_row_stride, cols_valid, k0, p.sketch_dim, k_s,
                                         tid);
      __syncthreads();
      block::tile_product_accumulate(q_s, k_s, ty, tx, acc);
    }
#pragma unroll
    for (int a = 0; a < 4; ++a) {
#pragma unroll
      for (int c = 0; c < 4; ++c) prob[a][c] += exp2f(fmaf(acc[a][c], scale2, -offset[a]));
    }
  }

  const float inv_heads = 1.f / static_cast<float>(p.num_q_heads);
  float* out = p.out + static_cast<int64_t>(batch_idx) * p.rows * p.cols;
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const int r = ty * 4 + a;
    if (r >= rows_valid) continue;
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int col = tx * 4 + c;
      if (col < cols_valid)
        out[static_cast<int64_t>(row0 + r) * p.cols + col0 + col] = prob[a][c] * inv_heads;
    }
  }
}

}  // namespace

cudaError_t run_score_blocks(const ScoreBlocksParams& params, cudaStream_t stream) {
  const ScoreBlocksParams& p = params;
  if (p.batch == 0 || p.rows == 0 || p.cols == 0) return cudaSuccess;
  if (p.num_q_heads < 1 || p.num_kv_heads < 1 || p.num_q_heads % p.num_kv_heads != 0 ||
      p.sketch_dim < 1 || p.batch > 65535 || p.num_q_heads > 65535)
    return cudaErrorInvalidValue;
  // Workspace: one float per (batch, head, row); stream-ordered, so graph-capturable.
  // TODO(score_blocks owner): take a caller-provided workspace once launch.h has one.
  float* row_offset = nullptr;
  const size_t bytes = sizeof(float) * static_cast<size_t>(p.batch) * p.num_q_heads * p.rows;
  cudaError_t err = cudaMallocAsync(reinterpret_cast<void**>(&row_offset), bytes, stream);
  if (err != cudaSuccess) return err;
  const dim3 stats_grid(ceil_div(p.rows, Traits::kTileRows), p.num_q_heads, p.batch);
  score_row_stats_kernel<<<stats_grid, Traits::kThreads, 0, stream>>>(p, row_offset);
  err = cudaGetLastError();
  if (err == cudaSuccess) {
    const dim3 grid(ceil_div(p.cols, Traits::kTileCols), ceil_div(p.rows, Traits::kTileRows),
                    p.batch);
    score_blocks_kernel<<<grid, Traits::kThreads, 0, stream>>>(p, row_offset);
    err = cudaGetLastError();
  }
  const cudaError_t free_err = cudaFreeAsync(row_offset, stream);
  return err != cudaSuccess ? err : free_err;
}

}  // namespace sketchwalk
