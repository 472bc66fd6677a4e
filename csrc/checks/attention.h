// The argument checks the three attention ops share (sparse_prefill, sparse_decode,
// sparse_prefill_varlen): q, k, v and the block index's ranks, dtypes, devices and shapes
// (check_attention_args), and the block index's contents (validate_block_index: values copied
// to the host, one device read per array on CUDA, then checked in plain loops). Templates over
// the tensor type, so that the ATen ops (csrc/cpu/, csrc/cuda/) and the stable-ABI ones
// (csrc/stable/) run the same checks with the same messages; values are read through the hooks of
// csrc/tensor_checks.h.
#pragma once

#include <climits>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "tensor_checks.h"

namespace sketchwalk {

// Sizes every attention op derives from its arguments (num_keys: of the key cache, 64 x
// max_pages for a paged one; the packed token counts for a ragged batch).
struct AttentionShape {
  int64_t batch, num_q_heads, num_kv_heads, num_queries, num_keys, head_dim;
  int64_t block_size, num_q_blocks, index_heads, max_selected;
};

namespace detail {

// The dense [batch, num_kv_heads, num_keys, head_dim] a paged cache stands for (for the shape
// checks and their messages).
struct KvDims {
  int64_t v[4];
};
inline std::string message_piece(piece_tag, const KvDims& d) {
  return "[" + std::to_string(d.v[0]) + ", " + std::to_string(d.v[1]) + ", " +
         std::to_string(d.v[2]) + ", " + std::to_string(d.v[3]) + "]";
}

// The names of the key and value arguments: k, v (sparse_prefill) or k_cache, v_cache.
struct KvArgs {
  const char* k;
  const char* v;
};

template <typename T>
using attention_scalar_type = std::decay_t<decltype(std::declval<const T&>().scalar_type())>;

// Everything but the key shapes: ranks (k and v only when dense), dtypes, devices, strides.
template <typename T>
void check_attention_tensors(const char* op, const T& q, const T& k, const T& v,
                             const T& block_index, const T& num_selected, const KvArgs& kv,
                             bool kv_ranks) {
  using ScalarType = attention_scalar_type<T>;
  check_rank(q, op, "q", 4, "[batch, num_q_heads, num_queries, head_dim]");
  if (kv_ranks) {
    check_rank(k, op, kv.k, 4, "[batch, num_kv_heads, num_keys, head_dim]");
    check_rank(v, op, kv.v, 4, "[batch, num_kv_heads, num_keys, head_dim]");
  }
  check_rank(block_index, op, "block_index", 4,
             "[batch, index_heads, num_q_blocks, max_selected]");
  check_rank(num_selected, op, "num_selected", 3, "[batch, index_heads, num_q_blocks]");
  check_dtype(q, op, "q", {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  SW_CHECK_ARG(k.scalar_type() == q.scalar_type(), op, kv.k, "must have the dtype of 'q' (",
               toString(q.scalar_type()), "), got ", toString(k.scalar_type()));
  SW_CHECK_ARG(v.scalar_type() == q.scalar_type(), op, kv.v, "must have the dtype of 'q' (",
               toString(q.scalar_type()), "), got ", toString(v.scalar_type()));
  check_dtype(block_index, op, "block_index", {ScalarType::Int});
  check_dtype(num_selected, op, "num_selected", {ScalarType::Int});
  check_same_device(k, q, op, kv.k, "q");
  check_same_device(v, q, op, kv.v, "q");
  check_same_device(block_index, q, op, "block_index", "q");
  check_same_device(num_selected, q, op, "num_selected", "q");
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, kv.k}, {&v, kv.v},
                         {&block_index, "block_index"}, {&num_selected, "num_selected"}}) {
    check_last_dim_contiguous(*t, op, name);
  }
}

// The shape checks of check_attention_args on the key dims `kd` ([batch, num_kv_heads,
// num_keys, head_dim]: k's sizes, or what a paged cache stands for); `shape_of_k` prints them.
template <typename T, typename KShape>
AttentionShape check_attention_shapes(const char* op, const T& q, const KvDims& kd,
                                      const KvArgs& kv, const KShape& shape_of_k, bool v_matches_k,
                                      const KShape& shape_of_v, const T& block_index,
                                      const T& num_selected, int64_t block_size) {
  AttentionShape s{};
  s.batch = q.size(0);
  s.num_q_heads = q.size(1);
  s.num_queries = q.size(2);
  s.head_dim = q.size(3);
  s.num_kv_heads = kd.v[1];
  s.num_keys = kd.v[2];
  // The kernels index keys with int (an expanded k can be longer).
  SW_CHECK_ARG(s.num_keys <= INT32_MAX, op, kv.k, "holds ", s.num_keys,
               " keys, more than the kernels index (", INT32_MAX, ")");
  SW_CHECK_ARG(is_attention_head_dim(s.head_dim), op, "q", "has unsupported head_dim ", s.head_dim,
               "; supported head_dim values are {", kAttentionHeadDimSmall, ", ",
               kAttentionHeadDimLarge, "}");
  SW_CHECK_ARG(kd.v[0] == s.batch, op, kv.k, "must have size ", s.batch,
               " at dim 0 (batch of 'q'), got shape ", shape_of_k);
  SW_CHECK_ARG(kd.v[3] == s.head_dim, op, kv.k, "must have size ", s.head_dim,
               " at dim 3 (head_dim of 'q'), got shape ", shape_of_k);
  SW_CHECK_ARG(v_matches_k, op, kv.v, "must have the shape of '", kv.k, "' ", shape_of_k,
               ", got ", shape_of_v);
  SW_CHECK_ARG(s.num_kv_heads >= 1 && s.num_q_heads % s.num_kv_heads == 0, op, kv.k,
               "has ", s.num_kv_heads, " heads, which must divide the ", s.num_q_heads,
               " heads of 'q' (GQA)");
  SW_CHECK_ARG(s.num_queries >= 1, op, "q", "must hold at least one query, got shape ", q.sizes());
  SW_CHECK_ARG(s.num_queries <= s.num_keys, op, "q", "has ", s.num_queries,
               " queries, more than the ", s.num_keys, " keys of '", kv.k,
               "' (queries end at the last key)");
  SW_CHECK_ARG(block_size >= 1, op, "block_size", "must be >= 1, got ", block_size);
  s.block_size = block_size;
  s.num_q_blocks = (s.num_queries + block_size - 1) / block_size;
  s.index_heads = block_index.size(1);
  s.max_selected = block_index.size(3);
  check_size(block_index, op, "block_index", 0, s.batch, "batch");
  SW_CHECK_ARG(s.index_heads == 1 || s.index_heads == s.num_kv_heads, op, "block_index",
               "must have index_heads (dim 1) equal to 1 or num_kv_heads=", s.num_kv_heads,
               ", got ", s.index_heads);
  check_size(block_index, op, "block_index", 2, s.num_q_blocks,
             "num_q_blocks = ceil(num_queries / block_size)");
  SW_CHECK_ARG(num_selected.sizes().equals(block_index.sizes().slice(0, 3)), op, "num_selected",
               "must have shape ", block_index.sizes().slice(0, 3),
               " (the first 3 dims of 'block_index'), got ", num_selected.sizes());
  return s;
}

}  // namespace detail

// sparse_prefill and sparse_decode (dense cache): everything checked before touching memory:
// ranks, dtypes, devices, strides, GQA divisibility, head_dim and block-index shapes.
template <typename T>
AttentionShape check_attention_args(const char* op, const T& q, const T& k, const T& v,
                                    const T& block_index, const T& num_selected,
                                    int64_t block_size, const detail::KvArgs& kv = {"k", "v"}) {
  detail::check_attention_tensors(op, q, k, v, block_index, num_selected, kv, true);
  const detail::KvDims kd{{k.size(0), k.size(1), k.size(2), k.size(3)}};
  return detail::check_attention_shapes(op, q, kd, kv, k.sizes(), v.sizes().equals(k.sizes()),
                                        v.sizes(), block_index, num_selected, block_size);
}

// The same for a paged cache whose pools k, v (ranks and shapes checked by the caller) stand
// for the dense cache `kd`.
template <typename T>
AttentionShape check_attention_args_paged(const char* op, const T& q, const T& k, const T& v,
                                          const detail::KvDims& kd, const T& block_index,
                                          const T& num_selected, int64_t block_size,
                                          const detail::KvArgs& kv) {
  detail::check_attention_tensors(op, q, k, v, block_index, num_selected, kv, false);
  return detail::check_attention_shapes(op, q, kd, kv, kd, true, kd, block_index, num_selected,
                                        block_size);
}

// The block index contents of `seqs` batch rows on the host (docs/ops.md): ids row-major
// [seqs, heads, rows, s.max_selected] and counts [seqs, heads, rows], of which the first
// s.num_q_blocks rows are checked: 0 <= num_selected <= max_selected, and each row's first
// num_selected entries strictly increasing within [0, causal_limit(row)]. Three passes, so that
// the message names the first kind of fault found, as the checks of all rows at once would.
inline void validate_block_index_host(const char* op, const int32_t* ids, const int32_t* counts,
                                      int64_t seqs, int64_t heads, int64_t rows,
                                      const AttentionShape& s) {
  const int64_t width = s.max_selected;
  const int64_t num_rows = seqs * heads * rows;
  auto checked = [&](int64_t r) { return r % rows < s.num_q_blocks; };
  if (width == 0) {
    for (int64_t r = 0; r < num_rows; ++r) {
      SW_CHECK_ARG(!checked(r) || counts[r] == 0, op, "num_selected",
                   "must be 0 when 'block_index' has no slots");
    }
    return;
  }
  for (int64_t r = 0; r < num_rows; ++r) {
    SW_CHECK_ARG(!checked(r) || (counts[r] >= 0 && counts[r] <= width), op, "num_selected",
                 "must lie in [0, max_selected=", width, "]");
  }
  for (int64_t r = 0; r < num_rows; ++r) {
    if (!checked(r)) continue;
    const int64_t limit = causal_limit_block(static_cast<int>(r % rows),
                                             static_cast<int>(s.num_queries),
                                             static_cast<int>(s.num_keys),
                                             static_cast<int>(s.block_size));
    const int32_t* row = ids + r * width;
    for (int64_t j = 0; j < counts[r]; ++j) {
      SW_CHECK_ARG(row[j] >= 0 && row[j] <= limit, op, "block_index",
                   "holds a key-block id out of range: each used entry of row i must lie in "
                   "[0, causal_limit(i)] (num_kv_blocks=",
                   (s.num_keys + s.block_size - 1) / s.block_size, ")");
    }
  }
  for (int64_t r = 0; r < num_rows; ++r) {
    if (!checked(r)) continue;
    const int32_t* row = ids + r * width;
    for (int64_t j = 1; j < counts[r]; ++j) {
      SW_CHECK_ARG(row[j] > row[j - 1], op, "block_index",
                   "must list each row's blocks in strictly increasing order (no duplicates)");
    }
  }
}

// validate_block_index_host on the op's tensors (shapes checked: [batch, index_heads,
// num_q_blocks, max_selected] and its first 3 dims), copied to the host (a device read).
template <typename T>
void validate_block_index(const char* op, const T& block_index, const T& num_selected,
                          const AttentionShape& s) {
  const std::vector<int32_t> counts = host_int32(tensor_world{}, num_selected);
  const std::vector<int32_t> ids =
      block_index.numel() == 0 ? std::vector<int32_t>{} : host_int32(tensor_world{}, block_index);
  validate_block_index_host(op, ids.data(), counts.data(), s.batch, s.index_heads,
                            s.num_q_blocks, s);
}

}  // namespace sketchwalk
