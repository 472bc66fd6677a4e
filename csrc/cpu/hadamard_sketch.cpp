// hadamard_sketch and hadamard_sketch_varlen on the CPU (ATen): the checks of
// csrc/checks/hadamard_sketch.h and the kernel of csrc/cpu/hadamard_sketch_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/hadamard_sketch.h"
#include "cpu/hadamard_sketch_rows.h"
#include "ops.h"

namespace sketchwalk {

namespace {

// Dispatch on x's dtype; see hadamard_sketch_cpu_rows for the strides and cu.
at::Tensor sketch_cpu(const at::Tensor& x, int64_t sb, int64_t sh, int64_t st, const int* cu,
                      const at::Tensor& signs, const at::Tensor& coords, const SketchShape& s) {
  auto out = at::empty({s.batch, s.heads, s.num_blocks, s.sketch_dim}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  const auto signs_c = signs.contiguous();
  const auto coords_c = coords.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "hadamard_sketch_cpu", [&] {
    hadamard_sketch_cpu_rows(x.const_data_ptr<scalar_t>(), sb, sh, st, cu,
                             signs_c.const_data_ptr<float>(), coords_c.const_data_ptr<int64_t>(), s,
                             out.mutable_data_ptr<float>(),
                             [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
                               at::parallel_for(begin, end, grain, fn);
                             });
  });
  return out;
}

}  // namespace

at::Tensor hadamard_sketch_cpu(const at::Tensor& x, const at::Tensor& signs,
                               const at::Tensor& coords, int64_t block_size, bool validate) {
  // Always validated on the CPU (no device sync to save): validate=false is CUDA's trusted path.
  (void)validate;
  const SketchShape s = check_hadamard_sketch_args(x, signs, coords, block_size, true);
  return sketch_cpu(x, x.stride(0), x.stride(1), x.stride(2), nullptr, signs, coords, s);
}

at::Tensor hadamard_sketch_varlen_cpu(const at::Tensor& x, const at::Tensor& signs,
                                      const at::Tensor& coords, int64_t block_size,
                                      const at::Tensor& cu_seqlens, int64_t max_blocks,
                                      bool validate) {
  (void)validate;  // always validated on the CPU, as hadamard_sketch
  const SketchShape s = check_hadamard_sketch_varlen_args(x, signs, coords, block_size,
                                                          cu_seqlens, max_blocks, true);
  const auto cu = cu_seqlens.contiguous();
  return sketch_cpu(x, 0, x.stride(1), x.stride(0), cu.const_data_ptr<int>(), signs, coords, s);
}

}  // namespace sketchwalk
