// hadamard_sketch and hadamard_sketch_varlen, CUDA host wrappers (ATen): checks
// (csrc/checks/hadamard_sketch.h), launches (csrc/cuda/hadamard_sketch_launch.h, which the fused
// decode plan uses too).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/hadamard_sketch.h"
#include "cuda/hadamard_sketch_launch.h"
#include "cuda/host.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor hadamard_sketch_cuda(const at::Tensor& x, const at::Tensor& signs,
                                const at::Tensor& coords, int64_t block_size, bool validate) {
  check_cuda(x, "hadamard_sketch", "x");
  const SketchShape s = check_hadamard_sketch_args(x, signs, coords, block_size, validate);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = at::empty({s.batch, s.heads, s.num_blocks, s.sketch_dim}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  launch_hadamard_sketch(x, s, signs.contiguous(), coords.contiguous(), out.data_ptr<float>(),
                         out.stride(0), out.stride(1), out.stride(2), 0,
                         c10::cuda::getCurrentCUDAStream(), "hadamard_sketch");
  return out;
}

at::Tensor hadamard_sketch_varlen_cuda(const at::Tensor& x, const at::Tensor& signs,
                                       const at::Tensor& coords, int64_t block_size,
                                       const at::Tensor& cu_seqlens, int64_t max_blocks,
                                       bool validate) {
  check_cuda(x, "hadamard_sketch_varlen", "x");
  const SketchShape s = check_hadamard_sketch_varlen_args(x, signs, coords, block_size,
                                                          cu_seqlens, max_blocks, validate);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = at::empty({s.batch, s.heads, s.num_blocks, s.sketch_dim}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  launch_hadamard_sketch_varlen(x, s, signs.contiguous(), coords.contiguous(),
                                cu_seqlens.data_ptr<int>(), out, c10::cuda::getCurrentCUDAStream());
  return out;
}

}  // namespace sketchwalk
