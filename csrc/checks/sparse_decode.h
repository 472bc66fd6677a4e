// Argument checks of sparse_decode, in two steps so that the CUDA wrapper can check what its
// kernels alone need in between (csrc/cuda/sparse_decode.cpp): check_sparse_decode_args, one
// query per sequence, then q, k_cache, v_cache and the block index shapes (check_attention_args
// of csrc/checks/attention.h, or its paged form) and softmax_scale; then
// check_sparse_decode_index, with validate (and no graph capture) the block index contents and
// seq_lens (its values too), which bounds each row's blocks, and the live page ids; and
// check_decode_seq_starts. The CPU versions always pass validate = true. Templates over the
// tensor type (ATen and the stable ABI, csrc/tensor_checks.h); values are read on the host.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "checks/attention.h"
#include "checks/keys4_cache.h"
#include "sketchwalk/block_index.h"
#include "tensor_checks.h"

namespace sketchwalk {

// A paged cache (page_table) gives num_keys = 64 x max_pages: the most keys a sequence can hold.
template <typename T>
AttentionShape check_sparse_decode_args(const T& q, const T& k_cache, const T& v_cache,
                                        const T& block_index, const T& num_selected,
                                        std::optional<double> softmax_scale,
                                        const std::optional<T>& seq_lens,
                                        const std::optional<T>& page_table) {
  using ScalarType = detail::attention_scalar_type<T>;
  constexpr const char* op = "sparse_decode";
  const detail::KvArgs kv{"k_cache", "v_cache"};
  SW_CHECK_ARG(q.dim() != 4 || q.size(2) == 1, op, "q",
               "must hold one query per sequence [batch, num_q_heads, 1, head_dim], got shape ",
               q.sizes());
  if (!page_table.has_value()) {
    const AttentionShape s = check_attention_args(op, q, k_cache, v_cache, block_index,
                                                  num_selected, kIndexBlockSize, kv);
    check_softmax_scale(softmax_scale, op);
    return s;
  }
  // A paged cache: pools [num_pages, 64, num_kv_heads, head_dim] and a page table per sequence.
  const char* pool = "[num_pages, 64, num_kv_heads, head_dim] (a paged cache: page_table given)";
  check_rank(k_cache, op, "k_cache", 4, pool);
  check_rank(v_cache, op, "v_cache", 4, pool);
  SW_CHECK_ARG(seq_lens.has_value(), op, "seq_lens",
               "must be given with page_table (the keys of each sequence)");
  check_tensor(*page_table, op, "page_table", 2, "[batch, max_pages]", {ScalarType::Int});
  check_same_device(*page_table, q, op, "page_table", "q");
  check_size(k_cache, op, "k_cache", 1, kIndexBlockSize, "tokens per page = the block size, 64");
  SW_CHECK_ARG(v_cache.sizes().equals(k_cache.sizes()), op, "v_cache", "must have the shape of "
               "'k_cache' ", k_cache.sizes(), ", got ", v_cache.sizes());
  SW_CHECK_ARG(k_cache.size(0) >= 1, op, "k_cache", "must hold at least one page, got shape ",
               k_cache.sizes());
  // The dense-layout checks on the cache the pools stand for: [batch, num_kv_heads,
  // 64 * max_pages, head_dim].
  const int64_t batch = q.dim() == 4 ? q.size(0) : 0;
  const detail::KvDims dense{
      {batch, k_cache.size(2), kIndexBlockSize * page_table->size(1), k_cache.size(3)}};
  const AttentionShape s = check_attention_args_paged(op, q, k_cache, v_cache, dense, block_index,
                                                      num_selected, kIndexBlockSize, kv);
  check_size(*page_table, op, "page_table", 0, s.batch, "batch of 'q'");
  check_softmax_scale(softmax_scale, op);
  return s;
}

template <typename T>
void check_sparse_decode_index(const T& q, const T& block_index, const T& num_selected,
                               const AttentionShape& s, const std::optional<T>& seq_lens,
                               const std::optional<T>& page_table, int64_t num_pages,
                               bool validate) {
  constexpr const char* op = "sparse_decode";
  const tensor_world world{};
  const bool read = read_values(world, validate, q);
  // The index on the host once (a device read each), for both checks below.
  std::vector<int32_t> ids, counts;
  if (read) {
    counts = host_int32(world, num_selected);
    if (block_index.numel() > 0) ids = host_int32(world, block_index);
    validate_block_index_host(op, ids.data(), counts.data(), s.batch, s.index_heads,
                              s.num_q_blocks, s);
  }
  if (!seq_lens.has_value()) return;
  check_seq_lens_tensor(op, seq_lens, s.batch, q, "q");
  if (!read) return;
  check_seq_lens_values(op, *seq_lens, 1, s.num_keys, "1 <= length <= num_keys of 'k_cache'");
  const std::vector<int32_t> lens = host_int32(world, *seq_lens);
  if (block_index.numel() > 0) {
    // Each used entry of batch row b must be a live block of that sequence: <= (L_b - 1) / 64.
    const int64_t rows_per_seq = s.index_heads * s.num_q_blocks;
    for (int64_t r = 0; r < s.batch * rows_per_seq; ++r) {
      const int64_t limit = (lens[r / rows_per_seq] - 1) / s.block_size;
      for (int64_t j = 0; j < counts[r]; ++j) {
        SW_CHECK_ARG(ids[r * s.max_selected + j] <= limit, op, "block_index",
                     "holds a key block at or past a sequence's length: each used entry of batch "
                     "row b must be <= (seq_lens[b] - 1) / ", s.block_size);
      }
    }
  }
  if (!page_table.has_value()) return;
  // Live pages (those holding keys [0, seq_lens[b])) must be pages of the pool; the rest of a
  // row is never read.
  const std::vector<int32_t> pages = host_int32(world, *page_table);
  const int64_t max_pages = page_table->size(1);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t j = 0; j * kIndexBlockSize < lens[b]; ++j) {
      const int32_t page = pages[b * max_pages + j];
      SW_CHECK_ARG(page >= 0 && page < num_pages, op, "page_table",
                   "holds a page id out of [0, num_pages=", num_pages, ") among a sequence's live "
                   "pages (those below seq_lens[b] keys)");
    }
  }
}

// seq_starts (a left-padded cache): int32 [batch] on q's device, given with seq_lens and without
// page_table; with validate (no capture) 0 <= start and start + length <= num_keys per row.
template <typename T>
void check_decode_seq_starts(const T& q, const std::optional<T>& seq_starts,
                             const std::optional<T>& seq_lens, const std::optional<T>& page_table,
                             const AttentionShape& s, bool validate) {
  using ScalarType = detail::attention_scalar_type<T>;
  constexpr const char* op = "sparse_decode";
  if (!seq_starts.has_value()) return;
  SW_CHECK_ARG(seq_lens.has_value(), op, "seq_starts",
               "needs seq_lens (row b's keys are [seq_starts[b], seq_starts[b] + seq_lens[b]))");
  SW_CHECK_ARG(!page_table.has_value(), op, "seq_starts",
               "is for a left-padded dense cache; a paged cache (page_table) has no padding");
  check_tensor(*seq_starts, op, "seq_starts", 1, "[batch]", {ScalarType::Int});
  check_same_device(*seq_starts, q, op, "seq_starts", "q");
  check_size(*seq_starts, op, "seq_starts", 0, s.batch, "batch");
  const tensor_world world{};
  if (!read_values(world, validate, q) || s.batch == 0) return;
  const std::vector<int32_t> starts = host_int32(world, *seq_starts);
  const std::vector<int32_t> lens = host_int32(world, *seq_lens);
  for (int64_t b = 0; b < s.batch; ++b) {
    SW_CHECK_ARG(starts[b] >= 0 && int64_t{starts[b]} + lens[b] <= s.num_keys, op, "seq_starts",
                 "must hold starts with 0 <= seq_starts[b] and seq_starts[b] + seq_lens[b] <= "
                 "num_keys=", s.num_keys);
  }
}

}  // namespace sketchwalk
