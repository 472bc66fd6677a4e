// What the CUDA host wrappers of sparse_prefill, sparse_prefill_varlen and sparse_decode share
// (csrc/cuda/sparse_prefill.cpp, sparse_prefill_varlen.cpp, sparse_decode.cpp): the params fill
// of SparseAttentionParams (include/sketchwalk/params.h: the dense layout, the index and sizes,
// a paged cache) and the row-alignment check of the tensor-core kernels
// (csrc/cuda/sparse_prefill*.cu, sparse_decode.cu).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <utility>

#include "checks.h"
#include "cuda/host.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

// The block index, the sizes and the softmax scale of SparseAttentionParams: the fields every
// layout (dense, packed, paged) fills the same way.
inline void fill_index_and_sizes(SparseAttentionParams& p, const at::Tensor& block_index,
                                 const at::Tensor& num_selected, const AttentionShape& s,
                                 std::optional<double> softmax_scale) {
  p.block_index = block_index.data_ptr<int>();
  p.num_selected = num_selected.data_ptr<int>();
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
inline void fill_paged_kv(SparseAttentionParams& p, const at::Tensor& k_pages,
                          const at::Tensor& v_pages, const at::Tensor& page_table) {
  copy_strides(k_pages, p.k_batch_stride, p.k_token_stride, p.k_head_stride);
  copy_strides(v_pages, p.v_batch_stride, p.v_token_stride, p.v_head_stride);
  p.page_table = page_table.data_ptr<int>();
  p.page_table_stride = page_table.stride(0);
}

// Every field of the dense layout but the optional arrays (seq_lens, page_table, ...), which stay
// null (sparse_decode sets them).
inline SparseAttentionParams fill_attention_params(const at::Tensor& q, const at::Tensor& k,
                                                   const at::Tensor& v, const at::Tensor& block_index,
                                                   const at::Tensor& num_selected,
                                                   const at::Tensor& out, const at::Tensor& lse,
                                                   const AttentionShape& s,
                                                   std::optional<double> softmax_scale) {
  SparseAttentionParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  copy_strides(q, p.q_batch_stride, p.q_head_stride, p.q_token_stride);
  copy_strides(k, p.k_batch_stride, p.k_head_stride, p.k_token_stride);
  copy_strides(v, p.v_batch_stride, p.v_head_stride, p.v_token_stride);
  copy_strides(out, p.out_batch_stride, p.out_head_stride, p.out_token_stride);
  copy_strides(lse, p.lse_batch_stride, p.lse_head_stride);
  fill_index_and_sizes(p, block_index, num_selected, s, softmax_scale);
  return p;
}

// Runs between the two steps of the op's checks (checks.h), after the shapes are known and
// before the block index is read.
inline void check_rows_aligned(const char* op, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v) {
  if (q.scalar_type() != at::kFloat) {  // the tensor-core kernels copy 16-byte chunks of rows
    for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{q, "q"}, {k, "k"}, {v, "v"}}) {
      const int64_t elems = 16 / static_cast<int64_t>(t.element_size());
      SW_CHECK_ARG(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(0) % elems == 0 &&
                       t.stride(1) % elems == 0 && t.stride(2) % elems == 0,
                   op, name, "must start 16-byte aligned with batch, head and token strides that are "
                   "multiples of 16 bytes on CUDA, got strides ", t.strides());
    }
  }
}

}  // namespace sketchwalk
