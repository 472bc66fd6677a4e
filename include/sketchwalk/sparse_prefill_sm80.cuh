// Block-sparse FlashAttention-2-style prefill (op 5, sparse_prefill) for sm_80 and later:
// mma.sync m16n8k16 + ldmatrix + cp.async K/V pipeline over the key blocks listed in the
// row's block index (block_index.h), online softmax in the log2 domain, token-level causal
// mask only in blocks that can hold a key after some query of the row. fp16/bf16,
// head_dim 64/128, block_size 64. Parts: the swizzled tile loads (tile_load_sm80.cuh, shared
// with the tensor-core decode), one kernel holding the mainloop (QK^T, softmax, PV) and the
// epilogue (normalize, stage through smem, 16-byte stores, lse). Hopper runs the TMA + wgmma
// kernel of sparse_prefill_sm90.cuh instead when it can (csrc/cuda/sparse_prefill.cu).
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "sketchwalk/attention_core.cuh"
#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/kernel_traits.h"
#include "sketchwalk/mma_sm80.cuh"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"
#include "sketchwalk/tile_load_sm80.cuh"

namespace sketchwalk {
namespace detail {

/// \brief The sm80 prefill's epilogue for one warp: normalize its rows of O by the row sums
/// (quad-reduced), write lse, stage the rows through the (finished) Q tile and store them with
/// 16-byte writes. Rows with no visible key (sum 0) get out 0 and lse -inf.
template <typename Traits>
SW_DEVICE void prefill_sm80_epilogue(
    const SparseAttentionParams& params, const SeqInfo& seq,
    float (&o_acc)[Traits::kMTilesPerWarp][Traits::kHeadDim / 8][4],
    const float (&row_max)[Traits::kMTilesPerWarp][2], const float (&row_sum)[Traits::kMTilesPerWarp][2],
    typename Traits::Element* q_smem, int q_head, int q_start, int warp_row0, int lane) {
  using Element = typename Traits::Element;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kE = Traits::kElemsPerChunk;
  constexpr int kDTiles = kHeadDim / 8;
  constexpr int kMTiles = Traits::kMTilesPerWarp;
  const int g = lane / 4;
  const int c = lane % 4;
  const int row_in_block0 = warp_row0 % Traits::kBlockQ;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float total = row_sum[mt][r];
      total += __shfl_xor_sync(0xffffffffu, total, 1);
      total += __shfl_xor_sync(0xffffffffu, total, 2);
      // total == 0: no visible key (empty row or all keys after the query): out 0, lse -inf.
      const float inv = total > 0.f ? 1.f / total : 0.f;
      const int row = warp_row0 + mt * 16 + g + 8 * r;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        const uint32_t packed =
            sm80::pack2<Element>(o_acc[mt][dt][2 * r] * inv, o_acc[mt][dt][2 * r + 1] * inv);
        *reinterpret_cast<uint32_t*>(q_smem + detail::swizzle<kHeadDim, kE>(row, dt) + 2 * c) = packed;
      }
      const int t = q_start + row_in_block0 + mt * 16 + g + 8 * r;
      if (c == 0 && t < seq.num_queries) {
        const float lse = total > 0.f ? row_max[mt][r] * params.softmax_scale + logf(total) : -INFINITY;
        params.lse[seq.q_offset(params.lse_batch_stride, params.lse_head_stride, 1, q_head, t)] = lse;
      }
    }
  }
  __syncwarp();
  Element* out_base = static_cast<Element*>(params.out) +
                      seq.q_offset(params.out_batch_stride, params.out_head_stride, params.out_token_stride,
                                   q_head, 0);
  constexpr int kChunks = Traits::kChunksPerRow;
#pragma unroll
  for (int idx = lane; idx < Traits::kRowsPerWarp * kChunks; idx += 32) {
    const int r = idx / kChunks;
    const int chunk = idx % kChunks;
    const int t = q_start + row_in_block0 + r;
    if (t < seq.num_queries) {
      const uint4 v = *reinterpret_cast<const uint4*>(
          q_smem + detail::swizzle<kHeadDim, kE>(warp_row0 + r, chunk));
      *reinterpret_cast<uint4*>(out_base + t * params.out_token_stride + chunk * kE) = v;
    }
  }
}

}  // namespace detail

/// \brief One CTA: query block blockIdx.x (reversed: heavy causal rows start first),
/// query heads [blockIdx.y * kHeadsPerCta, +kHeadsPerCta) (one kv head), sequence blockIdx.z.
/// In a ragged batch the grid spans the longest sequence; a CTA past its sequence's queries
/// returns at once.
template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, Traits::kMinBlocksPerSm)
    sparse_prefill_kernel(const SparseAttentionParams params) {
  using Element = typename Traits::Element;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kStages = Traits::kStages;
  constexpr int kE = Traits::kElemsPerChunk;
  constexpr int kNTiles = kBlockN / 8;   // n8 tiles of S per warp
  constexpr int kDTiles = kHeadDim / 8;  // n8 tiles of O per warp
  constexpr int kMTiles = Traits::kMTilesPerWarp;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  Element* q_smem = reinterpret_cast<Element*>(smem_raw);
  Element* k_smem = q_smem + Traits::kQTileElems;            // [kStages][kBlockN][kHeadDim]
  Element* v_smem = k_smem + kStages * Traits::kKVTileElems;  // [kStages][kBlockN][kHeadDim]

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int q_block = gridDim.x - 1 - blockIdx.x;
  const int q_head0 = blockIdx.y * Traits::kHeadsPerCta;
  const SeqInfo seq = SeqInfo::make(params, blockIdx.z);
  if (q_block * Traits::kBlockQ >= seq.num_queries) return;  // past a shorter sequence's end
  const int group = params.num_q_heads / params.num_kv_heads;
  const int kv_head = q_head0 / group;
  const RowBlocks row = RowBlocks::of(params, seq, kv_head, q_block);
  const int num_sel = row.count;

  const int q_start = q_block * Traits::kBlockQ;
  const int q_valid = min(Traits::kBlockQ, seq.num_queries - q_start);
  const int first_query_pos = seq.query_position(q_start);

  const Element* q_base = static_cast<const Element*>(params.q) +
                          seq.q_offset(params.q_batch_stride, 0, params.q_token_stride, 0, q_start);
  const KvSource<Element> kv = KvSource<Element>::make(params, seq, kv_head);

  // Q tile: rows [64h, 64h + 64) hold head q_head0 + h; rows past Tq are zero.
#pragma unroll
  for (int h = 0; h < Traits::kHeadsPerCta; ++h) {
    detail::load_tile_async<Traits, Traits::kBlockQ>(
        q_smem + h * Traits::kBlockQ * kHeadDim, q_base + (q_head0 + h) * params.q_head_stride,
        params.q_token_stride, q_valid, tid);
  }
  auto load_kv = [&](int stage, int key_block) {
    const int64_t key0 = static_cast<int64_t>(key_block) * kBlockN;
    // In int64 before the narrowing (as the decode does): a block id far past the keys (trusted
    // path) gives a count <= 0, so every row zero-fills.
    const int valid = static_cast<int>(min(static_cast<int64_t>(kBlockN), seq.num_keys - key0));
    detail::load_kv_block_async<Traits>(k_smem + stage * Traits::kKVTileElems,
                                        v_smem + stage * Traits::kKVTileElems, kv, key_block, valid,
                                        tid);
  };
  // Prologue: tiles 0 .. kStages-2 in flight (group 0 also carries Q).
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < num_sel) load_kv(s, row[s]);
    sm80::cp_async_commit();
  }

  // Per-thread state: rows g and g + 8 of each of this warp's kMTiles 16-row m-tiles.
  const int g = lane / 4;
  const int c = lane % 4;
  const float scale_log2 = params.softmax_scale * kLog2e;
  float o_acc[kMTiles][kDTiles][4];
  float row_max[kMTiles][2];  // raw (unscaled) scores
  float row_sum[kMTiles][2];  // this thread's partial; quad-reduced at the end
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int i = 0; i < kDTiles; ++i) o_acc[mt][i][0] = o_acc[mt][i][1] = o_acc[mt][i][2] = o_acc[mt][i][3] = 0.f;
    row_max[mt][0] = row_max[mt][1] = -INFINITY;
    row_sum[mt][0] = row_sum[mt][1] = 0.f;
  }
  const int warp_row0 = warp * Traits::kRowsPerWarp;  // first CTA row of this warp
  const int row_in_block0 = warp_row0 % Traits::kBlockQ;  // a warp never straddles two heads

  const uint32_t q_smem_u32 = sm80::smem_u32(q_smem);
  // Block ids are read one iteration before their tile load is issued, so the index
  // load's latency never sits in front of a cp.async.
  int key_block_next = kStages - 1 < num_sel ? row[kStages - 1] : 0;
  int key_block = num_sel > 0 ? row[0] : 0;
  for (int it = 0; it < num_sel; ++it) {
    {
      const int next = it + kStages - 1;
      if (next < num_sel) load_kv(next % kStages, key_block_next);
      sm80::cp_async_commit();  // empty groups keep the wait count uniform
      if (next + 1 < num_sel) key_block_next = row[next + 1];
    }
    const int key_block_now = key_block;
    if (it + 1 < num_sel) key_block = row[it + 1];
    sm80::cp_async_wait<kStages - 1>();
    __syncthreads();
    const int stage = it % kStages;
    const uint32_t k_stage_u32 = sm80::smem_u32(k_smem + stage * Traits::kKVTileElems);
    const uint32_t v_stage_u32 = sm80::smem_u32(v_smem + stage * Traits::kKVTileElems);

    // S = Q K^T: warp rows [warp_row0, +kRowsPerWarp) x 64 keys; each K fragment feeds
    // kMTiles m-tiles (the reuse that keeps ldmatrix traffic under the mma rate).
    float s_acc[kMTiles][kNTiles][4];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int i = 0; i < kNTiles; ++i) s_acc[mt][i][0] = s_acc[mt][i][1] = s_acc[mt][i][2] = s_acc[mt][i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      uint32_t a[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
        sm80::ldmatrix_x4(a[mt], q_smem_u32 + 2 * detail::swizzle<kHeadDim, kE>(
                                                  warp_row0 + mt * 16 + lane % 16, kk * 2 + lane / 16));
#pragma unroll
      for (int np = 0; np < kNTiles / 2; ++np) {
        uint32_t b[4];
        sm80::ldmatrix_x4(b, k_stage_u32 + 2 * detail::swizzle<kHeadDim, kE>(
                                               np * 16 + (lane / 16) * 8 + lane % 8,
                                               kk * 2 + (lane / 8) % 2));
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          sm80::mma_m16n8k16<Element>(s_acc[mt][2 * np], a[mt], b[0], b[1]);
          sm80::mma_m16n8k16<Element>(s_acc[mt][2 * np + 1], a[mt], b[2], b[3]);
        }
      }
    }

    // Causal mask, only where some key of the block can follow the row's first query
    // (the diagonal block(s) and a partial last key block).
    if (block_needs_causal_mask(key_block_now, kBlockN, first_query_pos)) {
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int query_pos = first_query_pos + row_in_block0 + mt * 16 + g + (e >= 2 ? 8 : 0);
            const int key = key_block_now * kBlockN + nt * 8 + 2 * c + (e & 1);
            if (key > query_pos) s_acc[mt][nt][e] = -INFINITY;
          }
    }

    // Online softmax (two rows per thread and m-tile; the 4 lanes of a quad share a row).
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = row_max[mt][r];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt)
          mx = fmaxf(mx, fmaxf(s_acc[mt][nt][2 * r], s_acc[mt][nt][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_scaled = max_or_zero(mx) * scale_log2;
        const float correction = sm80::exp2_approx(row_max[mt][r] * scale_log2 - m_scaled);
        row_max[mt][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = sm80::exp2_approx(fmaf(s_acc[mt][nt][2 * r + e], scale_log2, -m_scaled));
            s_acc[mt][nt][2 * r + e] = p;
            sum += p;
          }
        }
        row_sum[mt][r] = row_sum[mt][r] * correction + sum;
#pragma unroll
        for (int dt = 0; dt < kDTiles; ++dt) {
          o_acc[mt][dt][2 * r] *= correction;
          o_acc[mt][dt][2 * r + 1] *= correction;
        }
      }
    }

    // O += P V: P from registers as the A operand, V^T fragments by ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t a[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        a[mt][0] = sm80::pack2<Element>(s_acc[mt][2 * kk][0], s_acc[mt][2 * kk][1]);
        a[mt][1] = sm80::pack2<Element>(s_acc[mt][2 * kk][2], s_acc[mt][2 * kk][3]);
        a[mt][2] = sm80::pack2<Element>(s_acc[mt][2 * kk + 1][0], s_acc[mt][2 * kk + 1][1]);
        a[mt][3] = sm80::pack2<Element>(s_acc[mt][2 * kk + 1][2], s_acc[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < kDTiles / 2; ++dp) {
        uint32_t b[4];
        sm80::ldmatrix_x4_trans(b, v_stage_u32 + 2 * detail::swizzle<kHeadDim, kE>(
                                                     kk * 16 + ((lane / 8) % 2) * 8 + lane % 8,
                                                     dp * 2 + lane / 16));
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          sm80::mma_m16n8k16<Element>(o_acc[mt][2 * dp], a[mt], b[0], b[1]);
          sm80::mma_m16n8k16<Element>(o_acc[mt][2 * dp + 1], a[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }

  // Epilogue. Drain the copies (with no selected block the Q copies may still be in flight).
  sm80::cp_async_wait<0>();
  __syncthreads();
  detail::prefill_sm80_epilogue<Traits>(params, seq, o_acc, row_max, row_sum, q_smem,
                                        q_head0 + warp_row0 / Traits::kBlockQ, q_start, warp_row0,
                                        lane);
}

/// \brief Launch one (dtype, head_dim, heads-per-CTA) instantiation on `stream`.
template <typename Element, int kHeadDim, int kHeadsPerCta>
cudaError_t launch_sparse_prefill(const SparseAttentionParams& params, cudaStream_t stream) {
  using Traits = SparsePrefillTraits<kHeadDim, kHeadsPerCta, Element>;
  auto kernel = sparse_prefill_kernel<Traits>;
  const size_t smem = Traits::kSmemBytes;
  if (smem > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(params.num_q_blocks, params.num_q_heads / kHeadsPerCta, params.batch);
  kernel<<<grid, Traits::kNumThreads, smem, stream>>>(params);
  return cudaGetLastError();
}

/// \brief Pack 2 heads per CTA when the GQA group size is even (they share K/V tiles).
template <typename Element, int kHeadDim>
cudaError_t launch_sparse_prefill_hdim(const SparseAttentionParams& params, cudaStream_t stream) {
  const int group = params.num_q_heads / params.num_kv_heads;
  if (group % 2 == 0) return launch_sparse_prefill<Element, kHeadDim, 2>(params, stream);
  return launch_sparse_prefill<Element, kHeadDim, 1>(params, stream);
}

}  // namespace sketchwalk
