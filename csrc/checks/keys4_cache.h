// Argument checks of the 4-bit key cache that the keys4 ops and sparse_decode share
// (include/sketchwalk/keys4.h): the dense or paged cache, seq_lens, and with validate (no graph
// capture) the lengths and the live page ids. Templates over the tensor type, so that the ATen
// ops (csrc/checks/*.cpp, csrc/cuda/*.cpp) and the stable-ABI ones (csrc/stable/) run the same
// checks with the same messages; values are read through the hooks of csrc/tensor_checks.h.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"
#include "tensor_checks.h"

namespace sketchwalk {

// The 4-bit key cache of the keys4 ops: codes [batch, num_kv_heads, capacity, head_dim / 2]
// uint8 and scales [batch, num_kv_heads, capacity] float32 (token stride 1), on the device of
// `ref`.
struct Keys4CacheShape {
  int64_t batch, num_kv_heads, capacity, head_dim;
  int64_t num_pages;  // pages of a paged cache, 0 for a dense one
};

namespace detail {
template <typename T>
void check_keys4_codes_scales(const char* op, const T& codes, const T& scales, const T& ref,
                              const char* ref_arg, const char* codes_dims,
                              const char* scales_dims) {
  using ScalarType = scalar_type_of<T>;
  check_tensor(codes, op, "codes", 4, codes_dims, {ScalarType::Byte});
  check_tensor(scales, op, "scales", 3, scales_dims, {ScalarType::Float});
  check_same_device(codes, ref, op, "codes", ref_arg);
  check_same_device(scales, ref, op, "scales", ref_arg);
}

template <typename T>
void check_keys4_scales_shape(const char* op, const T& codes, const T& scales) {
  SW_CHECK_ARG(scales.sizes().equals(codes.sizes().slice(0, 3)), op, "scales",
               "must have shape ", codes.sizes().slice(0, 3),
               " (the first 3 dims of 'codes'), got ", scales.sizes());
}

template <typename T>
void check_keys4_head_dim(const char* op, const T& codes, int64_t head_dim) {
  SW_CHECK_ARG(head_dim >= 2 && head_dim <= kKeys4MaxHeadDim, op, "codes",
               "must have head_dim / 2 bytes per token with 2 <= head_dim <= ", kKeys4MaxHeadDim,
               ", got shape ", codes.sizes());
}
}  // namespace detail

template <typename T>
Keys4CacheShape check_keys4_cache(const char* op, const T& codes, const T& scales, const T& ref,
                                  const char* ref_arg) {
  detail::check_keys4_codes_scales(op, codes, scales, ref, ref_arg,
                                   "[batch, num_kv_heads, capacity, head_dim / 2]",
                                   "[batch, num_kv_heads, capacity]");
  Keys4CacheShape s{};
  s.batch = codes.size(0);
  s.num_kv_heads = codes.size(1);
  s.capacity = codes.size(2);
  s.head_dim = 2 * codes.size(3);
  detail::check_keys4_scales_shape(op, codes, scales);
  detail::check_keys4_head_dim(op, codes, s.head_dim);
  SW_CHECK_ARG(s.capacity <= INT_MAX, op, "codes", "must have capacity <= ", INT_MAX,
               " tokens, got ", s.capacity);
  return s;
}

// A paged 4-bit key cache (include/sketchwalk/keys4.h): codes [num_pages, num_kv_heads, 64,
// head_dim / 2], scales [num_pages, num_kv_heads, 64], page_table [batch, max_pages] int32, and
// seq_lens, which a paged cache needs; batch from page_table, capacity 64 * max_pages. Without
// page_table: check_keys4_cache. The page ids: check_keys4_page_ids.
template <typename T>
Keys4CacheShape check_keys4_cache_maybe_paged(const char* op, const T& codes, const T& scales,
                                              const std::optional<T>& page_table,
                                              const std::optional<T>& seq_lens, const T& ref,
                                              const char* ref_arg) {
  using ScalarType = detail::scalar_type_of<T>;
  if (!page_table.has_value()) return check_keys4_cache(op, codes, scales, ref, ref_arg);
  detail::check_keys4_codes_scales(op, codes, scales, ref, ref_arg,
                                   "[num_pages, num_kv_heads, 64, head_dim / 2] (paged)",
                                   "[num_pages, num_kv_heads, 64] (paged)");
  check_size(codes, op, "codes", 2, kIndexBlockSize, "tokens per page = the block size, 64");
  detail::check_keys4_scales_shape(op, codes, scales);
  check_tensor(*page_table, op, "page_table", 2, "[batch, max_pages]", {ScalarType::Int});
  check_same_device(*page_table, ref, op, "page_table", ref_arg);
  SW_CHECK_ARG(seq_lens.has_value(), op, "seq_lens",
               "must be given with page_table (the keys of each sequence)");
  Keys4CacheShape s{};
  s.batch = page_table->size(0);
  s.num_kv_heads = codes.size(1);
  s.capacity = kIndexBlockSize * page_table->size(1);
  s.head_dim = 2 * codes.size(3);
  s.num_pages = codes.size(0);
  detail::check_keys4_head_dim(op, codes, s.head_dim);
  SW_CHECK_ARG(s.capacity <= INT_MAX, op, "page_table", "must address at most ", INT_MAX,
               " tokens per sequence, got shape ", page_table->sizes());
  return s;
}

// With validate (no capture): every live page of a sequence (those below seq_lens[b] keys) has
// an id in [0, num_pages). Reads both tensors (one sync on CUDA).
template <typename T>
void check_keys4_page_ids(const char* op, const Keys4CacheShape& s,
                          const std::optional<T>& page_table, const std::optional<T>& seq_lens,
                          const T& ref, bool validate) {
  if (!page_table.has_value() || !read_values(tensor_world{}, validate, ref) || s.batch == 0) {
    return;
  }
  const auto pages = host_int32(tensor_world{}, *page_table);  // row-major [batch, max_pages]
  const auto lens = host_int32(tensor_world{}, *seq_lens);
  const int64_t max_pages = page_table->size(1);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t p = 0; p < max_pages && p * kIndexBlockSize < lens[b]; ++p) {
      const int32_t id = pages[b * max_pages + p];
      SW_CHECK_ARG(id >= 0 && id < s.num_pages, op, "page_table",
                   "holds a page id out of [0, num_pages=", s.num_pages,
                   ") among a sequence's live pages (those below seq_lens[b] keys)");
    }
  }
}

// seq_lens of the keys4 ops and sparse_decode, when given: [batch] int32 on the device of `ref`.
template <typename T>
void check_seq_lens_tensor(const char* op, const std::optional<T>& seq_lens, int64_t batch,
                           const T& ref, const char* ref_arg) {
  using ScalarType = detail::scalar_type_of<T>;
  if (!seq_lens.has_value()) return;
  check_rank(*seq_lens, op, "seq_lens", 1, "[batch]");
  check_dtype(*seq_lens, op, "seq_lens", {ScalarType::Int});
  check_same_device(*seq_lens, ref, op, "seq_lens", ref_arg);
  check_size(*seq_lens, op, "seq_lens", 0, batch, "batch");
}

// lo <= seq_lens[b] <= hi for every b (reads memory; callers run it only when read_values).
template <typename T>
void check_seq_lens_values(const char* op, const T& seq_lens, int64_t lo, int64_t hi,
                           const char* what) {
  if (seq_lens.numel() == 0) return;
  const auto [mn, mx] = int_range(tensor_world{}, seq_lens);
  SW_CHECK_ARG(mn >= lo && mx <= hi, op, "seq_lens", "must hold lengths in [", lo, ", ", hi,
               "] (", what, "), got values in [", mn, ", ", mx, "]");
}

}  // namespace sketchwalk
