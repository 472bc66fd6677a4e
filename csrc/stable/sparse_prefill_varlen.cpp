// sparse_prefill_varlen on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/sparse_prefill_varlen.h) and kernel (csrc/cpu/sparse_attention_rows.h, through
// csrc/stable/sparse_attention.h) over the packed tokens of a ragged batch.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/sparse_prefill_varlen.h"
#include "params_fill.h"
#include "stable/common.h"
#include "stable/sparse_attention.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> sparse_prefill_varlen_cpu(
    Tensor q, Tensor k, Tensor v, Tensor block_index, Tensor num_selected, Tensor cu_seqlens_q,
    std::optional<Tensor> cu_seqlens_k, std::optional<Tensor> seq_lens_k,
    std::optional<Tensor> page_table, std::optional<double> softmax_scale, bool validate) {
  (void)validate;  // always validated on the CPU (no device sync to save)
  const VarlenAttentionShape vs = check_sparse_prefill_varlen_args(
      q, k, v, block_index, num_selected, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table,
      softmax_scale);
  check_sparse_prefill_varlen_values(vs, q, block_index, num_selected, cu_seqlens_q, cu_seqlens_k,
                                     seq_lens_k, page_table, true);
  const AttentionShape& s = vs.shape;
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(q.sizes(), q.scalar_type(), std::nullopt, q.device());
  const int64_t lse_shape[] = {s.num_q_heads, s.num_queries};
  Tensor lse = torch::stable::empty(lse_shape, ScalarType::Float, std::nullopt, q.device());
  if (out.numel() == 0 || s.batch == 0 || s.num_q_blocks == 0) return {out, lse};
  run_sparse_attention_cpu(
      fill_varlen_params(vs, q, k, v, block_index, num_selected, out, lse, cu_seqlens_q,
                         cu_seqlens_k, seq_lens_k, page_table, softmax_scale),
      q.scalar_type());
  return {out, lse};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("sparse_prefill_varlen", TORCH_BOX(&sketchwalk::stable::sparse_prefill_varlen_cpu));
}
