// update_block_matrix_ op, CUDA: in-place decode blend of the block transition matrix
// A [batch, n, n] (strided rows) with the decode scores r [batch, n], c = n - 1:
//   1. A[c, :] = blend(A[c, :], r); A[c, :] /= sum(A[c, :])
//   2. A[:, c] = blend(A[:, c], r)          (A[i, c] with r[i])
//   3. A[i, :] /= max(sum(A[i, :]), 1e-12) for every row
// Step 1 touches row c only and step 2 touches one entry per row, so each row's final value
// depends on that row (and r) alone: one launch, one warp per row, each warp reads its row
// (twice, three times for row c; the second read hits L1) and writes it once, 16 bytes per
// lane per access when rows are 16-byte aligned. Kernel-only.
#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"
#include "sketchwalk/block_matrix.cuh"
#include "sketchwalk/common.h"

namespace sketchwalk {
namespace {

constexpr int kRowWarps = 4;              // rows per CTA
constexpr float kMinRowSum = 1e-12f;      // step 3's clamp (the authors' code)

// A row other than c: its entry c becomes `corner` (step 2), then the row is divided by its
// sum (step 3). One read and one write of the row; with kVec4 the row is walked as float4
// (needs 16-byte aligned rows), the last n % 4 entries one by one. The corner replaces the
// buffer's value before it is summed: when a block opens, column c holds garbage.
template <bool kVec4>
__device__ __forceinline__ void normalize_row_with_corner(float* __restrict__ a, int n, int c,
                                                          float corner, int lane) {
  const int n4 = kVec4 ? n / 4 : 0;
  float4* a4 = reinterpret_cast<float4*>(a);
  const auto fix = [&](float4 v, int j4) {
    const int e = c - 4 * j4;  // the corner's component, if it falls in this vector
    if (e == 0) v.x = corner;
    if (e == 1) v.y = corner;
    if (e == 2) v.z = corner;
    if (e == 3) v.w = corner;
    return v;
  };
  float sum = 0.f;
#pragma unroll 4
  for (int j4 = lane; j4 < n4; j4 += 32) {
    const float4 v = fix(a4[j4], j4);
    sum += (v.x + v.y) + (v.z + v.w);
  }
  for (int j = 4 * n4 + lane; j < n; j += 32) sum += j == c ? corner : a[j];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  const float inv = 1.f / fmaxf(sum, kMinRowSum);
  // Every lane has read its entries before any is overwritten: each lane writes only the
  // entries it read itself.
#pragma unroll 4
  for (int j4 = lane; j4 < n4; j4 += 32) {
    float4 v = fix(a4[j4], j4);
    v.x *= inv, v.y *= inv, v.z *= inv, v.w *= inv;
    a4[j4] = v;
  }
  for (int j = 4 * n4 + lane; j < n; j += 32) a[j] = (j == c ? corner : a[j]) * inv;
}

template <bool kVec4>
__global__ void __launch_bounds__(kRowWarps * 32)
    update_block_matrix_kernel(float* __restrict__ transition, int64_t batch_stride,
                               int64_t row_stride, const float* __restrict__ r, int batch,
                               int n, float alpha) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowWarps + (threadIdx.x >> 5);
  if (row >= static_cast<int64_t>(batch) * n) return;  // warp-uniform
  const int i = static_cast<int>(row % n);
  const int batch_idx = static_cast<int>(row / n);
  const int c = n - 1;
  float* a = transition + batch_idx * batch_stride + i * row_stride;
  const float* rb = r + static_cast<int64_t>(batch_idx) * n;

  if (i != c) {
    const float corner = thread::blend_with_r(a[c], __ldg(rb + i), alpha);  // step 2
    __syncwarp();  // a[c] is read by every lane before the lane that owns it writes it
    normalize_row_with_corner<kVec4>(a, n, c, corner, lane);  // step 3
    return;
  }
  // Row c: step 1 (blend + normalize), step 2 on its diagonal entry, step 3.
  const auto blended = [&](int j) { return thread::blend_with_r(a[j], __ldg(rb + j), alpha); };
  const float inv1 = 1.f / warp::row_sum(blended, n, lane);  // no clamp in step 1
  const float corner = thread::blend_with_r(blended(c) * inv1, __ldg(rb + c), alpha);
  const auto value_at = [&](int j) { return j == c ? corner : blended(j) * inv1; };
  const float inv = 1.f / fmaxf(warp::row_sum(value_at, n, lane), kMinRowSum);
  __syncwarp();
  for (int j = lane; j < n; j += 32) a[j] = value_at(j) * inv;
}

}  // namespace

cudaError_t run_update_block_matrix(float* transition, int64_t batch_stride, int64_t row_stride,
                                    const float* r, int batch, int n, float alpha,
                                    cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(batch) * n;
  if (rows == 0) return cudaSuccess;
  const int64_t grid = ceil_div<int64_t>(rows, kRowWarps);
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const bool vec4 = reinterpret_cast<uintptr_t>(transition) % 16 == 0 && batch_stride % 4 == 0 &&
                    row_stride % 4 == 0;
  if (vec4)
    update_block_matrix_kernel<true><<<static_cast<unsigned>(grid), kRowWarps * 32, 0, stream>>>(
        transition, batch_stride, row_stride, r, batch, n, alpha);
  else
    update_block_matrix_kernel<false><<<static_cast<unsigned>(grid), kRowWarps * 32, 0, stream>>>(
        transition, batch_stride, row_stride, r, batch, n, alpha);
  return cudaGetLastError();
}

}  // namespace sketchwalk
