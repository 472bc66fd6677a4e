// score_blocks_keys4 on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/score_blocks_keys4.h) and kernel (csrc/cpu/score_blocks_keys4_rows.h), with the
// dtype dispatched by hand over the header-only Half / BFloat16 and the stable parallel_for.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <optional>

#include "checks/score_blocks_keys4.h"
#include "cpu/score_blocks_keys4_rows.h"
#include "sketchwalk/block_index.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

template <typename scalar_t>
void score(const Tensor& q, const Tensor& codes, const Tensor& scales, const Tensor& mass,
           const std::optional<Tensor>& lens, const std::optional<Tensor>& page_table,
           const Keys4CacheShape& s, double scale) {
  const auto a = score_blocks_keys4_cpu_args<scalar_t>(
      q, codes, scales, mass, lens.has_value() ? lens->const_data_ptr<int32_t>() : nullptr,
      page_table.has_value() ? page_table->const_data_ptr<int32_t>() : nullptr,
      page_table.has_value() ? page_table->stride(0) : 0, scale);
  score_blocks_keys4_cpu_rows(a, s, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
}

Tensor score_blocks_keys4_cpu(Tensor q, Tensor codes, Tensor scales,
                              std::optional<Tensor> seq_lens, std::optional<double> softmax_scale,
                              bool validate, std::optional<Tensor> page_table) {
  (void)validate;  // always validated on the CPU: reading the lengths costs no device sync
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, true, page_table);
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  const int64_t shape[] = {s.batch, s.num_kv_heads,
                           (s.capacity + kIndexBlockSize - 1) / kIndexBlockSize};
  using torch::headeronly::ScalarType;
  Tensor mass = torch::stable::new_zeros(q, shape, ScalarType::Float);
  std::optional<Tensor> lens;
  if (seq_lens.has_value()) lens = torch::stable::contiguous(*seq_lens);
  switch (q.scalar_type()) {
    case ScalarType::Float: score<float>(q, codes, scales, mass, lens, page_table, s, scale); break;
    case ScalarType::Half:
      score<torch::headeronly::Half>(q, codes, scales, mass, lens, page_table, s, scale);
      break;
    case ScalarType::BFloat16:
      score<torch::headeronly::BFloat16>(q, codes, scales, mass, lens, page_table, s, scale);
      break;
    default: break;  // refused by the checks above
  }
  return mass;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("score_blocks_keys4", TORCH_BOX(&sketchwalk::stable::score_blocks_keys4_cpu));
}
