// What every sparse attention kernel needs to know about its inputs, whatever its arch
// (sparse_prefill_sm80.cuh, sparse_prefill_sm90.cuh, sparse_decode_mma.cuh):
//   SeqInfo     where one sequence of the batch lives: its lengths and the token offset of its
//               first query / key in the buffers (0 for the dense [batch, heads, tokens, D]
//               layout of today; a packed varlen layout gives each sequence its own offset);
//   DenseKv     how a key row of one KV head is addressed (dense strides; a paged cache would
//               map a key to its page here and nowhere else);
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
  int64_t q_token0;  // token of the sequence's first query in q / out
  int64_t k_token0;  // token of its first key in k / v

  /// The dense layout: sequence b is batch row b, every sequence of the same lengths.
  static SW_DEVICE SeqInfo dense(const SparseAttentionParams& p, int batch_idx) {
    return SeqInfo{batch_idx, p.num_queries, p.num_keys, 0, 0};
  }

  /// Key position of query t of the sequence.
  SW_DEVICE int query_position(int t) const { return sketchwalk::query_position(t, num_queries, num_keys); }

  /// Element offset of (head, query t) in a q-like tensor with these strides.
  SW_DEVICE int64_t q_offset(int64_t batch_stride, int64_t head_stride, int64_t token_stride,
                             int head, int64_t t) const {
    return batch_idx * batch_stride + head * head_stride + (q_token0 + t) * token_stride;
  }
};

/// \brief The K and V rows of one KV head of one sequence, dense strides.
template <typename Element>
struct DenseKv {
  const Element* k;  // key 0 of the head
  const Element* v;
  int64_t k_stride;  // elements between consecutive keys
  int64_t v_stride;

  static SW_DEVICE DenseKv make(const SparseAttentionParams& p, const SeqInfo& seq, int kv_head) {
    return DenseKv{static_cast<const Element*>(p.k) + seq.batch_idx * p.k_batch_stride +
                       kv_head * p.k_head_stride + seq.k_token0 * p.k_token_stride,
                   static_cast<const Element*>(p.v) + seq.batch_idx * p.v_batch_stride +
                       kv_head * p.v_head_stride + seq.k_token0 * p.v_token_stride,
                   p.k_token_stride, p.v_token_stride};
  }
  SW_DEVICE const Element* k_row(int64_t key) const { return k + key * k_stride; }
  SW_DEVICE const Element* v_row(int64_t key) const { return v + key * v_stride; }
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
