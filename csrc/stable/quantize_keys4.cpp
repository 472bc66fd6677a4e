// quantize_keys4_ on PyTorch's stable ABI, CPU (docs/stable_abi.md, step 3): the ATen op's checks
// (csrc/checks/quantize_keys4.h, with the 4-bit cache's of csrc/checks/keys4_cache.h) and kernel
// (csrc/cpu/quantize_keys4_rows.h), with the dtype dispatched by hand over the header-only
// Half / BFloat16 and the stable parallel_for. The CUDA version stays the ATen wrapper
// (csrc/cuda/quantize_keys4.cpp).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <optional>

#include "checks/quantize_keys4.h"
#include "cpu/quantize_keys4_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

template <typename scalar_t>
void quantize(const Tensor& codes, const Tensor& scales, const Tensor& k,
              const std::optional<Tensor>& seq_lens, const std::optional<Tensor>& page_table,
              const Keys4CacheShape& s) {
  const auto a = quantize_keys4_cpu_args<scalar_t>(
      codes, scales, k, seq_lens.has_value() ? seq_lens->const_data_ptr<int32_t>() : nullptr,
      page_table.has_value() ? page_table->const_data_ptr<int32_t>() : nullptr,
      page_table.has_value() ? page_table->stride(0) : 0);
  quantize_keys4_cpu_rows(a, s, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
}

void quantize_keys4_cpu(Tensor codes, Tensor scales, Tensor k, std::optional<Tensor> seq_lens,
                        bool validate, std::optional<Tensor> page_table) {
  (void)validate;  // always validated on the CPU: reading the lengths costs no device sync
  const Keys4CacheShape s = check_quantize_keys4_args(codes, scales, k, seq_lens, true, page_table);
  std::optional<Tensor> lens;
  if (seq_lens.has_value()) lens = torch::stable::contiguous(*seq_lens);
  using torch::headeronly::ScalarType;
  switch (k.scalar_type()) {
    case ScalarType::Float: quantize<float>(codes, scales, k, lens, page_table, s); break;
    case ScalarType::Half:
      quantize<torch::headeronly::Half>(codes, scales, k, lens, page_table, s);
      break;
    case ScalarType::BFloat16:
      quantize<torch::headeronly::BFloat16>(codes, scales, k, lens, page_table, s);
      break;
    default: break;  // refused by the checks above
  }
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("quantize_keys4_", TORCH_BOX(&sketchwalk::stable::quantize_keys4_cpu));
}
