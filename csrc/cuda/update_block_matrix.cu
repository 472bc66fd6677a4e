// update_block_matrix_ op, CUDA: in-place decode blend of the block transition matrix
// A [batch, n, n] (strided rows) with the decode scores r [batch, n], c = n - 1:
//   1. A[c, :] = blend(A[c, :], r); A[c, :] /= sum(A[c, :])
//   2. A[:, c] = blend(A[:, c], r)          (A[i, c] with r[i])
//   3. A[i, :] /= max(sum(A[i, :]), 1e-12) for every row
// Step 1 touches row c only and step 2 touches one entry per row, so each row's final value
// depends on that row (and r) alone: one launch, one warp per row, each warp reads its row
// (twice, three times for row c; the second read hits L1) and writes it once. Kernel-only.
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/block_matrix.cuh"
#include "sketchwalk/common.h"

namespace sketchwalk {
namespace {

constexpr int kRowWarps = 4;              // rows per CTA
constexpr float kMinRowSum = 1e-12f;      // step 3's clamp (the authors' code)

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
    const auto value_at = [&](int j) { return j == c ? corner : a[j]; };
    const float inv = 1.f / fmaxf(warp::row_sum(value_at, n, lane), kMinRowSum);
    __syncwarp();
    for (int j = lane; j < n; j += 32) a[j] = value_at(j) * inv;  // step 3
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
  update_block_matrix_kernel<<<static_cast<unsigned>(grid), kRowWarps * 32, 0, stream>>>(
      transition, batch_stride, row_stride, r, batch, n, alpha);
  return cudaGetLastError();
}

}  // namespace sketchwalk
