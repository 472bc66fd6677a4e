// window_block_scores op, CUDA: a decode step's block scores r from the cached window logits
// (update_window_logits.cu keeps them): r[b, j] = mean over (head, slot) of softmax_j.
//
//   window_row_offset_kernel: one warp per (batch, head, slot): offset = logsumexp_j logits.
//   window_column_sum_kernel: CTA per (32 blocks, batch); each lane owns one block j and
//     its warps stride the (head, slot) rows, summing exp(logit - offset) in a fixed order:
//     r is deterministic, no atomics.
// Kernel-only: no ATen.
#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/params.h"

namespace sketchwalk {
namespace {

constexpr int kOffsetWarps = 4;      // rows per CTA of the offset kernel
constexpr int kColumnWarps = 32;     // row strides per CTA of the column-sum kernel

template <bool kVec4>
__global__ void __launch_bounds__(kOffsetWarps * 32)
    window_row_offset_kernel(const WindowScoresParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kOffsetWarps + (threadIdx.x >> 5);
  if (row >= static_cast<int64_t>(p.batch) * p.num_q_heads * p.window_fill) return;
  const int s = static_cast<int>(row % p.window_fill);
  const int h = static_cast<int>((row / p.window_fill) % p.num_q_heads);
  const int b = static_cast<int>(row / p.window_fill / p.num_q_heads);
  const float* l = p.logits + b * p.l_batch_stride + h * p.l_head_stride + s * p.l_row_stride;
  const int n4 = kVec4 ? p.num_blocks / 4 : 0;  // [0, 4 n4) as float4, the rest one by one
  const float4* l4 = reinterpret_cast<const float4*>(l);
  float mx = -INFINITY;
#pragma unroll 4
  for (int j = lane; j < n4; j += 32) {
    const float4 v = l4[j];
    mx = fmaxf(mx, fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)));
  }
  for (int j = 4 * n4 + lane; j < p.num_blocks; j += 32) mx = fmaxf(mx, l[j]);
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  float sum = 0.f;  // second read: L1
#pragma unroll 4
  for (int j = lane; j < n4; j += 32) {
    const float4 v = l4[j];
    sum += (expf(v.x - mx) + expf(v.y - mx)) + (expf(v.z - mx) + expf(v.w - mx));
  }
  for (int j = 4 * n4 + lane; j < p.num_blocks; j += 32) sum += expf(l[j] - mx);
#pragma unroll
  for (int off = 16; off >= 1; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) p.row_offset[row] = mx + logf(sum);
}

__global__ void __launch_bounds__(kColumnWarps * 32)
    window_column_sum_kernel(const WindowScoresParams p) {
  __shared__ float partial[kColumnWarps][32];
  const int lane = threadIdx.x & 31;
  const int warp_idx = threadIdx.x >> 5;
  const int j = blockIdx.x * 32 + lane;
  const int b = blockIdx.y;
  const int rows = p.num_q_heads * p.window_fill;
  const float* offsets = p.row_offset + static_cast<int64_t>(b) * rows;
  float acc = 0.f;
  if (j < p.num_blocks) {
#pragma unroll 4
    for (int row = warp_idx; row < rows; row += kColumnWarps) {
      const int h = row / p.window_fill, s = row % p.window_fill;
      acc += expf(p.logits[b * p.l_batch_stride + h * p.l_head_stride + s * p.l_row_stride + j] -
                  offsets[row]);
    }
  }
  partial[warp_idx][lane] = acc;
  __syncthreads();
  if (warp_idx != 0 || j >= p.num_blocks) return;
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < kColumnWarps; ++w) total += partial[w][lane];
  p.r[static_cast<int64_t>(b) * p.num_blocks + j] = total / static_cast<float>(rows);
}

}  // namespace

cudaError_t run_window_block_scores(const WindowScoresParams& params, cudaStream_t stream) {
  const WindowScoresParams& p = params;
  if (p.batch == 0 || p.num_blocks == 0) return cudaSuccess;
  if (p.num_q_heads < 1 || p.window_fill < 1 || p.batch > kMaxGridYZ) return cudaErrorInvalidValue;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.num_q_heads * p.window_fill;
  const int64_t offset_grid = ceil_div<int64_t>(rows, kOffsetWarps);
  if (offset_grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const bool vec4 = reinterpret_cast<uintptr_t>(p.logits) % 16 == 0 && p.l_batch_stride % 4 == 0 &&
                    p.l_head_stride % 4 == 0 && p.l_row_stride % 4 == 0;
  if (vec4)
    window_row_offset_kernel<true>
        <<<static_cast<unsigned>(offset_grid), kOffsetWarps * 32, 0, stream>>>(p);
  else
    window_row_offset_kernel<false>
        <<<static_cast<unsigned>(offset_grid), kOffsetWarps * 32, 0, stream>>>(p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const dim3 grid(static_cast<unsigned>(ceil_div(p.num_blocks, 32)), static_cast<unsigned>(p.batch));
  window_column_sum_kernel<<<grid, kColumnWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace sketchwalk
