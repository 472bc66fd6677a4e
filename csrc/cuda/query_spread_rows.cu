// query_spread_rows op, CUDA (the rule: sketchwalk/query_spread.h). Two launches, no host
// synchronization (CUDA-graph capturable):
//  1. spread: one 128-thread CTA per (query block, row) on grid (width, rows). Per head, each
//     warp sums a quarter of the block's rows (lane l owns columns l, l + 32, ... of head_dim:
//     coalesced along the row) into per-lane column sums and a squared-norm sum; the CTA then
//     reduces the columns to the mean's squared norm. Float32 accumulation; q is read once.
//  2. choice: one 256-thread CTA per row. A candidate's rank is the count of candidates ranking
//     before it (O(n^2) compares over the row's spreads staged in shared memory, stopped once
//     the rank reaches the wanted count): 2048 blocks (128K tokens) is 4M compares per row.
// Kernel-only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/hadamard.cuh"
#include "sketchwalk/params.h"
#include "sketchwalk/query_spread.h"

namespace sketchwalk {
namespace {

constexpr int kSpreadWarps = 4;
constexpr int kColsPerLane = kMaxSpreadHeadDim / 32;
constexpr int kChoiceThreads = 256;
// Spreads staged per row in the choice kernel (48 KiB, the default dynamic shared memory):
// rows ranking more blocks (over 786K tokens at b = 64) read them from global memory.
constexpr int kMaxStagedSpreads = 48 * 1024 / sizeof(float);

SW_DEVICE float warp_sum(float x) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
  return x;
}

template <typename T>
__global__ void __launch_bounds__(kSpreadWarps * 32)
    query_spread_kernel(const QuerySpreadParams p) {
  __shared__ float col_sum[kSpreadWarps][kMaxSpreadHeadDim];
  __shared__ float sq_sum[kSpreadWarps];
  __shared__ float norm_part[kSpreadWarps];
  const int i = blockIdx.x, r = blockIdx.y;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const SpreadRowExtent row = spread_row_extent(p, r);
  if (i >= row.ranked) return;  // a block the choice never reads (CTA-uniform)
  // i < ranked <= ceil(len / b): t0 < len <= tokens fits an int.
  const int t0 = i * p.block_size;
  const int n = min(p.block_size, static_cast<int>(row.len) - t0);
  const T* base = static_cast<const T*>(p.q) +
                  (p.cu_seqlens != nullptr ? 0 : static_cast<int64_t>(r) * p.q_batch_stride) +
                  (row.start + t0) * p.q_token_stride;
  float total = 0.f;  // thread 0's sum over heads
  for (int h = 0; h < p.heads; ++h) {
    const T* head = base + static_cast<int64_t>(h) * p.q_head_stride;
    float col[kColsPerLane] = {};
    float sq = 0.f;
    for (int t = warp; t < n; t += kSpreadWarps) {
      const T* row = head + static_cast<int64_t>(t) * p.q_token_stride;
#pragma unroll
      for (int c = 0; c < kColsPerLane; ++c) {
        const int d = lane + 32 * c;
        if (d < p.head_dim) {
          float x[1];
          thread::load_as_float<T, 1>(row + d, x);
          col[c] += x[0];
          sq += x[0] * x[0];
        }
      }
    }
#pragma unroll
    for (int c = 0; c < kColsPerLane; ++c) {
      const int d = lane + 32 * c;
      if (d < p.head_dim) col_sum[warp][d] = col[c];
    }
    sq = warp_sum(sq);
    if (lane == 0) sq_sum[warp] = sq;
    __syncthreads();
    float part = 0.f;  // this thread's columns of ||mean||^2
    for (int d = threadIdx.x; d < p.head_dim; d += kSpreadWarps * 32) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < kSpreadWarps; ++w) s += col_sum[w][d];
      const float m = s / static_cast<float>(n);
      part += m * m;
    }
    part = warp_sum(part);
    if (lane == 0) norm_part[warp] = part;
    __syncthreads();
    if (threadIdx.x == 0) {
      float mean_norm = 0.f, mean_sq = 0.f;
#pragma unroll
      for (int w = 0; w < kSpreadWarps; ++w) mean_norm += norm_part[w], mean_sq += sq_sum[w];
      total += head_spread(mean_sq / static_cast<float>(n), mean_norm);
    }
    __syncthreads();  // the shared sums are the next head's
  }
  if (threadIdx.x == 0) {
    p.spread[static_cast<int64_t>(r) * p.width + i] = total / static_cast<float>(p.heads);
  }
}

template <bool kStaged>
__global__ void __launch_bounds__(kChoiceThreads) spread_choice_kernel(const QuerySpreadParams p) {
  extern __shared__ float staged_keys[];
  const int r = blockIdx.x;
  const int ranked = static_cast<int>(spread_row_extent(p, r).ranked);
  const int want = spread_rows_wanted(p.frac, ranked);
  const int lo = 1, hi = ranked - p.dense_last_q_blocks;  // the candidates staged
  const float* spread = p.spread + static_cast<int64_t>(r) * p.width;
  if constexpr (kStaged) {
    for (int j = lo + threadIdx.x; j < hi; j += kChoiceThreads) {
      staged_keys[j - lo] = spread_rank_key(spread[j]);
    }
    __syncthreads();
  }
  const auto key = [&](int j) {
    return kStaged ? staged_keys[j - lo] : spread_rank_key(spread[j]);
  };
  bool* out = p.dense_rows + static_cast<int64_t>(r) * p.width;
  for (int i = threadIdx.x; i < p.width; i += kChoiceThreads) {
    out[i] = spread_block_dense(key, i, ranked, p.dense_last_q_blocks, want);
  }
}

template <typename T>
cudaError_t launch(const QuerySpreadParams& p, cudaStream_t stream) {
  query_spread_kernel<T><<<dim3(p.width, p.rows), kSpreadWarps * 32, 0, stream>>>(p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  // The widest row's candidates bound the staging (every row has at most width blocks).
  if (p.width <= kMaxStagedSpreads) {
    spread_choice_kernel<true>
        <<<p.rows, kChoiceThreads, sizeof(float) * static_cast<size_t>(p.width), stream>>>(p);
  } else {
    spread_choice_kernel<false><<<p.rows, kChoiceThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t run_query_spread_rows(const QuerySpreadParams& params, DType dtype,
                                  cudaStream_t stream) {
  if (params.rows == 0 || params.width == 0) return cudaSuccess;
  if (params.head_dim > kMaxSpreadHeadDim || params.heads < 1 || params.block_size < 1 ||
      params.rows > kMaxGridYZ)
    return cudaErrorInvalidValue;  // the host wrapper rejects these first
  switch (dtype) {
    case DType::kFloat16: return launch<__half>(params, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(params, stream);
    case DType::kFloat32: return launch<float>(params, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace sketchwalk
