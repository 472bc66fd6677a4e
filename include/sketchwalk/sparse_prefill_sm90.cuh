// Block-sparse prefill (op 5, sparse_prefill) for Hopper (sm_90a): warp-specialized, TMA +
// wgmma. Same params, index format (block_index.h) and results as the sm80 kernel
// (sparse_prefill.cuh); the host picks this one on a compute-capability-9 device when the
// GQA group size is even (csrc/cuda/sparse_prefill.cu).
//
// One CTA = one 64-query block (one row of the block index) x 2 query heads of one KV head
// (128 rows), 3 warpgroups:
//   warpgroup 0, the producer: one thread issues every TMA copy. Q of both heads once; then per
//     stage two selected key blocks (128 keys) of K and of V, each block a 64-row box per
//     64-column half of head_dim, the block id from the index as the box's token coordinate.
//     A stage of an odd tail repeats its one block (masked off by the consumers).
//   warpgroups 1 and 2, the consumers: head q_head0 + (warpgroup - 1), 64 query rows each.
//     Per stage S = Q K^T (wgmma, both from shared memory), causal mask where a key can follow
//     a query, online softmax in the log2 domain, O += P V (wgmma, P from registers), then the
//     stage is handed back to the producer.
// Barriers per stage s: k_full[s] / v_full[s] (the producer's arrival + the TMA bytes) and
// empty[s] (one arrival per consumer warp). Stage of step p: p % kStages, phase (p / kStages) & 1.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/mma_sm80.cuh"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"
#include "sketchwalk/ptx_sm90.cuh"

namespace sketchwalk {

/// \brief Tiles of the sm90 prefill. Shared memory (all tiles 128-byte swizzled, layout in
/// ptx_sm90.cuh): Q [2 heads][halves][64 rows][64], K and V [kStages][halves][128 keys][64].
/// At head_dim 128: Q 32 KiB + 2 stages x (K 32 KiB + V 32 KiB) = 160 KiB, one CTA per SM.
template <int kHeadDim_, typename Element_>
struct SparsePrefillSm90Traits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockQ = 64;          // queries per CTA: the index's block size
  static constexpr int kBlockN = 64;          // keys per selected block (one TMA box per half)
  static constexpr int kBlocksPerStage = 2;   // selected blocks per K/V stage
  static constexpr int kStageKeys = kBlockN * kBlocksPerStage;  // 128: the N of S = Q K^T
  static constexpr int kHeadsPerCta = 2;      // one per consumer warpgroup
  static constexpr int kNumThreads = 3 * 128;  // producer + 2 consumer warpgroups
  static constexpr int kConsumerWarps = 8;
  static constexpr int kStages = kHeadDim == 128 ? 2 : 3;
  static constexpr int kHalves = kHeadDim / 64;  // 64-element (128-byte) column halves
  static constexpr int kRowBytes = 128;
  static constexpr int kQHalfBytes = kBlockQ * kRowBytes;                 // 8 KiB
  static constexpr int kQHeadBytes = kHalves * kQHalfBytes;
  static constexpr int kKVHalfBytes = kStageKeys * kRowBytes;             // 16 KiB
  static constexpr int kKVStageBytes = kHalves * kKVHalfBytes;            // K or V of one stage
  static constexpr int kQBytes = kHeadsPerCta * kQHeadBytes;
  static constexpr int kKOffset = kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kKVStageBytes;
  static constexpr int kBarrierOffset = kVOffset + kStages * kKVStageBytes;
  static constexpr int kNumBarriers = 1 + 3 * kStages;  // q_full, k_full[], v_full[], empty[]
  static constexpr int kAlign = 1024;  // the swizzle atom: tiles start 1024-byte aligned
  static constexpr size_t kSmemBytes = kBarrierOffset + 8 * kNumBarriers + kAlign;
  static constexpr int kSAccum = kStageKeys / 2;  // f32 accumulators of S per thread
  static constexpr int kOAccum = kHeadDim / 2;    // f32 accumulators of O per thread
  static constexpr int kProducerRegs = 24;
  static constexpr int kConsumerRegs = 240;  // 2 x 128 x 240 + 128 x 24 <= 64K registers

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(sizeof(Element) == 2, "fp16 / bf16 only");
  static_assert(kSmemBytes <= 227 * 1024, "one CTA must fit an SM's shared memory");
};

/// \brief The three tensor maps of a launch: 4-D (head_dim, tokens, heads, batch), box
/// (64, 64, 1, 1), 128-byte swizzle; built by make_prefill_tensor_maps (sparse_prefill_sm90.cu).
struct PrefillTensorMaps {
  CUtensorMap q, k, v;
};

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, 1)
    sparse_prefill_sm90_kernel(const __grid_constant__ SparseAttentionParams params,
                               const __grid_constant__ PrefillTensorMaps maps) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Traits::Element;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kStages = Traits::kStages;
  constexpr int kBlockN = Traits::kBlockN;

  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<uintptr_t>(smem_raw) + Traits::kAlign - 1) & ~uintptr_t(Traits::kAlign - 1));
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + Traits::kBarrierOffset);
  uint64_t* q_full = bars;
  uint64_t* k_full = bars + 1;
  uint64_t* v_full = bars + 1 + kStages;
  uint64_t* empty = bars + 1 + 2 * kStages;

  const int q_block = gridDim.x - 1 - blockIdx.x;  // heavy causal rows start first
  const int q_head0 = blockIdx.y * Traits::kHeadsPerCta;
  const int batch_idx = blockIdx.z;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int kv_head = q_head0 / group;
  const int index_head = params.index_heads == 1 ? 0 : kv_head;
  const int* row_index = params.block_index + batch_idx * params.index_batch_stride +
                         index_head * params.index_head_stride + q_block * params.index_row_stride;
  const int num_sel = params.num_selected[batch_idx * params.count_batch_stride +
                                          index_head * params.count_head_stride + q_block];
  const int num_steps = (num_sel + Traits::kBlocksPerStage - 1) / Traits::kBlocksPerStage;
  const int q_start = q_block * Traits::kBlockQ;

  if (threadIdx.x == 0) {
    sm90::mbarrier_init(q_full, 1);
    for (int s = 0; s < kStages; ++s) {
      sm90::mbarrier_init(&k_full[s], 1);
      sm90::mbarrier_init(&v_full[s], 1);
      sm90::mbarrier_init(&empty[s], Traits::kConsumerWarps);
    }
    sm90::fence_barrier_init();
  }
  __syncthreads();

  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    // ---- producer ----
    sm90::setmaxnreg_dec<Traits::kProducerRegs>();
    if (threadIdx.x == 0) {
      sm90::prefetch_tensor_map(&maps.q);
      sm90::prefetch_tensor_map(&maps.k);
      sm90::prefetch_tensor_map(&maps.v);
      sm90::mbarrier_arrive_expect_tx(q_full, Traits::kQBytes);
#pragma unroll
      for (int h = 0; h < Traits::kHeadsPerCta; ++h)
#pragma unroll
        for (int half = 0; half < Traits::kHalves; ++half)
          sm90::tma_load_4d(smem + h * Traits::kQHeadBytes + half * Traits::kQHalfBytes, &maps.q,
                            q_full, half * 64, q_start, q_head0 + h, batch_idx);
      constexpr uint32_t kStageTx = Traits::kKVStageBytes;
      for (int step = 0; step < num_steps; ++step) {
        const int s = step % kStages;
        if (step >= kStages) sm90::mbarrier_wait(&empty[s], ((step / kStages) - 1) & 1);
        const int b0 = row_index[2 * step];
        // An odd tail repeats its block: finite data the consumers mask to zero weight.
        const int b1 = 2 * step + 1 < num_sel ? row_index[2 * step + 1] : b0;
        unsigned char* k_stage = smem + Traits::kKOffset + s * Traits::kKVStageBytes;
        unsigned char* v_stage = smem + Traits::kVOffset + s * Traits::kKVStageBytes;
        sm90::mbarrier_arrive_expect_tx(&k_full[s], kStageTx);
#pragma unroll
        for (int half = 0; half < Traits::kHalves; ++half) {
          unsigned char* dst = k_stage + half * Traits::kKVHalfBytes;
          sm90::tma_load_4d(dst, &maps.k, &k_full[s], half * 64, b0 * kBlockN, kv_head, batch_idx);
          sm90::tma_load_4d(dst + kBlockN * Traits::kRowBytes, &maps.k, &k_full[s], half * 64,
                            b1 * kBlockN, kv_head, batch_idx);
        }
        sm90::mbarrier_arrive_expect_tx(&v_full[s], kStageTx);
#pragma unroll
        for (int half = 0; half < Traits::kHalves; ++half) {
          unsigned char* dst = v_stage + half * Traits::kKVHalfBytes;
          sm90::tma_load_4d(dst, &maps.v, &v_full[s], half * 64, b0 * kBlockN, kv_head, batch_idx);
          sm90::tma_load_4d(dst + kBlockN * Traits::kRowBytes, &maps.v, &v_full[s], half * 64,
                            b1 * kBlockN, kv_head, batch_idx);
        }
      }
    }
    return;
  }

  // ---- consumers ----
  sm90::setmaxnreg_inc<Traits::kConsumerRegs>();
  const int consumer = warpgroup - 1;  // head q_head0 + consumer
  const int ctid = threadIdx.x - 128 * warpgroup;
  const int cwarp = ctid / 32;
  const int lane = ctid % 32;
  const int g = lane / 4;
  const int c = lane % 4;
  const float scale_log2 = params.softmax_scale * kLog2e;
  const int first_query_pos = query_position(q_start, params.num_queries, params.num_keys);
  const int row_pos0 = first_query_pos + 16 * cwarp + g;  // key position of this thread's row 0

  unsigned char* q_tile = smem + consumer * Traits::kQHeadBytes;
  const uint32_t q_addr = sm90::smem_u32(q_tile);
  const uint32_t k_addr0 = sm90::smem_u32(smem + Traits::kKOffset);
  const uint32_t v_addr0 = sm90::smem_u32(smem + Traits::kVOffset);

  float o[Traits::kOAccum];
#pragma unroll
  for (int i = 0; i < Traits::kOAccum; ++i) o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY};  // raw (unscaled) scores
  float row_sum[2] = {0.f, 0.f};              // this thread's partial; quad-reduced at the end

  sm90::mbarrier_wait(q_full, 0);
  for (int step = 0; step < num_steps; ++step) {
    const int s = step % kStages;
    const uint32_t phase = (step / kStages) & 1;
    const int b0 = row_index[2 * step];
    const bool has_b1 = 2 * step + 1 < num_sel;
    const int b1 = has_b1 ? row_index[2 * step + 1] : b0;

    // S = Q K^T over the stage's 128 keys (keys [0, 64) block b0, [64, 128) block b1).
    float sacc[Traits::kSAccum];
    sm90::mbarrier_wait(&k_full[s], phase);
    sm90::wgmma_fence();
    const uint32_t k_addr = k_addr0 + s * Traits::kKVStageBytes;
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t off = (kk % 4) * 32;  // k16 step inside a 128-byte row
      const uint64_t da = sm90::smem_desc_sw128(q_addr + (kk / 4) * Traits::kQHalfBytes + off, 16, 1024);
      const uint64_t db = sm90::smem_desc_sw128(k_addr + (kk / 4) * Traits::kKVHalfBytes + off, 16, 1024);
      sm90::Wgmma<Traits::kStageKeys, Element>::template ss<0>(sacc, da, db, kk > 0);
    }
    sm90::wgmma_commit();
    sm90::wgmma_wait<0>();
    sm90::fence_operands(sacc);

    // Causal mask (and the repeated tail block) only where needed: b1 >= b0, so the stage
    // needs it iff its last key can follow the block's first query.
    if (!has_b1 || static_cast<int64_t>(b1) * kBlockN + kBlockN - 1 > first_query_pos) {
#pragma unroll
      for (int i = 0; i < Traits::kSAccum; ++i) {
        const int col = 8 * (i / 4) + 2 * c + (i % 2);
        const int row_pos = row_pos0 + 8 * ((i / 2) % 2);
        const bool second = col >= kBlockN;
        const int key = (second ? b1 : b0) * kBlockN + (col % kBlockN);
        if ((second && !has_b1) || key > row_pos) sacc[i] = -INFINITY;
      }
    }

    // Online softmax: rows g (r = 0) and g + 8 (r = 1); the 4 lanes of a quad share a row.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = row_max[r];
#pragma unroll
      for (int j = 0; j < Traits::kSAccum / 4; ++j)
        mx = fmaxf(mx, fmaxf(sacc[4 * j + 2 * r], sacc[4 * j + 2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_scaled = max_or_zero(mx) * scale_log2;
      const float correction = sm80::exp2_approx(row_max[r] * scale_log2 - m_scaled);
      row_max[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < Traits::kSAccum / 4; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = sm80::exp2_approx(fmaf(sacc[4 * j + 2 * r + e], scale_log2, -m_scaled));
          sacc[4 * j + 2 * r + e] = p;
          sum += p;
        }
      }
      row_sum[r] = row_sum[r] * correction + sum;
#pragma unroll
      for (int j = 0; j < Traits::kOAccum / 4; ++j) {
        o[4 * j + 2 * r] *= correction;
        o[4 * j + 2 * r + 1] *= correction;
      }
    }

    // O += P V: P (this thread's S fragment, packed) as the register A operand, V MN-major.
    uint32_t pa[Traits::kStageKeys / 16][4];
#pragma unroll
    for (int kk = 0; kk < Traits::kStageKeys / 16; ++kk) {
      pa[kk][0] = sm80::pack2<Element>(sacc[8 * kk + 0], sacc[8 * kk + 1]);
      pa[kk][1] = sm80::pack2<Element>(sacc[8 * kk + 2], sacc[8 * kk + 3]);
      pa[kk][2] = sm80::pack2<Element>(sacc[8 * kk + 4], sacc[8 * kk + 5]);
      pa[kk][3] = sm80::pack2<Element>(sacc[8 * kk + 6], sacc[8 * kk + 7]);
    }
    sm90::mbarrier_wait(&v_full[s], phase);
    sm90::fence_operands(o);
    sm90::wgmma_fence();
    const uint32_t v_addr = v_addr0 + s * Traits::kKVStageBytes;
#pragma unroll
    for (int kk = 0; kk < Traits::kStageKeys / 16; ++kk) {
      const uint64_t dv =
          sm90::smem_desc_sw128(v_addr + kk * 16 * Traits::kRowBytes, Traits::kKVHalfBytes, 1024);
      sm90::Wgmma<kHeadDim, Element>::template rs<1>(o, pa[kk], dv, 1);
    }
    sm90::wgmma_commit();
    sm90::wgmma_wait<0>();
    sm90::fence_operands(o);
    __syncwarp();
    if (lane == 0) sm90::mbarrier_arrive(&empty[s]);  // this warp is done reading stage s
  }

  // ---- epilogue: normalize, stage through this head's Q tile (its last reader, the final
  // S wgmma, has completed), 16-byte stores; lse. ----
  Element* staging = reinterpret_cast<Element*>(q_tile);
  const int q_head = q_head0 + consumer;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float total = row_sum[r];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    // total == 0: no visible key (empty row or all keys after the query): out 0, lse -inf.
    const float inv = total > 0.f ? 1.f / total : 0.f;
    const int row = 16 * cwarp + g + 8 * r;
#pragma unroll
    for (int j = 0; j < Traits::kOAccum / 4; ++j) {
      const uint32_t packed = sm80::pack2<Element>(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
      *reinterpret_cast<uint32_t*>(staging + row * kHeadDim + ((j ^ (row & 7)) * 8) + 2 * c) = packed;
    }
    const int t = q_start + row;
    if (c == 0 && t < params.num_queries) {
      const float lse = total > 0.f ? row_max[r] * params.softmax_scale + logf(total) : -INFINITY;
      params.lse[batch_idx * params.lse_batch_stride + q_head * params.lse_head_stride + t] = lse;
    }
  }
  sm90::named_barrier_sync(1 + consumer, 128);
  Element* out_base = static_cast<Element*>(params.out) + batch_idx * params.out_batch_stride +
                      q_head * params.out_head_stride;
  constexpr int kChunks = kHeadDim / 8;
#pragma unroll
  for (int idx = ctid; idx < Traits::kBlockQ * kChunks; idx += 128) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const int t = q_start + row;
    if (t < params.num_queries) {
      const uint4 val =
          *reinterpret_cast<const uint4*>(staging + row * kHeadDim + ((chunk ^ (row & 7)) * 8));
      *reinterpret_cast<uint4*>(out_base + t * params.out_token_stride + chunk * 8) = val;
    }
  }
#endif  // sm_90a
}

/// \brief Builds the Q, K and V tensor maps of `params` (sparse_prefill_sm90.cu); false when
/// the driver rejects a layout (e.g. a zero stride), and the caller runs the sm80 kernel.
bool make_prefill_tensor_maps(const SparseAttentionParams& params, DType dtype, PrefillTensorMaps* maps);

/// \brief Launch one (dtype, head_dim) instantiation on `stream`; the GQA group size must be even.
template <typename Element, int kHeadDim>
cudaError_t launch_sparse_prefill_sm90(const SparseAttentionParams& params,
                                       const PrefillTensorMaps& maps, cudaStream_t stream) {
  using Traits = SparsePrefillSm90Traits<kHeadDim, Element>;
  auto kernel = sparse_prefill_sm90_kernel<Traits>;
  const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(Traits::kSmemBytes));
  if (err != cudaSuccess) return err;
  const dim3 grid(params.num_q_blocks, params.num_q_heads / Traits::kHeadsPerCta, params.batch);
  kernel<<<grid, Traits::kNumThreads, Traits::kSmemBytes, stream>>>(params, maps);
  return cudaGetLastError();
}

/// \brief Whether the sm90 kernel can run here: a compute-capability-9 device, a build with
/// sm_90a code (sparse_prefill_sm90.cu).
bool sparse_prefill_sm90_available();

}  // namespace sketchwalk
