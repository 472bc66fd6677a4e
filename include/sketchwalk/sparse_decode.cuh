// Split-KV block-sparse decode (op 6, sparse_decode, num_queries == 1): each CTA takes one
// (batch, kv head, chunk of up to kHeads query heads of that kv head, split) and walks a
// contiguous slice of the row's selected key blocks on CUDA cores (decode is bound by the
// K/V bytes, not by FLOPs), streaming the blocks through a cp.async shared-memory pipeline
// (SparseDecodeTraits in kernel_traits.h), and writes a partial (out, lse) per query head and
// split into the fp32 workspace; sparse_decode_combine_kernel merges the splits. The split
// count is chosen by decode_num_splits() below. fp16/bf16, head_dim 64/128, block_size 64.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "sketchwalk/common.h"
#include "sketchwalk/kernel_traits.h"
#include "sketchwalk/mma_sm80.cuh"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"

namespace sketchwalk {

/// \brief Query heads per decode CTA: the smallest of {1, 2, 4, 8} that covers the GQA
/// group (group 7 -> 8 with one idle head slot); groups above 8 take several chunks.
SW_HOST_DEVICE constexpr int decode_heads_per_cta(int group) {
  return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8;
}

/// \brief Number of key-block splits per (batch, kv head, head chunk).
///
/// Goal: about two CTAs per SM (each keeps up to kStages - 1 = 2 blocks, 64 KiB at D = 128,
/// in flight; the pipeline's 96 KiB of shared memory fits two CTAs on an SM), without slices
/// so short that the combine dominates.
/// Llama-3.1-8B (Hkv = 8, group 4 -> 1 chunk) on an H100 (132 SMs):
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
SW_DEVICE void unpack8(const uint4& raw, float (&f)[8]);

template <>
SW_DEVICE void unpack8<__half>(const uint4& raw, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

template <>
SW_DEVICE void unpack8<__nv_bfloat16>(const uint4& raw, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

template <typename Element>
SW_DEVICE Element from_float(float x);
template <>
SW_DEVICE __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
SW_DEVICE __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

SW_DEVICE uint4 load_stream_16(const void* ptr) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(ptr));
  return r;
}

}  // namespace detail

/// \brief Workspace: partial outputs [batch, num_q_heads, splits, head_dim] fp32, then
/// partial log-sum-exps (log2 domain) [batch, num_q_heads, splits] fp32.
inline size_t decode_workspace_floats(int batch, int num_q_heads, int splits, int head_dim) {
  return static_cast<size_t>(batch) * num_q_heads * splits * (head_dim + 1);
}

/// \brief grid (splits, num_kv_heads * head_chunks, batch), Traits::kNumThreads threads.
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads)
    sparse_decode_split_kernel(const SparseAttentionParams params, float* __restrict__ ws_out,
                               float* __restrict__ ws_lse, int num_splits, int head_chunks) {
  using Element = typename Traits::Element;
  constexpr int kHeads = Traits::kHeads;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kLanesPerKey = Traits::kLanesPerKey;
  constexpr int kPasses = Traits::kPasses;
  constexpr int kBlockN = Traits::kBlockN;
  extern __shared__ __align__(16) unsigned char decode_smem[];
  // Main loop: kStages x [K block | V block] (Element). Merge: [kPartials][kHeads][kPartialStride]
  // floats, aliasing the pipeline once it is drained.
  Element* const stages = reinterpret_cast<Element*>(decode_smem);
  float* const partial_smem = reinterpret_cast<float*>(decode_smem);

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / head_chunks;
  const int chunk = blockIdx.y % head_chunks;
  const int batch_idx = blockIdx.z;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int head_lo = chunk * kHeads;  // first head of the chunk, within the group
  const int index_head = params.index_heads == 1 ? 0 : kv_head;
  // Keys of this sequence: a fixed-capacity cache holds garbage past seq_lens[b].
  const int num_keys = params.seq_lens != nullptr ? params.seq_lens[batch_idx] : params.num_keys;

  const int* row_index = params.block_index + batch_idx * params.index_batch_stride +
                         index_head * params.index_head_stride;
  const int num_sel = params.num_selected[batch_idx * params.count_batch_stride +
                                          index_head * params.count_head_stride];
  const int per_split = (num_sel + num_splits - 1) / num_splits;
  const int sel_begin = split * per_split;
  const int sel_end = min(num_sel, sel_begin + per_split);
  const int num_blocks = sel_end > sel_begin ? sel_end - sel_begin : 0;

  const int key_slot = lane / kLanesPerKey;          // key within the warp's pass
  const int d0 = (lane % kLanesPerKey) * Traits::kVecElems;
  const int key_lo = warp * Traits::kKeysPerWarp + key_slot;  // this lane's key of pass 0
  const int partial = key_lo;  // key lane 0 .. kPartials-1

  // q, pre-scaled into the log2 domain; an idle head slot (group 7 in a chunk of 8) reads 0.
  const float scale_log2 = params.softmax_scale * kLog2e;
  float q[kHeads][8];
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    const int head_in_group = head_lo + h;
    if (head_in_group < group) {
      const Element* qp = static_cast<const Element*>(params.q) +
                          batch_idx * params.q_batch_stride +
                          (kv_head * group + head_in_group) * params.q_head_stride + d0;
      detail::unpack8<Element>(*reinterpret_cast<const uint4*>(qp), q[h]);
#pragma unroll
      for (int i = 0; i < 8; ++i) q[h][i] *= scale_log2;
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[h][i] = 0.f;
    }
  }

  float m[kHeads], l[kHeads], acc[kHeads][8];
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[h][i] = 0.f;
  }

  const Element* k_base = static_cast<const Element*>(params.k) +
                          batch_idx * params.k_batch_stride + kv_head * params.k_head_stride;
  const Element* v_base = static_cast<const Element*>(params.v) +
                          batch_idx * params.v_batch_stride + kv_head * params.v_head_stride;

  // Block number `e` of the slice -> stage `stage`: thread tid copies 16-byte chunks tid,
  // tid + kNumThreads, ... of [K block | V block]. Keys past num_keys (a partial last block)
  // are zero-filled, never read: their scores are masked below and 0 * 0 adds nothing.
  auto load_block = [&](int e, int stage) {
    const int key_block = row_index[sel_begin + e];
    Element* dst = stages + stage * Traits::kStageElems;
    constexpr int kChunksPerTensor = kBlockN * kLanesPerKey;
#pragma unroll
    for (int i = 0; i < Traits::kCopiesPerThread; ++i) {
      const int c = tid + i * Traits::kNumThreads;
      const bool is_v = i >= Traits::kCopiesPerThread / 2;  // compile-time after unrolling
      const int within = is_v ? c - kChunksPerTensor : c;
      const int key_local = within / kLanesPerKey;
      const int col = (within % kLanesPerKey) * Traits::kVecElems;
      const int key = key_block * kBlockN + key_local;
      const bool valid = key < num_keys;
      const Element* src = is_v ? v_base + (valid ? key : 0) * params.v_token_stride + col
                                : k_base + (valid ? key : 0) * params.k_token_stride + col;
      sm80::cp_async_16(sm80::smem_u32(dst + (is_v ? kBlockN * kHeadDim : 0) +
                                       key_local * kHeadDim + col),
                        src, valid);
    }
  };

  // Prologue: kStages - 1 blocks in flight. Every thread commits one group per step, empty
  // or not, so wait_group<kStages - 2> always means "the oldest block has landed".
#pragma unroll
  for (int s = 0; s < Traits::kStages - 1; ++s) {
    if (s < num_blocks) load_block(s, s);
    sm80::cp_async_commit();
  }

  for (int e = 0; e < num_blocks; ++e) {
    sm80::cp_async_wait<Traits::kStages - 2>();
    __syncthreads();  // block e visible to all; every thread is done with block e - 1's stage
    const int ahead = e + Traits::kStages - 1;
    if (ahead < num_blocks) load_block(ahead, ahead % Traits::kStages);
    sm80::cp_async_commit();

    const Element* k_tile = stages + (e % Traits::kStages) * Traits::kStageElems;
    const Element* v_tile = k_tile + kBlockN * kHeadDim;
    const int key0 = row_index[sel_begin + e] * kBlockN + key_lo;

    float score[kHeads][kPasses];
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const int key_local = key_lo + p * Traits::kKeysPerPass;
      float kf[8];
      detail::unpack8<Element>(
          *reinterpret_cast<const uint4*>(k_tile + key_local * kHeadDim + d0), kf);
      const bool visible = key0 + p * Traits::kKeysPerPass < num_keys;
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(q[h][i], kf[i], dot);
#pragma unroll
        for (int off = kLanesPerKey / 2; off >= 1; off /= 2)
          dot += __shfl_xor_sync(0xffffffffu, dot, off);
        score[h][p] = visible ? dot : -INFINITY;
      }
    }
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      float block_max = -INFINITY;
#pragma unroll
      for (int p = 0; p < kPasses; ++p) block_max = fmaxf(block_max, score[h][p]);
      const float m_new = fmaxf(m[h], block_max);
      const float m_sub = max_or_zero(m_new);
      const float correction = exp2f(m[h] - m_sub);
      m[h] = m_new;
      l[h] *= correction;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[h][i] *= correction;
#pragma unroll
      for (int p = 0; p < kPasses; ++p) {
        score[h][p] = exp2f(score[h][p] - m_sub);  // now the probability
        l[h] += score[h][p];
      }
    }
#pragma unroll
    for (int p = 0; p < kPasses; ++p) {
      const int key_local = key_lo + p * Traits::kKeysPerPass;
      float vf[8];
      detail::unpack8<Element>(
          *reinterpret_cast<const uint4*>(v_tile + key_local * kHeadDim + d0), vf);
#pragma unroll
      for (int h = 0; h < kHeads; ++h) {
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[h][i] = fmaf(score[h][p], vf[i], acc[h][i]);
      }
    }
  }
  sm80::cp_async_wait<0>();  // only empty groups can be pending here; drain before aliasing
  __syncthreads();

  // Merge the kPartials key lanes of the CTA through shared memory.
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    float* slot = partial_smem + (partial * kHeads + h) * Traits::kPartialStride;
#pragma unroll
    for (int i = 0; i < 8; ++i) slot[d0 + i] = acc[h][i];
    if (lane % kLanesPerKey == 0) {
      slot[kHeadDim] = m[h];
      slot[kHeadDim + 1] = l[h];
    }
  }
  __syncthreads();
  for (int idx = tid; idx < kHeads * kHeadDim; idx += Traits::kNumThreads) {
    const int h = idx / kHeadDim;
    const int d = idx % kHeadDim;
    if (head_lo + h >= group) continue;
    float m_total = -INFINITY;
#pragma unroll
    for (int pi = 0; pi < Traits::kPartials; ++pi)
      m_total = fmaxf(m_total, partial_smem[(pi * kHeads + h) * Traits::kPartialStride + kHeadDim]);
    float l_total = 0.f, o = 0.f;
#pragma unroll
    for (int pi = 0; pi < Traits::kPartials; ++pi) {
      const float* slot = partial_smem + (pi * kHeads + h) * Traits::kPartialStride;
      const float w = merge_weight(slot[kHeadDim], m_total);
      l_total = fmaf(w, slot[kHeadDim + 1], l_total);
      o = fmaf(w, slot[d], o);
    }
    const int q_head = kv_head * group + head_lo + h;
    const int64_t row = (static_cast<int64_t>(batch_idx) * params.num_q_heads + q_head) * num_splits + split;
    // l_total == 0: this split saw no key (empty slice): weight 0 in the combine.
    ws_out[row * kHeadDim + d] = l_total > 0.f ? o / l_total : 0.f;
    if (d == 0) ws_lse[row] = l_total > 0.f ? m_total + log2f(l_total) : -INFINITY;
  }
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
  for (int s = 0; s < num_splits; ++s) m_total = fmaxf(m_total, lse_row[s]);
  float weight_sum = 0.f, o = 0.f;
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

/// \brief Split kernel + combine kernel for one (dtype, head_dim, heads-per-CTA).
template <typename Element, int kHeadDim, int kHeads>
cudaError_t launch_sparse_decode(const SparseAttentionParams& params, float* workspace,
                                 int num_splits, cudaStream_t stream) {
  using Traits = SparseDecodeTraits<kHeadDim, kHeads, Element>;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int head_chunks = (group + kHeads - 1) / kHeads;
  float* ws_out = workspace;
  float* ws_lse = workspace + static_cast<size_t>(params.batch) * params.num_q_heads * num_splits * kHeadDim;
  const dim3 grid(num_splits, params.num_kv_heads * head_chunks, params.batch);
  auto kernel = sparse_decode_split_kernel<Traits>;
  cudaError_t err = cudaSuccess;
  if (Traits::kSmemBytes > 48 * 1024) {  // opt-in above the default limit (not a stream op)
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(Traits::kSmemBytes));
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, Traits::kNumThreads, Traits::kSmemBytes, stream>>>(params, ws_out, ws_lse,
                                                                     num_splits, head_chunks);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  sparse_decode_combine_kernel<Element, kHeadDim>
      <<<params.batch * params.num_q_heads, kHeadDim, 0, stream>>>(params, ws_out, ws_lse, num_splits);
  return cudaGetLastError();
}

}  // namespace sketchwalk
