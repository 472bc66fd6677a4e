// run_sparse_attention_fp32: the float32 block-sparse attention of sparse_prefill,
// sparse_prefill_varlen and sparse_decode on CUDA (the tensor-core kernels take fp16 / bf16).
// A correctness path, exact in fp32: every layout the tensor-core kernels read (dense, packed
// ragged batch, paged cache, left-padded decode cache, fixed-capacity decode with seq_lens)
// through the same SeqInfo / KvSource / RowBlocks (attention_core.cuh), scalar FMAs, no
// tensor cores and no TF32.
//
// One CTA per (query block, query head, sequence); thread t owns query row t of the block: its
// q row in registers, its output accumulator in shared memory, an online softmax (running max
// m and sum l) in registers. Every thread of a CTA reads the same key row at the same time (one
// broadcast load), so the kernel is bound by its FMAs, not by memory.
#include <cmath>

#include "launch.h"
#include "sketchwalk/attention_core.cuh"
#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"

namespace sketchwalk {
namespace {

constexpr int kRows = kIndexBlockSize;  // query rows per CTA: one index block, one per thread

template <int kHeadDim>
__global__ void __launch_bounds__(kRows)
    sparse_attention_fp32_kernel(const SparseAttentionParams p) {
  // Row stride kHeadDim + 1: thread t's element d sits in bank (t + d) % 32, conflict-free.
  __shared__ float acc_rows[kRows * (kHeadDim + 1)];
  float* acc = acc_rows + threadIdx.x * (kHeadDim + 1);
  const SeqInfo seq = SeqInfo::make(p, blockIdx.z);
  const int q_block = blockIdx.x;
  if (q_block * kRows >= seq.num_queries) return;  // past a short sequence of a ragged batch
  const int head = blockIdx.y;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int t = q_block * kRows + threadIdx.x;
  if (t >= seq.num_queries) return;  // no __syncthreads below: each thread works alone

  const float* q_ptr = static_cast<const float*>(p.q) +
                       seq.q_offset(p.q_batch_stride, p.q_head_stride, p.q_token_stride, head, t);
  float q[kHeadDim];
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) {
    q[d] = q_ptr[d];
    acc[d] = 0.f;
  }
  const KvSource<float> kv = KvSource<float>::make(p, seq, kv_head);
  const RowBlocks row = RowBlocks::of(p, seq, kv_head, q_block);
  const int q_pos = seq.query_position(t);
  float m = -INFINITY, l = 0.f;
  for (int c = 0; c < row.count; ++c) {
    const int block = row[c];
    const float* k_rows = kv.k_block(block);
    const float* v_rows = kv.v_block(block);
    const int first_key = block * kIndexBlockSize;
    // Keys past the sequence's end (a partial last block, a fixed-capacity cache) or after the
    // query (causal) are never read.
    const int last_key = min(min(first_key + kIndexBlockSize, seq.num_keys) - 1, q_pos);
    for (int key = first_key; key <= last_key; ++key) {
      const float* k_row = k_rows + (key - first_key) * kv.k_stride;
      float dot = 0.f;
#pragma unroll
      for (int d = 0; d < kHeadDim; ++d) dot = fmaf(q[d], k_row[d], dot);
      const float s = dot * p.softmax_scale;
      if (s > m) {  // a new running max: rescale what was summed against the old one
        const float f = expf(m - s);  // 0 for the first key (m = -inf)
        l *= f;
#pragma unroll
        for (int d = 0; d < kHeadDim; ++d) acc[d] *= f;
        m = s;
      }
      const float e = expf(s - m);
      l += e;
      const float* v_row = v_rows + (key - first_key) * kv.v_stride;
#pragma unroll
      for (int d = 0; d < kHeadDim; ++d) acc[d] = fmaf(e, v_row[d], acc[d]);
    }
  }
  // A query with no visible key (l == 0): output 0, lse -inf (docs/ops.md sections 5-6). A NaN
  // logit makes l NaN, and the row's output and lse NaN.
  const bool any = !(l == 0.f);
  const float inv_l = any ? 1.f / l : 0.f;
  float* out = static_cast<float*>(p.out) +
               seq.q_offset(p.out_batch_stride, p.out_head_stride, p.out_token_stride, head, t);
#pragma unroll
  for (int d = 0; d < kHeadDim; ++d) out[d] = acc[d] * inv_l;
  p.lse[seq.batch_idx * p.lse_batch_stride + head * p.lse_head_stride + seq.q_token0 + t] =
      any ? m + logf(l) : -INFINITY;
}

}  // namespace

// Supported: float32, head_dim {64, 128}, block_size 64, num_q_heads and batch within the
// grid's y / z limits; anything else returns cudaErrorInvalidValue (the host wrapper checks
// first and names the value).
cudaError_t run_sparse_attention_fp32(const SparseAttentionParams& params, cudaStream_t stream) {
  if (params.block_size != kIndexBlockSize || params.num_kv_heads <= 0 ||
      params.num_q_heads % params.num_kv_heads != 0 || params.num_q_heads > kMaxGridYZ ||
      params.batch > kMaxGridYZ || params.num_q_blocks < 0 ||
      (params.index_heads != 1 && params.index_heads != params.num_kv_heads)) {
    return cudaErrorInvalidValue;
  }
  if (params.batch == 0 || params.num_q_heads == 0 || params.num_q_blocks == 0) return cudaSuccess;
  const dim3 grid(params.num_q_blocks, params.num_q_heads, params.batch);
  switch (params.head_dim) {
    case kAttentionHeadDimSmall:
      sparse_attention_fp32_kernel<kAttentionHeadDimSmall><<<grid, kRows, 0, stream>>>(params);
      break;
    case kAttentionHeadDimLarge:
      sparse_attention_fp32_kernel<kAttentionHeadDimLarge><<<grid, kRows, 0, stream>>>(params);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace sketchwalk
