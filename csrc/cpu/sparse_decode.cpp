// sparse_decode on the CPU (docs/ops.md section 6): the op's checks
// (csrc/checks/sparse_decode.h), then the attention kernel of csrc/cpu/sparse_attention_rows.h
// over each sequence's keys: the first seq_lens[b] of a fixed-capacity cache, from
// seq_starts[b] in a left-padded one, or its pages. The index and the lengths are always
// validated here (validate=false only skips the device sync on CUDA).
#include <ATen/ATen.h>

#include "checks.h"
#include "checks/sparse_decode.h"
#include "cpu/sparse_attention.h"
#include "ops.h"
#include "params_fill.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_decode_cpu(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens,
    const std::optional<at::Tensor>& page_table, const std::optional<at::Tensor>& seq_starts) {
  (void)validate;  // always validated on the CPU (no device sync to save)
  const AttentionShape s = check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected,
                                                    softmax_scale, seq_lens, page_table);
  const int64_t num_pages = page_table.has_value() ? k_cache.size(0) : 0;
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, page_table, num_pages, true);
  check_decode_seq_starts(q, seq_starts, seq_lens, page_table, s, true);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, 1}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  auto p = fill_attention_params(q, k_cache, v_cache, block_index, num_selected, out, lse, s,
                                 softmax_scale);
  std::optional<at::Tensor> lens, starts;
  fill_decode_layout(p, k_cache, v_cache, seq_lens, page_table, seq_starts, lens, starts);
  cpu::run_sparse_attention_cpu(p, q.scalar_type());
  return {out, lse};
}

}  // namespace sketchwalk
