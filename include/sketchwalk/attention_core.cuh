// What every sparse attention kernel needs to know about its inputs, whatever its arch
// (sparse_prefill_sm80.cuh, sparse_prefill_sm90.cuh, sparse_decode_mma.cuh):
//   SeqInfo     where one sequence of the batch lives: its lengths and the token offset of its
//               first query / key in the buffers (0 in the dense [batch, heads, tokens, D]
//               layout; cu_seqlens give each sequence of a packed ragged batch its own);
//   KvSource    how a key block of one KV head is addressed: dense / packed rows, or a page of a
//               paged cache (the only place a page table is read);
//   RowBlocks   the row of the block index a CTA walks (block_index.h), and which of its blocks
//               need the token-level causal mask.
// Torch-free; all offsets in elements.
#pragma once

#include <cstdint>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

/// \brief One sequence of a batch: lengths and token offsets (queries end at the last key).
struct SeqInfo {
  int batch_idx;
  int num_queries;
  int num_keys;
  int64_t q_token0;  // token of the sequence's first query in q / out / lse
  int64_t k_token0;  // token of its first key in k / v (packed keys; 0 otherwise)

  /// Sequence `batch_idx` of `p`: the dense layout (every sequence of the same lengths, batch
  /// row b), or its spans of a ragged batch (cu_seqlens_q / cu_seqlens_k), its key count
  /// (seq_lens) and the first key of a left-padded row (k_starts). The only reader of those.
  static SW_DEVICE SeqInfo make(const SparseAttentionParams& p, int batch_idx) {
    SeqInfo s{batch_idx, p.num_queries, p.num_keys, 0, 0};
    if (p.cu_seqlens_q != nullptr) {
      s.q_token0 = p.cu_seqlens_q[batch_idx];
      s.num_queries = p.cu_seqlens_q[batch_idx + 1] - p.cu_seqlens_q[batch_idx];
    }
    if (p.cu_seqlens_k != nullptr) {
      s.k_token0 = p.cu_seqlens_k[batch_idx];
      s.num_keys = p.cu_seqlens_k[batch_idx + 1] - p.cu_seqlens_k[batch_idx];
    }
    if (p.seq_lens != nullptr) s.num_keys = p.seq_lens[batch_idx];
    if (p.k_starts != nullptr) s.k_token0 = p.k_starts[batch_idx];
    return s;
  }

  /// Key position of query t of the sequence.
  SW_DEVICE int query_position(int t) const { return sketchwalk::query_position(t, num_queries, num_keys); }

  /// Element offset of (head, query t) in a q-like tensor with these strides (batch_stride 0
  /// for packed tokens).
  SW_DEVICE int64_t q_offset(int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                             int head, int64_t t) const {
    return batch_idx * batch_stride + head * head_stride + (q_token0 + t) * token_stride;
  }
};

/// \brief The K and V blocks of one KV head of one sequence: rows of a dense or packed buffer,
/// or pages of a paged cache (a page holds one 64-key block, block_index.h's kIndexBlockSize).
template <typename Element>
struct KvSource {
  const Element* k;         // dense / packed: key 0 of the head; paged: the pool at this head
  const Element* v;
  int64_t k_stride;         // elements between consecutive keys (within a page)
  int64_t v_stride;
  const int* pages;         // the sequence's page-table row, or nullptr
  int64_t k_page_stride;    // elements between pages (paged only)
  int64_t v_page_stride;

  static SW_DEVICE KvSource make(const SparseAttentionParams& p, const SeqInfo& seq, int kv_head) {
    const Element* k = static_cast<const Element*>(p.k) + kv_head * p.k_head_stride;
    const Element* v = static_cast<const Element*>(p.v) + kv_head * p.v_head_stride;
    if (p.page_table != nullptr) {
      return KvSource{k, v, p.k_token_stride, p.v_token_stride,
                      p.page_table + seq.batch_idx * p.page_table_stride, p.k_batch_stride,
                      p.v_batch_stride};
    }
    return KvSource{k + seq.batch_idx * p.k_batch_stride + seq.k_token0 * p.k_token_stride,
                    v + seq.batch_idx * p.v_batch_stride + seq.k_token0 * p.v_token_stride,
                    p.k_token_stride, p.v_token_stride, nullptr, 0, 0};
  }
  /// First K / V row of key block `block` (the next kIndexBlockSize rows are `k_stride` apart).
  SW_DEVICE const Element* k_block(int64_t block) const {
    return pages != nullptr ? k + pages[block] * k_page_stride : k + block * kIndexBlockSize * k_stride;
  }
  SW_DEVICE const Element* v_block(int64_t block) const {
    return pages != nullptr ? v + pages[block] * v_page_stride : v + block * kIndexBlockSize * v_stride;
  }
};

/// \brief The selected key blocks of one row of the block index (block_index.h): strictly
/// increasing ids, `count` of them.
struct RowBlocks {
  const int* ids;
  int count;

  /// Row `row` (a query block; 0 for decode) of the index row set kv head `kv_head` reads.
  static SW_DEVICE RowBlocks of(const SparseAttentionParams& p, const SeqInfo& seq, int kv_head,
                                int row) {
    const int index_head = p.index_heads == 1 ? 0 : kv_head;
    return RowBlocks{p.block_index + seq.batch_idx * p.index_batch_stride +
                         index_head * p.index_head_stride + row * p.index_row_stride,
                     p.num_selected[seq.batch_idx * p.count_batch_stride +
                                    index_head * p.count_head_stride + row]};
  }
  SW_DEVICE int operator[](int i) const { return ids[i]; }
};

/// \brief Whether key block `block` of `block_n` keys can hold a key after the query at key
/// position `first_query_pos` (the first of its tile): only such blocks (the diagonal block(s)
/// and a partial last block) need the token-level causal mask; every other kept block is
/// entirely visible to every query of the tile.
SW_DEVICE bool block_needs_causal_mask(int64_t block, int block_n, int first_query_pos) {
  return block * block_n + block_n - 1 > first_query_pos;
}

}  // namespace sketchwalk
