// Shared setup of the sparse_prefill and sparse_decode benches: Llama-3.1-8B attention shape
// (Hq = 32, Hkv = 8, head_dim 128, bf16), contiguous [batch, heads, tokens, head_dim] tensors
// with random values, and a host-built shared block index (index_heads = 1) on the device.
#pragma once

#include "bench_utils.cuh"
#include "sketchwalk/params.h"

namespace sketchwalk::bench {

constexpr int kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kBlockSize = 64;
using Element = __nv_bfloat16;

struct AttentionInputs {
  HostBlockIndex host_index;  // first: the device index buffers are sized from it
  DeviceBuffer<Element> q, k, v, out;
  DeviceBuffer<float> lse;
  DeviceBuffer<int> block_index, num_selected;
  SparseAttentionParams params{};

  AttentionInputs(int batch, int num_queries, int num_keys, double density)
      : host_index(build_block_index(batch, num_queries, num_keys, kBlockSize, density, 11)),
        q(static_cast<size_t>(batch) * kQHeads * num_queries * kHeadDim),
        k(static_cast<size_t>(batch) * kKvHeads * num_keys * kHeadDim),
        v(k.size()),
        out(q.size()),
        lse(static_cast<size_t>(batch) * kQHeads * num_queries),
        block_index(host_index.block_index.size()),
        num_selected(host_index.num_selected.size()) {
    fill_uniform(q, 8);
    fill_uniform(k, 9);
    fill_uniform(v, 10);
    block_index.copy_from_host(host_index.block_index);
    num_selected.copy_from_host(host_index.num_selected);

    const int num_q_blocks = ceil_div(num_queries, kBlockSize);
    SparseAttentionParams& p = params;
    p.q = q.get();
    p.k = k.get();
    p.v = v.get();
    p.out = out.get();
    p.lse = lse.get();
    p.q_token_stride = p.out_token_stride = kHeadDim;
    p.q_head_stride = p.out_head_stride = static_cast<int64_t>(num_queries) * kHeadDim;
    p.q_batch_stride = p.out_batch_stride = kQHeads * p.q_head_stride;
    p.k_token_stride = p.v_token_stride = kHeadDim;
    p.k_head_stride = p.v_head_stride = static_cast<int64_t>(num_keys) * kHeadDim;
    p.k_batch_stride = p.v_batch_stride = kKvHeads * p.k_head_stride;
    p.lse_head_stride = num_queries;
    p.lse_batch_stride = static_cast<int64_t>(kQHeads) * num_queries;
    p.block_index = block_index.get();
    p.num_selected = num_selected.get();
    p.index_row_stride = host_index.max_selected;
    p.index_head_stride = static_cast<int64_t>(num_q_blocks) * host_index.max_selected;
    p.index_batch_stride = p.index_head_stride;  // index_heads = 1
    p.count_head_stride = num_q_blocks;
    p.count_batch_stride = num_q_blocks;
    p.index_heads = 1;
    p.batch = batch;
    p.num_q_heads = kQHeads;
    p.num_kv_heads = kKvHeads;
    p.num_queries = num_queries;
    p.num_keys = num_keys;
    p.head_dim = kHeadDim;
    p.block_size = kBlockSize;
    p.num_q_blocks = num_q_blocks;
    p.max_selected = host_index.max_selected;
    p.softmax_scale = 1.f / std::sqrt(static_cast<float>(kHeadDim));
  }
};

}  // namespace sketchwalk::bench
