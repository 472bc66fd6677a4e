// sparse_prefill on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/sparse_prefill.h) and kernel (csrc/cpu/sparse_attention_rows.h, through
// csrc/stable/sparse_attention.h).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/sparse_prefill.h"
#include "params_fill.h"
#include "stable/common.h"
#include "stable/sparse_attention.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> sparse_prefill_cpu(Tensor q, Tensor k, Tensor v, Tensor block_index,
                                              Tensor num_selected,
                                              std::optional<double> softmax_scale, bool validate) {
  (void)validate;  // always validated on the CPU (no device sync to save)
  const AttentionShape s =
      check_sparse_prefill_args(q, k, v, block_index, num_selected, softmax_scale);
  check_sparse_prefill_index(q, block_index, num_selected, s, true);
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(q.sizes(), q.scalar_type(), std::nullopt, q.device());
  const int64_t lse_shape[] = {s.batch, s.num_q_heads, s.num_queries};
  Tensor lse = torch::stable::empty(lse_shape, ScalarType::Float, std::nullopt, q.device());
  if (out.numel() == 0) return {out, lse};
  run_sparse_attention_cpu(
      fill_attention_params(q, k, v, block_index, num_selected, out, lse, s, softmax_scale),
      q.scalar_type());
  return {out, lse};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("sparse_prefill", TORCH_BOX(&sketchwalk::stable::sparse_prefill_cpu));
}
