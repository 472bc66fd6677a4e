// update_block_sketch_ op, CUDA: one token's sketch folded into its key block's running mean,
// in place (params.h, UpdateBlockSketchParams): one thread per (batch, head, coordinate). The
// product, sum and quotient use the round-to-nearest intrinsics, which the compiler cannot
// contract into an FMA, so the result equals the CPU kernel's three rounded float32 operations
// (csrc/cpu/update_block_sketch_rows.h) bit for bit. Kernel-only.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "launch.h"
#include "sketchwalk/common.h"

namespace sketchwalk {
namespace {

constexpr int kThreads = 256;

__global__ void update_block_sketch_kernel(UpdateBlockSketchParams p) {
  const int64_t total = static_cast<int64_t>(p.batch) * p.heads * p.sketch_dim;
  const float count = static_cast<float>(p.count);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % p.sketch_dim;
    const int64_t h = (i / p.sketch_dim) % p.heads;
    const int64_t b = i / (static_cast<int64_t>(p.sketch_dim) * p.heads);
    const float tok = p.token[b * p.token_batch_stride + h * p.token_head_stride +
                              d * p.token_dim_stride];
    float* dst = p.block + b * p.block_batch_stride + h * p.block_head_stride +
                 d * p.block_dim_stride;
    *dst = p.count == 0 ? tok : __fdiv_rn(__fadd_rn(__fmul_rn(*dst, count), tok), count + 1.0f);
  }
}

}  // namespace

cudaError_t run_update_block_sketch(const UpdateBlockSketchParams& params, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(params.batch) * params.heads * params.sketch_dim;
  if (total == 0) return cudaSuccess;
  const int64_t grid = std::min<int64_t>(ceil_div<int64_t>(total, kThreads), 65535);
  update_block_sketch_kernel<<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace sketchwalk
