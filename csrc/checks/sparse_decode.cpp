// Argument checks of sparse_decode, in two steps so that the CUDA wrapper can check what its
// kernels alone need in between (csrc/cuda/sparse_decode.cpp): check_sparse_decode_args,
// one query per sequence, then q, k_cache, v_cache and the block index shapes
// (check_attention_args, shared with sparse_prefill) and softmax_scale; then
// check_sparse_decode_index, with validate (and no graph capture) the block index contents,
// and seq_lens (its values too with validate), which bounds each row's blocks. The CPU version
// always passes validate = true.
#include <ATen/ATen.h>

#include "checks.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

// seq_lens: shape and device; with validate (and no graph capture) also
// 1 <= seq_lens[b] <= num_keys and every used index entry of row b <= (seq_lens[b] - 1) / 64.
void check_decode_seq_lens(const char* op, const std::optional<at::Tensor>& seq_lens,
                           const at::Tensor& q, const at::Tensor& block_index,
                           const at::Tensor& num_selected, const AttentionShape& s,
                           bool validate) {
  if (!seq_lens.has_value()) return;
  check_seq_lens_tensor(op, seq_lens, s.batch, q, "q");
  if (!read_values(validate, q)) return;
  check_seq_lens_values(op, *seq_lens, 1, s.num_keys, "1 <= length <= num_keys of 'k_cache'");
  if (block_index.numel() == 0) return;
  // Each used entry of batch row b must be a live block of that sequence: <= (L_b - 1) / 64.
  const auto slot = at::arange(s.max_selected, block_index.options());
  const auto used = at::lt(slot.view({1, 1, 1, -1}), num_selected.unsqueeze(-1));
  const auto limit = (*seq_lens - 1).div(s.block_size, "floor").view({-1, 1, 1, 1});
  SW_CHECK_ARG(at::all(at::logical_or(used.logical_not(), block_index <= limit)).item<bool>(), op,
               "block_index", "holds a key block at or past a sequence's length: each used entry "
               "of batch row b must be <= (seq_lens[b] - 1) / ", s.block_size);
}

}  // namespace

AttentionShape check_sparse_decode_args(const at::Tensor& q, const at::Tensor& k_cache,
                                        const at::Tensor& v_cache, const at::Tensor& block_index,
                                        const at::Tensor& num_selected,
                                        std::optional<double> softmax_scale,
                                        const std::optional<at::Tensor>& seq_lens,
                                        const std::optional<at::Tensor>& page_table) {
  constexpr const char* op = "sparse_decode";
  SW_CHECK_ARG(q.dim() != 4 || q.size(2) == 1, op, "q",
               "must hold one query per sequence [batch, num_q_heads, 1, head_dim], got shape ",
               q.sizes());
  if (!page_table.has_value()) {
    const AttentionShape s =
        check_attention_args(op, q, k_cache, v_cache, block_index, num_selected, kIndexBlockSize);
    check_softmax_scale(softmax_scale, op);
    return s;
  }
  // A paged cache: pools [num_pages, 64, num_kv_heads, head_dim] and a page table per sequence.
  const char* pool = "[num_pages, 64, num_kv_heads, head_dim] (a paged cache: page_table given)";
  check_rank(k_cache, op, "k_cache", 4, pool);
  check_rank(v_cache, op, "v_cache", 4, pool);
  SW_CHECK_ARG(seq_lens.has_value(), op, "seq_lens",
               "must be given with page_table (the keys of each sequence)");
  check_tensor(*page_table, op, "page_table", 2, "[batch, max_pages]", {at::kInt});
  check_same_device(*page_table, q, op, "page_table", "q");
  check_size(k_cache, op, "k_cache", 1, kIndexBlockSize, "tokens per page = the block size, 64");
  SW_CHECK_ARG(v_cache.sizes() == k_cache.sizes(), op, "v_cache", "must have the shape of "
               "'k_cache' ", k_cache.sizes(), ", got ", v_cache.sizes());
  SW_CHECK_ARG(k_cache.size(0) >= 1, op, "k_cache", "must hold at least one page, got shape ",
               k_cache.sizes());
  // The dense-layout checks on stand-ins of the sequences' caches [batch, num_kv_heads,
  // 64 * max_pages, head_dim]: views of the pools' first row (never read; no copy).
  const int64_t batch = q.dim() == 4 ? q.size(0) : 0;
  const std::vector<int64_t> dense = {batch, k_cache.size(2), kIndexBlockSize * page_table->size(1),
                                      k_cache.size(3)};
  const std::vector<int64_t> strides = {0, 0, 0, k_cache.stride(3)};
  const AttentionShape s = check_attention_args(
      op, q, k_cache.as_strided(dense, strides, k_cache.storage_offset()),
      v_cache.as_strided(dense, strides, v_cache.storage_offset()), block_index, num_selected,
      kIndexBlockSize);
  check_size(*page_table, op, "page_table", 0, s.batch, "batch of 'q'");
  check_softmax_scale(softmax_scale, op);
  return s;
}

void check_sparse_decode_index(const at::Tensor& q, const at::Tensor& block_index,
                               const at::Tensor& num_selected, const AttentionShape& s,
                               const std::optional<at::Tensor>& seq_lens,
                               const std::optional<at::Tensor>& page_table, int64_t num_pages,
                               bool validate) {
  constexpr const char* op = "sparse_decode";
  if (read_values(validate, q)) validate_block_index(op, block_index, num_selected, s);
  check_decode_seq_lens(op, seq_lens, q, block_index, num_selected, s, validate);
  if (page_table.has_value() && read_values(validate, q) && s.batch > 0) {
    // Live pages (those holding keys [0, seq_lens[b])) must be pages of the pool; the rest of
    // a row is never read.
    const auto page = at::arange(page_table->size(1), page_table->options()).view({1, -1});
    const auto live = at::lt(page * kIndexBlockSize, seq_lens->view({-1, 1}));
    const auto ok = at::logical_and(*page_table >= 0, *page_table < num_pages);
    SW_CHECK_ARG(at::all(at::logical_or(live.logical_not(), ok)).item<bool>(), op, "page_table",
                 "holds a page id out of [0, num_pages=", num_pages, ") among a sequence's live "
                 "pages (those below seq_lens[b] keys)");
  }
}

void check_decode_seq_starts(const at::Tensor& q, const std::optional<at::Tensor>& seq_starts,
                             const std::optional<at::Tensor>& seq_lens,
                             const std::optional<at::Tensor>& page_table,
                             const AttentionShape& s, bool validate) {
  constexpr const char* op = "sparse_decode";
  if (!seq_starts.has_value()) return;
  SW_CHECK_ARG(seq_lens.has_value(), op, "seq_starts",
               "needs seq_lens (row b's keys are [seq_starts[b], seq_starts[b] + seq_lens[b]))");
  SW_CHECK_ARG(!page_table.has_value(), op, "seq_starts",
               "is for a left-padded dense cache; a paged cache (page_table) has no padding");
  check_tensor(*seq_starts, op, "seq_starts", 1, "[batch]", {at::kInt});
  check_same_device(*seq_starts, q, op, "seq_starts", "q");
  check_size(*seq_starts, op, "seq_starts", 0, s.batch, "batch");
  if (!read_values(validate, q) || s.batch == 0) return;
  SW_CHECK_ARG(at::all(at::logical_and(*seq_starts >= 0, (*seq_starts + *seq_lens) <= s.num_keys))
                   .item<bool>(),
               op, "seq_starts", "must hold starts with 0 <= seq_starts[b] and seq_starts[b] + "
               "seq_lens[b] <= num_keys=", s.num_keys);
}

}  // namespace sketchwalk
