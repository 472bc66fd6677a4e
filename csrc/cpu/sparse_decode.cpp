// sparse_decode on the CPU (docs/ops.md section 6): the op's checks, then the block-sparse
// attention of csrc/cpu/sparse_attention.h over the first seq_lens[b] keys of each sequence.
// The index and the lengths are always validated here (validate=false only skips the device
// sync on CUDA).
#include <ATen/ATen.h>

#include "checks.h"
#include "cpu/sparse_attention.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_decode_cpu(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens,
    const std::optional<at::Tensor>& page_table, const std::optional<at::Tensor>& seq_starts) {
  // Always validated on the CPU (no device sync to save).
  (void)validate;
  const AttentionShape s = check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected,
                                                    softmax_scale, seq_lens, page_table);
  const int64_t num_pages = page_table.has_value() ? k_cache.size(0) : 0;
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, page_table, num_pages, true);
  check_decode_seq_starts(q, seq_starts, seq_lens, page_table, s, true);
  if (seq_starts.has_value()) {  // a left-padded cache: each row from its first key, row by row
    const auto starts = seq_starts->contiguous();
    const int* st = starts.data_ptr<int>();
    auto out = at::empty(q.sizes(), q.options());
    auto lse = at::empty({s.batch, s.num_q_heads, 1}, q.options().dtype(at::kFloat));
    for (int64_t b = 0; b < s.batch; ++b) {
      AttentionShape row = s;
      row.batch = 1;
      row.num_keys = s.num_keys - st[b];
      const auto [o, l] = cpu::sparse_attention(
          q.slice(0, b, b + 1), k_cache.slice(0, b, b + 1).slice(2, st[b]),
          v_cache.slice(0, b, b + 1).slice(2, st[b]), block_index.slice(0, b, b + 1),
          num_selected.slice(0, b, b + 1), row, softmax_scale, seq_lens->slice(0, b, b + 1));
      out.slice(0, b, b + 1).copy_(o);
      lse.slice(0, b, b + 1).copy_(l);
    }
    return {out, lse};
  }
  if (!page_table.has_value()) {
    return cpu::sparse_attention(q, k_cache, v_cache, block_index, num_selected, s, softmax_scale,
                                 seq_lens);
  }
  // A paged cache: each sequence's pages gathered in order into a dense [batch, num_kv_heads,
  // 64 * max_pages, head_dim] cache (ids past a sequence's length are never read: clamped).
  const auto ids = page_table->clamp(0, num_pages - 1).to(at::kLong).flatten();
  auto gather = [&](const at::Tensor& pool) {
    return pool.index_select(0, ids)
        .view({s.batch, s.num_keys, pool.size(2), pool.size(3)})
        .permute({0, 2, 1, 3});
  };
  return cpu::sparse_attention(q, gather(k_cache), gather(v_cache), block_index, num_selected, s,
                               softmax_scale, seq_lens);
}

}  // namespace sketchwalk
