// THE selected-block format: written by select_blocks, read by sparse_prefill and
// sparse_decode (CPU and CUDA alike). docs/ops.md documents it for users; this header
// is the single definition for code. Torch-free.
//
//   block_index   int32 [batch, index_heads, num_q_blocks, max_selected]
//   num_selected  int32 [batch, index_heads, num_q_blocks]
//
//   row (b, g, i):  block_index[b, g, i, 0 : num_selected[b, g, i]]
//                   strictly increasing key-block ids, each in [0, causal_limit(i)]
//                   block_index[b, g, i, num_selected[b, g, i] :] = -1 (padding, never read)
//
//   index_heads == 1            : one selection shared by all heads (Sketch&Walk)
//   index_heads == num_kv_heads : kv head g (and its query-head group) reads row g
//
//   query block i covers queries [i*b, min((i+1)*b, Tq)); query t sits at key position
//   Tk - Tq + t, so causal_limit(i) is the key block of the row's last query.
#pragma once

#include <cstdint>

#include "sketchwalk/common.h"

namespace sketchwalk {

constexpr int kBlockIndexPad = -1;  // value of unused slots
// Tokens per block on both axes of the index the attention ops read (CPU and CUDA alike).
constexpr int kIndexBlockSize = 64;

// Key block holding the last query of query block `q_block_idx`.
// (int64 inside: q_block_idx * block_size + block_size - 1 passes int32 for num_queries near
// 2^31 with a large block_size.)
SW_HOST_DEVICE int causal_limit_block(int q_block_idx, int num_queries, int num_keys,
                                      int block_size) {
  const int64_t last_query = static_cast<int64_t>(q_block_idx) * block_size + block_size - 1;
  const int64_t last_q = last_query < num_queries - 1 ? last_query : num_queries - 1;
  return static_cast<int>((static_cast<int64_t>(num_keys) - num_queries + last_q) / block_size);
}

// Key position of query t (queries end at the last key).
SW_HOST_DEVICE int query_position(int t, int num_queries, int num_keys) {
  return num_keys - num_queries + t;
}

}  // namespace sketchwalk
