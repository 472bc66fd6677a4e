// hadamard_sketch and hadamard_sketch_varlen on PyTorch's stable ABI, CPU: the ATen ops' checks
// (csrc/checks/hadamard_sketch.h) and kernel (csrc/cpu/hadamard_sketch_rows.h), with the dtype
// dispatched by hand over the header-only Half / BFloat16 and the stable parallel_for.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>

#include "checks/hadamard_sketch.h"
#include "cpu/hadamard_sketch_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

template <typename scalar_t>
void sketch(const Tensor& x, int64_t sb, int64_t sh, int64_t st, const int* cu,
            const Tensor& signs, const Tensor& coords, const SketchShape& s, const Tensor& out) {
  hadamard_sketch_cpu_rows(x.const_data_ptr<scalar_t>(), sb, sh, st, cu,
                           signs.const_data_ptr<float>(), coords.const_data_ptr<int64_t>(), s,
                           out.mutable_data_ptr<float>(),
                           [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
                             torch::stable::parallel_for(begin, end, grain, fn);
                           });
}

// Dispatch on x's dtype; see hadamard_sketch_cpu_rows for the strides and cu.
Tensor sketch_cpu(const Tensor& x, int64_t sb, int64_t sh, int64_t st, const int* cu,
                  const Tensor& signs, const Tensor& coords, const SketchShape& s) {
  const int64_t shape[] = {s.batch, s.heads, s.num_blocks, s.sketch_dim};
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(shape, ScalarType::Float, std::nullopt, x.device());
  if (out.numel() == 0) return out;
  const Tensor signs_c = torch::stable::contiguous(signs);
  const Tensor coords_c = torch::stable::contiguous(coords);
  switch (x.scalar_type()) {
    case ScalarType::Float: sketch<float>(x, sb, sh, st, cu, signs_c, coords_c, s, out); break;
    case ScalarType::Half:
      sketch<torch::headeronly::Half>(x, sb, sh, st, cu, signs_c, coords_c, s, out);
      break;
    case ScalarType::BFloat16:
      sketch<torch::headeronly::BFloat16>(x, sb, sh, st, cu, signs_c, coords_c, s, out);
      break;
    default: break;  // refused by the checks
  }
  return out;
}

Tensor hadamard_sketch_cpu(Tensor x, Tensor signs, Tensor coords, int64_t block_size,
                           bool validate) {
  (void)validate;  // always validated on the CPU: validate=false is CUDA's trusted path
  const SketchShape s = check_hadamard_sketch_args(x, signs, coords, block_size, true);
  return sketch_cpu(x, x.stride(0), x.stride(1), x.stride(2), nullptr, signs, coords, s);
}

Tensor hadamard_sketch_varlen_cpu(Tensor x, Tensor signs, Tensor coords, int64_t block_size,
                                  Tensor cu_seqlens, int64_t max_blocks, bool validate) {
  (void)validate;  // always validated on the CPU, as hadamard_sketch
  const SketchShape s = check_hadamard_sketch_varlen_args(x, signs, coords, block_size,
                                                          cu_seqlens, max_blocks, true);
  const Tensor cu = torch::stable::contiguous(cu_seqlens);
  return sketch_cpu(x, 0, x.stride(1), x.stride(0), cu.const_data_ptr<int>(), signs, coords, s);
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("hadamard_sketch", TORCH_BOX(&sketchwalk::stable::hadamard_sketch_cpu));
  m.impl("hadamard_sketch_varlen", TORCH_BOX(&sketchwalk::stable::hadamard_sketch_varlen_cpu));
}
