// sparse_prefill_varlen on the CPU: the op's checks (lengths and index always validated here),
// then each sequence as a dense [1, heads, tokens, D] view of the packed tokens (its pages
// gathered first in a paged cache) through the CPU sparse_prefill's attention
// (csrc/cpu/sparse_attention.h), written back into the packed out and lse.
#include <ATen/ATen.h>

#include "checks.h"
#include "cpu/sparse_attention.h"
#include "ops.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

// [tokens, heads, D] packed rows -> the [1, heads, tokens, D] view the dense kernel takes.
at::Tensor as_hnd(const at::Tensor& nhd) { return nhd.permute({1, 0, 2}).unsqueeze(0); }

// The first num_keys keys of a sequence: its packed span, or its pages gathered in order.
at::Tensor sequence_keys(const at::Tensor& kv, const VarlenAttentionShape& vs, const VarlenSpan& sp,
                         const std::optional<at::Tensor>& page_table, int64_t b) {
  if (!vs.paged) return as_hnd(kv.slice(0, sp.k0, sp.k0 + sp.num_keys));
  const int64_t pages = (sp.num_keys + kIndexBlockSize - 1) / kIndexBlockSize;
  const auto ids = page_table->select(0, b).slice(0, 0, pages).to(at::kLong);
  const auto rows = kv.index_select(0, ids).reshape({pages * kIndexBlockSize, kv.size(2), kv.size(3)});
  return as_hnd(rows.slice(0, 0, sp.num_keys));
}

}  // namespace

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
  const auto spans = varlen_spans(vs, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({vs.shape.num_q_heads, vs.shape.num_queries}, q.options().dtype(at::kFloat));
  for (size_t b = 0; b < spans.size(); ++b) {
    const VarlenSpan& sp = spans[b];
    if (sp.num_queries == 0) continue;
    const int64_t bi = static_cast<int64_t>(b);
    const AttentionShape s = sequence_shape(vs, sp);
    const auto [o, l] = cpu::sparse_attention(
        as_hnd(q.slice(0, sp.q0, sp.q0 + sp.num_queries)), sequence_keys(k, vs, sp, page_table, bi),
        sequence_keys(v, vs, sp, page_table, bi),
        block_index.slice(0, bi, bi + 1).slice(2, 0, s.num_q_blocks),
        num_selected.slice(0, bi, bi + 1).slice(2, 0, s.num_q_blocks), s, softmax_scale,
        std::nullopt);
    out.slice(0, sp.q0, sp.q0 + sp.num_queries).copy_(o.select(0, 0).permute({1, 0, 2}));
    lse.slice(1, sp.q0, sp.q0 + sp.num_queries).copy_(l.select(0, 0));
  }
  return {out, lse};
}

}  // namespace sketchwalk
