// Argument checks of sparse_prefill_varlen (a ragged batch: packed NHD queries with
// cu_seqlens_q; keys packed with cu_seqlens_k, or in a paged cache with page_table and
// seq_lens_k), in two steps like sparse_prefill's: check_sparse_prefill_varlen_args (ranks,
// dtypes, devices, shapes: no memory read), then check_sparse_prefill_varlen_values (with
// validate and no graph capture: the lengths, page ids and each sequence's block index rows,
// copied to the host: one device read per array on CUDA). varlen_spans gives the CPU versions each
// sequence's spans. Templates over the tensor type (ATen and the stable ABI).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "checks/attention.h"
#include "sketchwalk/block_index.h"
#include "tensor_checks.h"

namespace sketchwalk {

// sparse_prefill_varlen's sizes: shape.batch is the number of sequences, num_queries / num_keys
// the packed token counts (paged: 64 x pages).
struct VarlenAttentionShape {
  AttentionShape shape;
  bool paged;         // keys in a page pool (page_table, seq_lens_k), else packed (cu_seqlens_k)
  int64_t num_pages;  // pages in the pool (paged only)
};

// One sequence of a ragged batch, read on the host: its queries are tokens [q0, q0 + num_queries)
// of q; its keys tokens [k0, k0 + num_keys) of packed k / v, or its first num_keys page rows.
struct VarlenSpan {
  int64_t q0, num_queries, k0, num_keys;
};

namespace detail {

constexpr const char* kVarlenOp = "sparse_prefill_varlen";

template <typename T>
void check_lengths_tensor(const T& t, const char* arg, const char* dims, int64_t size,
                          const T& q) {
  using ScalarType = attention_scalar_type<T>;
  check_tensor(t, kVarlenOp, arg, 1, dims, {ScalarType::Int});
  check_same_device(t, q, kVarlenOp, arg, "q");
  check_size(t, kVarlenOp, arg, 0, size, dims);
}

}  // namespace detail

template <typename T>
VarlenAttentionShape check_sparse_prefill_varlen_args(
    const T& q, const T& k, const T& v, const T& block_index, const T& num_selected,
    const T& cu_seqlens_q, const std::optional<T>& cu_seqlens_k,
    const std::optional<T>& seq_lens_k, const std::optional<T>& page_table,
    std::optional<double> softmax_scale) {
  using ScalarType = detail::attention_scalar_type<T>;
  using detail::check_lengths_tensor;
  constexpr const char* kOp = detail::kVarlenOp;
  check_rank(q, kOp, "q", 3, "[total_q, num_q_heads, head_dim] (packed tokens, NHD)");
  check_dtype(q, kOp, "q", {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  const bool paged = page_table.has_value();
  SW_CHECK_ARG(paged != cu_seqlens_k.has_value(), kOp, "cu_seqlens_k",
               "must be given for packed keys and omitted for a paged cache (page_table); got ",
               cu_seqlens_k.has_value() ? "both" : "neither");
  SW_CHECK_ARG(paged == seq_lens_k.has_value(), kOp, "seq_lens_k",
               "must be given with page_table (the keys of each sequence) and only then");
  const char* kv_dims = paged ? "[num_pages, 64, num_kv_heads, head_dim] (a paged cache)"
                              : "[total_k, num_kv_heads, head_dim] (packed tokens, NHD)";
  check_rank(k, kOp, "k", paged ? 4 : 3, kv_dims);
  check_rank(v, kOp, "v", paged ? 4 : 3, kv_dims);
  check_rank(block_index, kOp, "block_index", 4,
             "[num_seqs, index_heads, num_q_blocks, max_selected]");
  check_rank(num_selected, kOp, "num_selected", 3, "[num_seqs, index_heads, num_q_blocks]");
  for (auto [t, name] : {std::pair{&k, "k"}, {&v, "v"}}) {
    SW_CHECK_ARG(t->scalar_type() == q.scalar_type(), kOp, name, "must have the dtype of 'q' (",
                 toString(q.scalar_type()), "), got ", toString(t->scalar_type()));
    check_same_device(*t, q, kOp, name, "q");
  }
  check_dtype(block_index, kOp, "block_index", {ScalarType::Int});
  check_dtype(num_selected, kOp, "num_selected", {ScalarType::Int});
  check_same_device(block_index, q, kOp, "block_index", "q");
  check_same_device(num_selected, q, kOp, "num_selected", "q");
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"},
                         {&block_index, "block_index"}, {&num_selected, "num_selected"}}) {
    check_last_dim_contiguous(*t, kOp, name);
  }
  VarlenAttentionShape vs{};
  AttentionShape& s = vs.shape;
  vs.paged = paged;
  s.batch = block_index.size(0);
  s.num_q_heads = q.size(1);
  s.head_dim = q.size(2);
  s.num_queries = q.size(0);
  s.num_kv_heads = k.size(paged ? 2 : 1);
  SW_CHECK_ARG(is_attention_head_dim(s.head_dim), kOp, "q", "has unsupported head_dim ",
               s.head_dim, "; supported head_dim values are {", kAttentionHeadDimSmall, ", ",
               kAttentionHeadDimLarge, "}");
  check_size(k, kOp, "k", k.dim() - 1, s.head_dim, "head_dim of 'q'");
  if (paged) {
    check_size(k, kOp, "k", 1, kIndexBlockSize, "tokens per page = the block size, 64");
    vs.num_pages = k.size(0);
    s.num_keys = vs.num_pages * kIndexBlockSize;
  } else {
    s.num_keys = k.size(0);
  }
  SW_CHECK_ARG(v.sizes().equals(k.sizes()), kOp, "v", "must have the shape of 'k' ", k.sizes(),
               ", got ", v.sizes());
  SW_CHECK_ARG(s.num_kv_heads >= 1 && s.num_q_heads % s.num_kv_heads == 0, kOp, "k", "has ",
               s.num_kv_heads, " heads, which must divide the ", s.num_q_heads,
               " heads of 'q' (GQA)");
  check_int32(s.num_queries, kOp, "q", 0);
  check_int32(s.num_keys, kOp, "k", 0);
  s.block_size = kIndexBlockSize;
  s.num_q_blocks = block_index.size(2);
  // Some sequence holds a query, so the index needs a row (the kernels would write nothing).
  SW_CHECK_ARG(s.num_queries == 0 || s.num_q_blocks >= 1, kOp, "block_index",
               "has no rows (dim 2) for the ", s.num_queries, " queries of 'q'");
  s.index_heads = block_index.size(1);
  s.max_selected = block_index.size(3);
  SW_CHECK_ARG(s.index_heads == 1 || s.index_heads == s.num_kv_heads, kOp, "block_index",
               "must have index_heads (dim 1) equal to 1 or num_kv_heads=", s.num_kv_heads,
               ", got ", s.index_heads);
  SW_CHECK_ARG(num_selected.sizes().equals(block_index.sizes().slice(0, 3)), kOp, "num_selected",
               "must have shape ", block_index.sizes().slice(0, 3),
               " (the first 3 dims of 'block_index'), got ", num_selected.sizes());
  check_lengths_tensor(cu_seqlens_q, "cu_seqlens_q", "[num_seqs + 1]", s.batch + 1, q);
  if (paged) {
    check_lengths_tensor(*seq_lens_k, "seq_lens_k", "[num_seqs]", s.batch, q);
    check_tensor(*page_table, kOp, "page_table", 2, "[num_seqs, max_pages]", {ScalarType::Int});
    check_same_device(*page_table, q, kOp, "page_table", "q");
    check_size(*page_table, kOp, "page_table", 0, s.batch, "num_seqs");
  } else {
    check_lengths_tensor(*cu_seqlens_k, "cu_seqlens_k", "[num_seqs + 1]", s.batch + 1, q);
  }
  check_softmax_scale(softmax_scale, kOp);
  return vs;
}

// Reads the length arrays (one sync on CUDA) and checks them: cu_seqlens start at 0, end at the
// packed token counts and never decrease; each sequence has no more queries than keys and no
// more query blocks than block_index has rows; paged lengths fit the page table.
template <typename T>
std::vector<VarlenSpan> varlen_spans(const VarlenAttentionShape& vs, const T& cu_seqlens_q,
                                     const std::optional<T>& cu_seqlens_k,
                                     const std::optional<T>& seq_lens_k,
                                     const std::optional<T>& page_table) {
  constexpr const char* kOp = detail::kVarlenOp;
  const AttentionShape& s = vs.shape;
  const tensor_world world{};
  const std::vector<int32_t> cq = host_int32(world, cu_seqlens_q);
  // Paged: the key counts [num_seqs]; packed: the key offsets [num_seqs + 1].
  const std::vector<int32_t> ck = host_int32(world, vs.paged ? *seq_lens_k : *cu_seqlens_k);
  SW_CHECK_ARG(cq[0] == 0 && cq[s.batch] == s.num_queries, kOp, "cu_seqlens_q",
               "must start at 0 and end at total_q=", s.num_queries, " (the tokens of 'q'), got ",
               cq[0], " and ", cq[s.batch]);
  if (!vs.paged) {
    SW_CHECK_ARG(ck[0] == 0 && ck[s.batch] == s.num_keys, kOp, "cu_seqlens_k",
                 "must start at 0 and end at total_k=", s.num_keys, " (the tokens of 'k'), got ",
                 ck[0], " and ", ck[s.batch]);
  }
  const int64_t max_pages = vs.paged ? page_table->size(1) : 0;
  std::vector<VarlenSpan> spans(static_cast<size_t>(s.batch));
  for (int64_t b = 0; b < s.batch; ++b) {
    VarlenSpan& sp = spans[static_cast<size_t>(b)];
    sp.q0 = cq[b];
    sp.num_queries = cq[b + 1] - cq[b];
    SW_CHECK_ARG(sp.num_queries >= 0, kOp, "cu_seqlens_q", "must be non-decreasing, got ",
                 cq[b], " then ", cq[b + 1], " at sequence ", b);
    if (vs.paged) {
      sp.k0 = 0;
      sp.num_keys = ck[b];
      SW_CHECK_ARG(sp.num_keys >= 0 && sp.num_keys <= max_pages * kIndexBlockSize, kOp,
                   "seq_lens_k", "must hold lengths in [0, 64 * max_pages=",
                   max_pages * kIndexBlockSize, "] (the pages of 'page_table'), got ",
                   sp.num_keys, " at sequence ", b);
    } else {
      sp.k0 = ck[b];
      sp.num_keys = ck[b + 1] - ck[b];
      SW_CHECK_ARG(sp.num_keys >= 0, kOp, "cu_seqlens_k", "must be non-decreasing, got ",
                   ck[b], " then ", ck[b + 1], " at sequence ", b);
    }
    SW_CHECK_ARG(sp.num_queries <= sp.num_keys, kOp, "cu_seqlens_q", "gives sequence ", b, " ",
                 sp.num_queries, " queries, more than its ", sp.num_keys,
                 " keys (queries end at the last key)");
    SW_CHECK_ARG((sp.num_queries + kIndexBlockSize - 1) / kIndexBlockSize <= s.num_q_blocks, kOp,
                 "block_index", "has ", s.num_q_blocks, " rows (dim 2), fewer than the ",
                 (sp.num_queries + kIndexBlockSize - 1) / kIndexBlockSize,
                 " query blocks of sequence ", b);
  }
  return spans;
}

// The dense AttentionShape of one sequence of a ragged batch (batch 1, its own lengths and
// query blocks), for the per-sequence checks and the CPU kernel.
inline AttentionShape sequence_shape(const VarlenAttentionShape& vs, const VarlenSpan& sp) {
  AttentionShape s = vs.shape;
  s.batch = 1;
  s.num_queries = sp.num_queries;
  s.num_keys = sp.num_keys;
  s.num_q_blocks = (sp.num_queries + kIndexBlockSize - 1) / kIndexBlockSize;
  return s;
}

// With validate (and no capture): varlen_spans, each sequence's block-index rows
// (validate_block_index_host) and its live page ids in [0, num_pages).
template <typename T>
void check_sparse_prefill_varlen_values(const VarlenAttentionShape& vs, const T& q,
                                        const T& block_index, const T& num_selected,
                                        const T& cu_seqlens_q, const std::optional<T>& cu_seqlens_k,
                                        const std::optional<T>& seq_lens_k,
                                        const std::optional<T>& page_table, bool validate) {
  constexpr const char* kOp = detail::kVarlenOp;
  const tensor_world world{};
  if (!read_values(world, validate, q)) return;
  const auto spans = varlen_spans(vs, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table);
  const AttentionShape& shape = vs.shape;
  const std::vector<int32_t> counts = host_int32(world, num_selected);
  const std::vector<int32_t> ids =
      block_index.numel() == 0 ? std::vector<int32_t>{} : host_int32(world, block_index);
  std::vector<int32_t> pages;
  if (vs.paged) pages = host_int32(world, *page_table);
  const int64_t rows_per_seq = shape.index_heads * shape.num_q_blocks;
  for (size_t b = 0; b < spans.size(); ++b) {
    const VarlenSpan& sp = spans[b];
    if (sp.num_queries == 0) continue;  // no row of this sequence is read
    const int64_t bi = static_cast<int64_t>(b);
    const AttentionShape s = sequence_shape(vs, sp);
    validate_block_index_host(kOp, ids.data() + bi * rows_per_seq * s.max_selected,
                              counts.data() + bi * rows_per_seq, 1, s.index_heads,
                              shape.num_q_blocks, s);
    if (vs.paged) {
      const int64_t max_pages = page_table->size(1);
      for (int64_t j = 0; j * kIndexBlockSize < sp.num_keys; ++j) {
        const int32_t page = pages[bi * max_pages + j];
        SW_CHECK_ARG(page >= 0 && page < vs.num_pages, kOp, "page_table",
                     "holds a page id out of [0, num_pages=", vs.num_pages, ") among the ",
                     (sp.num_keys + kIndexBlockSize - 1) / kIndexBlockSize, " pages of sequence ",
                     bi);
      }
    }
  }
}

}  // namespace sketchwalk
