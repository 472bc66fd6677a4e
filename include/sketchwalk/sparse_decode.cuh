// Split-KV decode (op 6, sparse_decode, num_queries == 1), the parts shared by its split
// kernel (tensor cores: sparse_decode_mma.cuh): the split-count heuristic, the fp32 workspace
// of per-split partial (out, lse), and sparse_decode_combine_kernel, which merges the splits
// of each query head into out (input dtype) and lse (natural log). fp16/bf16, head_dim 64/128.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "sketchwalk/common.h"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"

namespace sketchwalk {

/// \brief Number of key-block splits per (batch, kv head, head chunk).
///
/// Goal: about two CTAs per SM (each keeps up to kStages - 1 = 2 blocks, 64 KiB at D = 128,
/// in flight; the pipeline's 96 KiB of shared memory fits two CTAs on an SM), without slices
/// so short that the combine dominates. head_chunks: CTAs per kv head (16 query heads each).
/// Llama-3.1-8B (Hkv = 8, group 4 -> 1 chunk) on an H100 or H200 (132 SMs):
///   batch 1: base = 8 CTAs     -> splits = ceil(264 / 8)  = 33 -> 264 CTAs; at 128K keys
///            and 20 % density a row keeps ~410 of 2048 blocks -> ~13 blocks (416 KiB) a CTA.
///   batch 4: base = 32         -> splits = 9  -> 288 CTAs.
///   batch 8: base = 64         -> splits = 5  -> 320 CTAs.
/// Capped so each split gets >= 4 blocks of the index width (max_selected: the host does
/// not know num_selected without a sync) and at 128 (workspace size).
inline int decode_num_splits(int batch, int num_kv_heads, int head_chunks, int max_selected,
                             int num_sms) {
  const int base = batch * num_kv_heads * head_chunks;
#ifdef SW_DECODE_CTAS_PER_SM  // dev knob for occupancy experiments
  const int target = SW_DECODE_CTAS_PER_SM * num_sms;
#else
  const int target = 2 * num_sms;
#endif
  int splits = (target + base - 1) / base;
  const int by_width = (max_selected + 3) / 4;
  if (splits > by_width) splits = by_width;
  if (splits > 128) splits = 128;
  return splits < 1 ? 1 : splits;
}

namespace detail {

template <typename Element>
SW_DEVICE Element from_float(float x);
template <>
SW_DEVICE __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
SW_DEVICE __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

}  // namespace detail

/// \brief Workspace: partial outputs [batch, num_q_heads, splits, head_dim] fp32, then
/// partial log-sum-exps (log2 domain) [batch, num_q_heads, splits] fp32.
inline size_t decode_workspace_floats(int batch, int num_q_heads, int splits, int head_dim) {
  return static_cast<size_t>(batch) * num_q_heads * splits * (head_dim + 1);
}

/// \brief grid (batch * num_q_heads), kNumThreads >= head_dim threads: merges the splits
/// of one query head, writes out (input dtype) and lse (natural log).
template <typename Element, int kHeadDim>
__global__ void __launch_bounds__(kHeadDim)
    sparse_decode_combine_kernel(const SparseAttentionParams params,
                                 const float* __restrict__ ws_out,
                                 const float* __restrict__ ws_lse, int num_splits) {
  const int row = blockIdx.x;  // batch_idx * num_q_heads + q_head
  const int batch_idx = row / params.num_q_heads;
  const int q_head = row % params.num_q_heads;
  const int d = threadIdx.x;
  const float* lse_row = ws_lse + static_cast<int64_t>(row) * num_splits;
  float m_total = -INFINITY;
#pragma unroll 8  // independent loads in flight (tens of splits at batch 1)
  for (int s = 0; s < num_splits; ++s) m_total = fmaxf(m_total, lse_row[s]);
  float weight_sum = 0.f, o = 0.f;
#pragma unroll 8
  for (int s = 0; s < num_splits; ++s) {
    const float w = merge_weight(lse_row[s], m_total);
    weight_sum += w;
    o = fmaf(w, ws_out[(static_cast<int64_t>(row) * num_splits + s) * kHeadDim + d], o);
  }
  Element* out = static_cast<Element*>(params.out) + batch_idx * params.out_batch_stride +
                 q_head * params.out_head_stride;
  // weight_sum == 0: no split saw a visible key: out 0, lse -inf.
  out[d] = detail::from_float<Element>(weight_sum > 0.f ? o / weight_sum : 0.f);
  if (d == 0) {
    params.lse[batch_idx * params.lse_batch_stride + q_head * params.lse_head_stride] =
        weight_sum > 0.f ? (m_total + log2f(weight_sum)) * kLn2 : -INFINITY;
  }
}

}  // namespace sketchwalk
