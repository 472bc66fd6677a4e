// hadamard_sketch, CUDA host wrapper: checks (csrc/checks/hadamard_sketch.cpp), params, launch
// (csrc/cuda/hadamard_sketch.cu); launch_hadamard_sketch also serves the fused decode plan.
// hadamard_sketch_varlen: packed sequences, the same kernel with params.cu_seqlens.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

namespace {

// The sizes and the transform of `s`; the caller sets x, out and their strides.
HadamardSketchParams sketch_params(const SketchShape& s, const at::Tensor& signs,
                                   const at::Tensor& coords) {
  HadamardSketchParams p{};
  p.signs = signs.data_ptr<float>();
  p.coords = coords.data_ptr<int64_t>();
  p.batch = static_cast<int>(s.batch);
  p.heads = static_cast<int>(s.heads);
  p.tokens = static_cast<int>(s.tokens);
  p.head_dim = static_cast<int>(s.head_dim);
  p.block_size = static_cast<int>(s.block_size);
  p.num_blocks = static_cast<int>(s.num_blocks);
  p.sketch_pow2 = static_cast<int>(s.sketch_pow2);
  p.sketch_dim = static_cast<int>(s.sketch_dim);
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.sketch_dim));
  return p;
}

}  // namespace

void launch_hadamard_sketch(const at::Tensor& x, const SketchShape& s, const at::Tensor& signs,
                            const at::Tensor& coords, float* out, int64_t out_batch_stride,
                            int64_t out_head_stride, int64_t out_block_stride, int blend_count,
                            cudaStream_t stream, const char* op) {
  HadamardSketchParams p = sketch_params(s, signs, coords);
  p.x = x.data_ptr();
  p.out = out;
  copy_strides(x, p.x_batch_stride, p.x_head_stride, p.x_token_stride);
  p.out_batch_stride = out_batch_stride;
  p.out_head_stride = out_head_stride;
  p.out_block_stride = out_block_stride;
  p.blend_count = blend_count;
  check_launch(run_hadamard_sketch(p, to_dtype(x.scalar_type()), stream), op);
}

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
  const auto signs_c = signs.contiguous(), coords_c = coords.contiguous();
  HadamardSketchParams p = sketch_params(s, signs_c, coords_c);
  p.x = x.data_ptr();
  p.x_batch_stride = 0;  // every sequence's rows are offsets from cu_seqlens
  p.x_head_stride = x.stride(1);
  p.x_token_stride = x.stride(0);
  p.out = out.data_ptr<float>();
  p.out_batch_stride = out.stride(0);
  p.out_head_stride = out.stride(1);
  p.out_block_stride = out.stride(2);
  p.cu_seqlens = cu_seqlens.data_ptr<int>();
  check_launch(run_hadamard_sketch(p, to_dtype(x.scalar_type()), c10::cuda::getCurrentCUDAStream()),
               "hadamard_sketch_varlen");
  return out;
}

}  // namespace sketchwalk
