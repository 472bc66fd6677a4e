// query_spread_rows on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/query_spread_rows.h) and kernel (csrc/cpu/query_spread_rows_kernel.h), with the
// dtype dispatched by hand over the header-only Half / BFloat16 and the stable parallel_for.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <optional>

#include "checks/query_spread_rows.h"
#include "cpu/query_spread_rows_kernel.h"
#include "params_fill.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor query_spread_rows_cpu(Tensor q, int64_t block_size, double frac,
                             int64_t dense_last_q_blocks, std::optional<Tensor> cu_seqlens,
                             int64_t max_blocks, std::optional<Tensor> seq_q_blocks,
                             bool validate) {
  (void)validate;  // always validated on the CPU
  const QuerySpreadShape s = check_query_spread_rows_args(
      q, block_size, frac, dense_last_q_blocks, cu_seqlens, max_blocks, seq_q_blocks, true);
  const int64_t shape[] = {s.rows, s.width};
  using torch::headeronly::ScalarType;
  Tensor dense_rows = torch::stable::new_zeros(q, shape, ScalarType::Bool);
  if (s.rows * s.width == 0) return dense_rows;
  Tensor spread = torch::stable::empty(shape, ScalarType::Float, std::nullopt, q.device());
  const QuerySpreadParams p = query_spread_params(q, block_size, frac, dense_last_q_blocks,
                                                  cu_seqlens, seq_q_blocks, s.rows, s.width,
                                                  spread, dense_rows);
  const auto parallel = [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  };
  switch (q.scalar_type()) {
    case ScalarType::Float: compute_query_spread_rows<float>(p, parallel); break;
    case ScalarType::Half: compute_query_spread_rows<torch::headeronly::Half>(p, parallel); break;
    case ScalarType::BFloat16:
      compute_query_spread_rows<torch::headeronly::BFloat16>(p, parallel);
      break;
    default: break;  // refused by the checks
  }
  return dense_rows;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("query_spread_rows", TORCH_BOX(&sketchwalk::stable::query_spread_rows_cpu));
}
