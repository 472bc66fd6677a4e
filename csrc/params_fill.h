// Filling the kernels' params structs (include/sketchwalk/params.h) from tensors of either type
// the extension compiles against (at::Tensor, torch::stable::Tensor), for the CPU and the CUDA
// kernels alike: strides into params fields, and the SparseAttentionParams of the three
// attention ops (dense, paged, ragged). Torch-free: templates over the tensor type.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

#include "checks/attention.h"
#include "checks/sparse_prefill_varlen.h"
#include "sketchwalk/params.h"
#include "tensor_checks.h"

namespace sketchwalk {

// Copies t.stride(0), t.stride(1), ... into the given params fields, in that order (strides
// in elements, as params.h wants them), e.g. copy_strides(q, p.q_batch_stride, p.q_head_stride,
// p.q_token_stride).
template <typename T, typename... Fields>
void copy_strides(const T& t, Fields&... fields) {
  static_assert((std::is_same_v<Fields, int64_t> && ...), "params strides are int64_t");
  int64_t dim = 0;
  ((fields = t.stride(dim++)), ...);
}

// The data pointer of an optional int32 length array such as seq_lens (nullptr when absent);
// `holder` keeps its contiguous copy (contiguous_of hook: csrc/checks.h, csrc/stable/common.h)
// alive until the kernel has run.
template <typename T>
const int* seq_lens_ptr(const std::optional<T>& seq_lens, std::optional<T>& holder) {
  if (!seq_lens.has_value()) return nullptr;
  holder = contiguous_of(tensor_world{}, *seq_lens);
  return holder->template const_data_ptr<int>();
}

// The block index, the sizes and the softmax scale of SparseAttentionParams: the fields every
// layout (dense, packed, paged) fills the same way.
template <typename T>
void fill_index_and_sizes(SparseAttentionParams& p, const T& block_index, const T& num_selected,
                          const AttentionShape& s, std::optional<double> softmax_scale) {
  p.block_index = block_index.template const_data_ptr<int>();
  p.num_selected = num_selected.template const_data_ptr<int>();
  copy_strides(block_index, p.index_batch_stride, p.index_head_stride, p.index_row_stride);
  copy_strides(num_selected, p.count_batch_stride, p.count_head_stride);
  p.index_heads = static_cast<int>(s.index_heads);
  p.batch = static_cast<int>(s.batch);
  p.num_q_heads = static_cast<int>(s.num_q_heads);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.num_queries = static_cast<int>(s.num_queries);
  p.num_keys = static_cast<int>(s.num_keys);
  p.head_dim = static_cast<int>(s.head_dim);
  p.block_size = static_cast<int>(s.block_size);
  p.num_q_blocks = static_cast<int>(s.num_q_blocks);
  p.max_selected = static_cast<int>(s.max_selected);
  p.softmax_scale = static_cast<float>(softmax_scale_or_default(softmax_scale, s.head_dim));
}

// K / V as page pools [num_pages, 64, num_kv_heads, head_dim] (the batch strides step pages,
// KvSource in attention_core.cuh) and the page table [batch, max_pages]: sparse_decode and
// sparse_prefill_varlen fill a paged cache the same way.
template <typename T>
void fill_paged_kv(SparseAttentionParams& p, const T& k_pages, const T& v_pages,
                   const T& page_table) {
  copy_strides(k_pages, p.k_batch_stride, p.k_token_stride, p.k_head_stride);
  copy_strides(v_pages, p.v_batch_stride, p.v_token_stride, p.v_head_stride);
  p.page_table = page_table.template const_data_ptr<int>();
  p.page_table_stride = page_table.stride(0);
}

// The data pointers of SparseAttentionParams (every other field zero).
template <typename T>
SparseAttentionParams attention_pointers(const T& q, const T& k, const T& v, const T& out,
                                         const T& lse) {
  SparseAttentionParams p{};
  p.q = q.const_data_ptr();
  p.k = k.const_data_ptr();
  p.v = v.const_data_ptr();
  p.out = out.mutable_data_ptr();
  p.lse = lse.template mutable_data_ptr<float>();
  return p;
}

// Every field of the dense layout [batch, heads, tokens, head_dim] but the optional arrays
// (seq_lens, page_table, k_starts), which stay null (sparse_decode sets them).
template <typename T>
SparseAttentionParams fill_attention_params(const T& q, const T& k, const T& v,
                                            const T& block_index, const T& num_selected,
                                            const T& out, const T& lse, const AttentionShape& s,
                                            std::optional<double> softmax_scale) {
  SparseAttentionParams p = attention_pointers(q, k, v, out, lse);
  copy_strides(q, p.q_batch_stride, p.q_head_stride, p.q_token_stride);
  copy_strides(k, p.k_batch_stride, p.k_head_stride, p.k_token_stride);
  copy_strides(v, p.v_batch_stride, p.v_head_stride, p.v_token_stride);
  copy_strides(out, p.out_batch_stride, p.out_head_stride, p.out_token_stride);
  copy_strides(lse, p.lse_batch_stride, p.lse_head_stride);
  fill_index_and_sizes(p, block_index, num_selected, s, softmax_scale);
  return p;
}

// sparse_decode's cache layout on top of fill_attention_params: the key counts (seq_lens), the
// first key of a left-padded row (seq_starts) and a paged cache's pools and table; `lens` and
// `starts` keep contiguous copies of the arrays alive until the kernel has run.
template <typename T>
void fill_decode_layout(SparseAttentionParams& p, const T& k_cache, const T& v_cache,
                        const std::optional<T>& seq_lens, const std::optional<T>& page_table,
                        const std::optional<T>& seq_starts, std::optional<T>& lens,
                        std::optional<T>& starts) {
  p.seq_lens = seq_lens_ptr(seq_lens, lens);
  p.k_starts = seq_lens_ptr(seq_starts, starts);  // SeqInfo::make offsets the row's keys
  if (page_table.has_value()) fill_paged_kv(p, k_cache, v_cache, *page_table);
}

// sparse_prefill_varlen: packed [total, heads, head_dim] tokens (batch strides 0, cu_seqlens),
// keys packed (cu_seqlens_k) or paged (page_table, seq_lens_k); out like q, lse [heads, total_q].
// The length arrays are int32 [n] with a contiguous last (only) dim: checked, so contiguous.
template <typename T>
SparseAttentionParams fill_varlen_params(const VarlenAttentionShape& vs, const T& q, const T& k,
                                         const T& v, const T& block_index,
                                         const T& num_selected, const T& out, const T& lse,
                                         const T& cu_seqlens_q,
                                         const std::optional<T>& cu_seqlens_k,
                                         const std::optional<T>& seq_lens_k,
                                         const std::optional<T>& page_table,
                                         std::optional<double> softmax_scale) {
  SparseAttentionParams p = attention_pointers(q, k, v, out, lse);
  p.q_batch_stride = 0, p.q_head_stride = q.stride(1), p.q_token_stride = q.stride(0);
  p.out_batch_stride = 0, p.out_head_stride = out.stride(1), p.out_token_stride = out.stride(0);
  p.lse_batch_stride = 0, p.lse_head_stride = lse.stride(0);
  if (vs.paged) {
    fill_paged_kv(p, k, v, *page_table);
    p.seq_lens = seq_lens_k->template const_data_ptr<int>();
  } else {
    p.k_batch_stride = 0, p.k_token_stride = k.stride(0), p.k_head_stride = k.stride(1);
    p.v_batch_stride = 0, p.v_token_stride = v.stride(0), p.v_head_stride = v.stride(1);
    p.cu_seqlens_k = cu_seqlens_k->template const_data_ptr<int>();
  }
  p.cu_seqlens_q = cu_seqlens_q.template const_data_ptr<int>();
  fill_index_and_sizes(p, block_index, num_selected, vs.shape, softmax_scale);
  return p;
}

// query_spread_rows' params from checked tensors (check_query_spread_rows_args gave the rows
// and width): cu_seqlens and seq_q_blocks contiguous (or empty); spread float32 and dense_rows
// bool, both contiguous [rows, width].
template <typename T>
QuerySpreadParams query_spread_params(const T& q, int64_t block_size, double frac,
                                      int64_t dense_last_q_blocks, const std::optional<T>& cu,
                                      const std::optional<T>& seq_q_blocks, int64_t rows,
                                      int64_t width, const T& spread, const T& dense_rows) {
  QuerySpreadParams p{};
  p.q = q.const_data_ptr();
  copy_strides(q, p.q_batch_stride, p.q_head_stride, p.q_token_stride);
  p.cu_seqlens = cu.has_value() ? cu->template const_data_ptr<int>() : nullptr;
  p.seq_q_blocks = seq_q_blocks.has_value() ? seq_q_blocks->template const_data_ptr<int>() : nullptr;
  p.spread = spread.template mutable_data_ptr<float>();
  p.dense_rows = dense_rows.template mutable_data_ptr<bool>();
  p.rows = static_cast<int>(rows);
  p.heads = static_cast<int>(q.size(1));
  p.tokens = static_cast<int>(q.size(2));
  p.head_dim = static_cast<int>(q.size(3));
  p.block_size = static_cast<int>(block_size);
  p.width = static_cast<int>(width);
  p.dense_last_q_blocks = static_cast<int>(dense_last_q_blocks);
  p.frac = frac;
  return p;
}

}  // namespace sketchwalk
