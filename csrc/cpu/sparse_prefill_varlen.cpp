// sparse_prefill_varlen on the CPU: the op's checks (csrc/checks/sparse_prefill_varlen.h; the
// lengths and the index always validated here), then the attention kernel of
// csrc/cpu/sparse_attention_rows.h over the packed tokens, each sequence reading its own spans
// (packed keys) or pages (a paged cache).
#include <ATen/ATen.h>

#include "checks.h"
#include "checks/sparse_prefill_varlen.h"
#include "cpu/sparse_attention.h"
#include "ops.h"
#include "params_fill.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_prefill_varlen_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const at::Tensor& cu_seqlens_q,
    const std::optional<at::Tensor>& cu_seqlens_k, const std::optional<at::Tensor>& seq_lens_k,
    const std::optional<at::Tensor>& page_table, std::optional<double> softmax_scale,
    bool validate) {
  (void)validate;  // always validated on the CPU (no device sync to save)
  const VarlenAttentionShape vs = check_sparse_prefill_varlen_args(
      q, k, v, block_index, num_selected, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table,
      softmax_scale);
  check_sparse_prefill_varlen_values(vs, q, block_index, num_selected, cu_seqlens_q, cu_seqlens_k,
                                     seq_lens_k, page_table, true);
  const AttentionShape& s = vs.shape;
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0 || s.batch == 0 || s.num_q_blocks == 0) return {out, lse};
  cpu::run_sparse_attention_cpu(
      fill_varlen_params(vs, q, k, v, block_index, num_selected, out, lse, cu_seqlens_q,
                         cu_seqlens_k, seq_lens_k, page_table, softmax_scale),
      q.scalar_type());
  return {out, lse};
}

}  // namespace sketchwalk
