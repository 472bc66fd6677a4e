// Decode walk, CUDA (docs/spec.md section 6 step 3): state = r, then `degree` times
//   state[j] = (1 - beta) r[j] + beta * sum_i state[i] A[i, j],
// for one row per sequence. A is [batch, n, n] (row-major, strided rows); at 128K tokens it
// is 16 MB per sequence, so a step is one streaming pass over A.
//
// walk_step_kernel: CTA (128 columns, 128-row slice, batch); each thread owns one column and
//   sums its slice's rows (coalesced 512-byte row segments), writing one partial per slice.
//   The next step's CTAs rebuild the state of their rows from those partials (slices summed
//   in order), so a step is one launch and the result is deterministic (no atomics).
// walk_finish_kernel: the last step's partials -> out [batch, n].
// Kernel-only: no ATen.
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/common.h"

namespace sketchwalk {
namespace {

constexpr int kWalkCols = 128;  // threads per CTA, one column each
constexpr int kWalkRows = 128;  // rows of A per CTA

// state of row i from the previous step's partials (or r itself before the first step)
__device__ __forceinline__ float walk_state(const float* __restrict__ r,
                                            const float* __restrict__ prev, int slices, int n,
                                            int b, int i, float damping) {
  const float ri = r[static_cast<int64_t>(b) * n + i];
  if (prev == nullptr) return ri;
  float acc = 0.f;
  for (int s = 0; s < slices; ++s) acc += prev[(static_cast<int64_t>(b) * slices + s) * n + i];
  return (1.f - damping) * ri + damping * acc;
}

__global__ void __launch_bounds__(kWalkCols)
    walk_step_kernel(const float* __restrict__ r, const float* __restrict__ a,
                     int64_t a_batch_stride, int64_t a_row_stride, int n, int slices,
                     float damping, const float* __restrict__ prev, float* __restrict__ partial) {
  __shared__ float state[kWalkRows];
  const int b = blockIdx.z, slice = blockIdx.y;
  const int i0 = slice * kWalkRows;
  const int rows = min(kWalkRows, n - i0);
  for (int t = threadIdx.x; t < rows; t += kWalkCols)
    state[t] = walk_state(r, prev, slices, n, b, i0 + t, damping);
  __syncthreads();
  const int j = blockIdx.x * kWalkCols + threadIdx.x;
  if (j >= n) return;
  const float* col = a + b * a_batch_stride + i0 * a_row_stride + j;
  float acc = 0.f;
#pragma unroll 8
  for (int t = 0; t < rows; ++t) acc = fmaf(state[t], col[t * a_row_stride], acc);
  partial[(static_cast<int64_t>(b) * slices + slice) * n + j] = acc;
}

__global__ void walk_finish_kernel(const float* __restrict__ r, const float* __restrict__ prev,
                                   int slices, int n, int batch, float damping,
                                   float* __restrict__ out) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e >= static_cast<int64_t>(batch) * n) return;
  const int b = static_cast<int>(e / n), i = static_cast<int>(e % n);
  out[e] = walk_state(r, prev, slices, n, b, i, damping);
}

}  // namespace

size_t decode_walk_workspace_floats(int batch, int n) {
  return 2 * static_cast<size_t>(batch) * ceil_div(n, kWalkRows) * n;
}

cudaError_t run_decode_walk(const float* r, const float* transition, int64_t batch_stride,
                            int64_t row_stride, int batch, int n, int degree, float damping,
                            float* workspace, float* out, cudaStream_t stream) {
  if (batch == 0 || n == 0) return cudaSuccess;
  if (degree < 0 || batch > kMaxGridYZ) return cudaErrorInvalidValue;
  const int slices = ceil_div(n, kWalkRows);
  if (slices > kMaxGridYZ) return cudaErrorInvalidValue;
  const size_t half = static_cast<size_t>(batch) * slices * n;
  const float* prev = nullptr;
  for (int step = 0; step < degree; ++step) {
    float* partial = workspace + (step % 2) * half;  // ping-pong: step reads the other half
    const dim3 grid(static_cast<unsigned>(ceil_div(n, kWalkCols)), static_cast<unsigned>(slices),
                    static_cast<unsigned>(batch));
    walk_step_kernel<<<grid, kWalkCols, 0, stream>>>(r, transition, batch_stride, row_stride, n,
                                                     slices, damping, prev, partial);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    prev = partial;
  }
  const int64_t elems = static_cast<int64_t>(batch) * n;
  walk_finish_kernel<<<static_cast<unsigned>(ceil_div<int64_t>(elems, 256)), 256, 0, stream>>>(
      r, prev, slices, n, batch, damping, out);
  return cudaGetLastError();
}

}  // namespace sketchwalk
