// Split-KV block-sparse decode on tensor cores (op 6, sparse_decode, num_queries == 1): the
// query heads of one kv head are the 16 rows of an m16 tile (a GQA group of 4 fills 4 of them;
// idle rows are zero and never written), so one mma.m16n8k16 scores 8 keys against every head
// of the group and P V runs as in the prefill mainloop. Each CTA takes one (batch, kv head,
// chunk of 16 query heads, split) and streams its slice of the row's selected key blocks
// through the same cp.async pipeline as the prefill (swizzled tiles, tile_load_sm80.cuh);
// warp w scores and accumulates keys [16w, 16w + 16) of every block with its own online
// softmax, and the 4 warp states are merged through shared memory into the split's partial
// (out, lse) in the fp32 workspace, which sparse_decode_combine_kernel (sparse_decode.cuh)
// merges across splits.
//
// Why tensor cores for a single query: a CUDA-core decode (a dot product and a 4-shuffle
// reduction per key and head, the project's kernel until 3115823) spends ~4000 warp
// instructions per 64-key block at group 4 and was issue-bound at ~2.1 TB/s on an H200; this
// one spends ~800 (per warp: 32 mma, 16 ldmatrix, the softmax and the O rescale) and reaches
// ~3.3 TB/s. P enters P V in the input's 16-bit type, as in the prefill (FlashAttention-2).
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "sketchwalk/attention_core.cuh"
#include "sketchwalk/common.h"
#include "sketchwalk/kernel_traits.h"
#include "sketchwalk/mma_sm80.cuh"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"
#include "sketchwalk/tile_load_sm80.cuh"

namespace sketchwalk {

/// \brief 32 bits (two 16-bit values) at p, or 0 when `active` is false.
template <typename Element>
SW_DEVICE uint32_t load_pair_or_zero(const Element* p, bool active) {
  return active ? *reinterpret_cast<const uint32_t*>(p) : 0u;
}

/// \brief grid (splits, num_kv_heads * head_chunks, batch), Traits::kNumThreads threads,
/// Traits::kSmemBytes of dynamic shared memory. Same workspace layout as the CUDA-core split
/// kernel: ws_out [batch, num_q_heads, splits, D], ws_lse [batch, num_q_heads, splits] (log2).
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads)
    sparse_decode_mma_split_kernel(const SparseAttentionParams params, float* __restrict__ ws_out,
                                   float* __restrict__ ws_lse, int num_splits, int head_chunks) {
  using Element = typename Traits::Element;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kStages = Traits::kStages;
  constexpr int kE = Traits::kElemsPerChunk;
  constexpr int kKSteps = kHeadDim / 16;
  constexpr int kDTiles = kHeadDim / 8;

  extern __shared__ __align__(128) unsigned char decode_mma_smem[];
  Element* const k_smem = reinterpret_cast<Element*>(decode_mma_smem);  // [kStages][64][D]
  Element* const v_smem = k_smem + kStages * Traits::kTileElems;         // [kStages][64][D]
  float* const partial_smem = reinterpret_cast<float*>(decode_mma_smem);  // after the main loop

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int g = lane / 4, c = lane % 4;  // mma fragment row / column pair
  const int split = blockIdx.x;
  const int kv_head = blockIdx.y / head_chunks;
  const int chunk = blockIdx.y % head_chunks;
  const int batch_idx = blockIdx.z;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int head_lo = chunk * Traits::kRows;  // first head of the chunk, within the group
  const int rows = min(Traits::kRows, group - head_lo);
  const SeqInfo seq = SeqInfo::make(params, batch_idx);  // seq_lens: a fixed-capacity or paged cache
  const int num_keys = seq.num_keys;

  const RowBlocks row_blocks = RowBlocks::of(params, seq, kv_head, 0);
  const int* row_index = row_blocks.ids;
  const int num_sel = row_blocks.count;
  const int per_split = (num_sel + num_splits - 1) / num_splits;
  const int sel_begin = split * per_split;
  const int sel_end = min(num_sel, sel_begin + per_split);
  const int num_blocks = sel_end > sel_begin ? sel_end - sel_begin : 0;

  const KvSource<Element> kv = KvSource<Element>::make(params, seq, kv_head);
  // Block e of the slice -> stage: rows past num_keys (a partial last block) are zero-filled.
  auto load_block = [&](int e, int stage) {
    const int64_t block = row_index[sel_begin + e];
    const int valid = static_cast<int>(min(static_cast<int64_t>(kBlockN), num_keys - block * kBlockN));
    detail::load_kv_block_async<Traits>(k_smem + stage * Traits::kTileElems,
                                        v_smem + stage * Traits::kTileElems, kv, block, valid, tid);
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_blocks) load_block(s, s);
    sm80::cp_async_commit();  // empty groups keep the wait count uniform
  }

  // Q as A fragments (rows g and g + 8 = heads head_lo + g, + 8; idle rows zero), unscaled:
  // the scale multiplies the fp32 scores, so its sign and size need no care here.
  uint32_t qa[kKSteps][4];
  {
    const Element* q_lo = static_cast<const Element*>(params.q) + batch_idx * params.q_batch_stride +
                          (kv_head * group + head_lo + g) * params.q_head_stride + 2 * c;
    const Element* q_hi = q_lo + 8 * params.q_head_stride;
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      qa[kk][0] = load_pair_or_zero(q_lo + 16 * kk, g < rows);
      qa[kk][1] = load_pair_or_zero(q_hi + 16 * kk, g + 8 < rows);
      qa[kk][2] = load_pair_or_zero(q_lo + 16 * kk + 8, g < rows);
      qa[kk][3] = load_pair_or_zero(q_hi + 16 * kk + 8, g + 8 < rows);
    }
  }

  const float scale_log2 = params.softmax_scale * kLog2e;
  float o_acc[kDTiles][4];
  float row_max[2] = {-INFINITY, -INFINITY};  // log2 domain, rows g and g + 8
  float row_sum[2] = {0.f, 0.f};               // this thread's columns; quad-reduced at the end
#pragma unroll
  for (int dt = 0; dt < kDTiles; ++dt) o_acc[dt][0] = o_acc[dt][1] = o_acc[dt][2] = o_acc[dt][3] = 0.f;
  const int warp_key0 = warp * Traits::kKeysPerWarp;

  for (int e = 0; e < num_blocks; ++e) {
    sm80::cp_async_wait<kStages - 2>();
    __syncthreads();  // block e visible to all; every warp is done with block e - 1's stage
    const int ahead = e + kStages - 1;
    if (ahead < num_blocks) load_block(ahead, ahead % kStages);
    sm80::cp_async_commit();
    const int stage = e % kStages;
    const uint32_t k_stage_u32 = sm80::smem_u32(k_smem + stage * Traits::kTileElems);
    const uint32_t v_stage_u32 = sm80::smem_u32(v_smem + stage * Traits::kTileElems);

    // S = Q K^T over this warp's 16 keys: two n8 tiles.
    float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
    for (int kk = 0; kk < kKSteps; ++kk) {
      uint32_t b[4];
      sm80::ldmatrix_x4(b, k_stage_u32 + 2 * detail::swizzle<kHeadDim, kE>(
                                             warp_key0 + (lane / 16) * 8 + lane % 8,
                                             kk * 2 + (lane / 8) % 2));
      sm80::mma_m16n8k16<Element>(s[0], qa[kk], b[0], b[1]);
      sm80::mma_m16n8k16<Element>(s[1], qa[kk], b[2], b[3]);
    }
    // Scale into the log2 domain; keys past num_keys (only in a partial last block) are -inf.
    const int key_first = row_index[sel_begin + e] * kBlockN + warp_key0;
    const bool partial = key_first + Traits::kKeysPerWarp > num_keys;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[nt][i] *= scale_log2;
        if (partial && key_first + nt * 8 + 2 * c + (i & 1) >= num_keys) s[nt][i] = -INFINITY;
      }

    // Online softmax per row (the 4 lanes of a quad share a row).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = fmaxf(row_max[r], fmaxf(fmaxf(s[0][2 * r], s[0][2 * r + 1]),
                                         fmaxf(s[1][2 * r], s[1][2 * r + 1])));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_sub = max_or_zero(mx);
      const float correction = sm80::exp2_approx(row_max[r] - m_sub);
      row_max[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const float p = sm80::exp2_approx(s[nt][2 * r + i] - m_sub);
          s[nt][2 * r + i] = p;
          sum += p;
        }
      row_sum[r] = row_sum[r] * correction + sum;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        o_acc[dt][2 * r] *= correction;
        o_acc[dt][2 * r + 1] *= correction;
      }
    }

    // O += P V over the warp's 16 keys: P as the A operand, V^T fragments by ldmatrix.trans.
    uint32_t pa[4];
    pa[0] = sm80::pack2<Element>(s[0][0], s[0][1]);
    pa[1] = sm80::pack2<Element>(s[0][2], s[0][3]);
    pa[2] = sm80::pack2<Element>(s[1][0], s[1][1]);
    pa[3] = sm80::pack2<Element>(s[1][2], s[1][3]);
#pragma unroll
    for (int dp = 0; dp < kDTiles / 2; ++dp) {
      uint32_t b[4];
      sm80::ldmatrix_x4_trans(b, v_stage_u32 + 2 * detail::swizzle<kHeadDim, kE>(
                                                   warp_key0 + ((lane / 8) % 2) * 8 + lane % 8,
                                                   dp * 2 + lane / 16));
      sm80::mma_m16n8k16<Element>(o_acc[2 * dp], pa, b[0], b[1]);
      sm80::mma_m16n8k16<Element>(o_acc[2 * dp + 1], pa, b[2], b[3]);
    }
  }
  sm80::cp_async_wait<0>();  // only empty groups can be pending here; drain before aliasing
  __syncthreads();

  // Merge the 4 warps' states through shared memory: slot (warp, row) = [o[D], m, l].
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    float* slot = partial_smem + (warp * Traits::kRows + g + 8 * r) * Traits::kPartialStride;
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      slot[8 * dt + 2 * c] = o_acc[dt][2 * r];
      slot[8 * dt + 2 * c + 1] = o_acc[dt][2 * r + 1];
    }
    if (c == 0) {
      slot[kHeadDim] = row_max[r];
      slot[kHeadDim + 1] = l;
    }
  }
  __syncthreads();
  for (int idx = tid; idx < rows * kHeadDim; idx += Traits::kNumThreads) {
    const int h = idx / kHeadDim;
    const int d = idx % kHeadDim;
    float m_total = -INFINITY;
#pragma unroll
    for (int w = 0; w < Traits::kNumWarps; ++w)
      m_total = fmaxf(m_total, partial_smem[(w * Traits::kRows + h) * Traits::kPartialStride + kHeadDim]);
    float l_total = 0.f, o = 0.f;
#pragma unroll
    for (int w = 0; w < Traits::kNumWarps; ++w) {
      const float* slot = partial_smem + (w * Traits::kRows + h) * Traits::kPartialStride;
      const float wgt = merge_weight(slot[kHeadDim], m_total);
      l_total = fmaf(wgt, slot[kHeadDim + 1], l_total);
      o = fmaf(wgt, slot[d], o);
    }
    const int q_head = kv_head * group + head_lo + h;
    const int64_t row = (static_cast<int64_t>(batch_idx) * params.num_q_heads + q_head) * num_splits + split;
    // l_total == 0: this split saw no key (empty slice): weight 0 in the combine.
    ws_out[row * kHeadDim + d] = l_total > 0.f ? o / l_total : 0.f;
    if (d == 0) ws_lse[row] = l_total > 0.f ? m_total + log2f(l_total) : -INFINITY;
  }
}

/// \brief Tensor-core split kernel + the shared combine kernel for one (dtype, head_dim).
template <typename Element, int kHeadDim>
cudaError_t launch_sparse_decode_mma(const SparseAttentionParams& params, float* workspace,
                                     int num_splits, cudaStream_t stream) {
  using Traits = SparseDecodeMmaTraits<kHeadDim, Element>;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int head_chunks = (group + Traits::kRows - 1) / Traits::kRows;
  float* ws_out = workspace;
  float* ws_lse = workspace + static_cast<size_t>(params.batch) * params.num_q_heads * num_splits * kHeadDim;
  const dim3 grid(num_splits, params.num_kv_heads * head_chunks, params.batch);
  auto kernel = sparse_decode_mma_split_kernel<Traits>;
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
