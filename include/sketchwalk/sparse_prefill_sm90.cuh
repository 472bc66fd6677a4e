// Block-sparse prefill (op 5, sparse_prefill) for Hopper (sm_90a): warp-specialized, TMA +
// wgmma. Same params, index format (block_index.h) and semantics as the sm80 kernel
// (sparse_prefill_sm80.cuh; results agree to rounding, not bitwise); the host picks this one on a
// compute-capability-9 device when the GQA group size is even (csrc/cuda/sparse_prefill.cu).
//
// One CTA = one 64-query block (one row of the block index) x 2 query heads of one KV head
// (128 rows), 3 warpgroups:
//   warpgroup 0, the producer: one thread issues every TMA copy. Q of both heads once; then per
//     stage two selected key blocks (128 keys) of K and of V, each block a 64-row box per
//     64-column half of head_dim, the block id from the index as the box's token coordinate
//     (a paged cache: its page id x 64, the page table read by the producer thread).
//     A stage of an odd tail repeats its one block (masked off by the consumers).
//   warpgroups 1 and 2, the consumers: head q_head0 + (warpgroup - 1), 64 query rows each.
//     Per stage S = Q K^T (wgmma, both from shared memory), causal mask where a key can follow
//     a query, online softmax in the log2 domain, O += P V (wgmma, P from registers), then the
//     stage is handed back to the producer; the softmax of one stage is placed between the
//     issue of the previous stage's P V and the wait for it (the consumers' loop below). The V
//     rows past the sequence's last key in its partial last block are zeroed before P V.
// Barriers per stage s: k_full[s] / v_full[s] (the producer's arrival + the TMA bytes) and
// empty[s] (one arrival per consumer warp). Stage of step p: p % kStages, phase (p / kStages) & 1.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "sketchwalk/attention_core.cuh"
#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/fragment_math.cuh"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"
#include "sketchwalk/ptx_sm90.cuh"

namespace sketchwalk {

/// \brief Tiles of the sm90 prefill. Shared memory (all tiles 128-byte swizzled, layout in
/// ptx_sm90.cuh): Q [2 heads][halves][64 rows][64], K and V [kStages][halves][128 keys][64].
/// At head_dim 128: Q 32 KiB + 3 stages x (K 32 KiB + V 32 KiB) = 224 KiB, one CTA per SM.
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
  static constexpr int kStages = 3;
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
  static constexpr int kPRegs = kStageKeys / 16;  // k16 steps of P V (4 registers of P each)
  static constexpr int kProducerRegs = 24;
  static constexpr int kConsumerRegs = 240;  // 2 x 128 x 240 + 128 x 24 <= 64K registers
  // Named barriers (0 is __syncthreads): 1 + consumer, one per consumer warpgroup's epilogue;
  // kTailClearBarrier over both consumer warpgroups (the tail V rows' zeros).
  static constexpr int kTailClearBarrier = 3;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(sizeof(Element) == 2, "fp16 / bf16 only");
  static_assert(kSmemBytes <= 227 * 1024, "one CTA must fit an SM's shared memory");
};

/// \brief The three tensor maps of a launch: 4-D (head_dim, tokens, heads, outer), box
/// (64, 64, 1, 1), 128-byte swizzle; built by make_prefill_tensor_maps (sparse_prefill_sm90.cu).
/// `outer` is the batch (dense) or 1 (packed ragged tokens, or a paged cache's pool of
/// contiguous 64-key pages: only the token coordinate moves, a page's is page id x 64).
struct PrefillTensorMaps {
  CUtensorMap q, k, v;
};

template <int kValue>
struct IntConst {
  static constexpr int value = kValue;
};

/// \brief Issues S = Q K^T of one stage (wgmma SS, K-major Q and K, 128-byte swizzle) and
/// commits it as one wgmma group; the caller waits.
template <typename Traits>
SW_DEVICE void prefill_sm90_issue_qk(float (&sacc)[Traits::kSAccum], uint64_t q_desc,
                                     uint64_t k_desc) {
  sm90::fence_operands(sacc);
  sm90::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < Traits::kHeadDim / 16; ++kk) {
    // k16 step kk: 32 bytes into a 128-byte row of half kk / 4 (descriptor addresses count 16 B).
    const uint64_t da = q_desc + (((kk / 4) * Traits::kQHalfBytes + (kk % 4) * 32) >> 4);
    const uint64_t db = k_desc + (((kk / 4) * Traits::kKVHalfBytes + (kk % 4) * 32) >> 4);
    sm90::Wgmma<Traits::kStageKeys, typename Traits::Element>::template ss<0>(sacc, da, db, kk > 0);
  }
  sm90::wgmma_commit();
}

/// \brief Issues O += P V of one stage (wgmma RS: P from registers, V MN-major) as one group.
template <typename Traits>
SW_DEVICE void prefill_sm90_issue_pv(float (&o)[Traits::kOAccum],
                                     const uint32_t (&p)[Traits::kPRegs][4], uint64_t v_desc) {
  sm90::wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < Traits::kPRegs; ++kk) {
    const uint64_t dv = v_desc + ((kk * 16 * Traits::kRowBytes) >> 4);  // keys 16kk ..
    sm90::Wgmma<Traits::kHeadDim, typename Traits::Element>::template rs<1>(o, p[kk], dv, 1);
  }
  sm90::wgmma_commit();
}

/// \brief One consumer thread's online softmax over its two rows (g and g + 8 of its warp's 16)
/// in the log2 domain: the causal mask where a key can follow a query, the running max and
/// sum, P packed as the register A operand of P V, and the correction O must take.
template <typename Traits>
struct PrefillSm90Softmax {
  float row_max[2] = {-INFINITY, -INFINITY};  // raw (unscaled) scores
  float row_sum[2] = {0.f, 0.f};              // this thread's partial; quad-reduced at the end
  float scale_log2;
  int first_query_pos;  // key position of the CTA's first query
  int row_pos0;         // key position of this thread's first row
  int c;                // lane % 4

  /// b0, b1: the stage's key blocks (keys [0, 64) and [64, 128) of S); b1 = -1: none.
  SW_DEVICE void step(float (&sacc)[Traits::kSAccum], uint32_t (&p)[Traits::kPRegs][4],
                      float (&correction)[2], int b0, int b1) {
    constexpr int kBlockN = Traits::kBlockN;
    // b1 >= b0, so the stage needs the mask iff its last key can follow the first query.
    const int64_t last_block = b1 < 0 ? b0 : b1;
    if (b1 < 0 || block_needs_causal_mask(last_block, kBlockN, first_query_pos)) {
#pragma unroll
      for (int i = 0; i < Traits::kSAccum; ++i) {
        const int col = 8 * (i / 4) + 2 * c + (i % 2);
        const int row_pos = row_pos0 + 8 * ((i / 2) % 2);
        const bool second = col >= kBlockN;
        const int key = (second ? b1 : b0) * kBlockN + (col % kBlockN);
        if ((second && b1 < 0) || key > row_pos) sacc[i] = -INFINITY;
      }
    }
    float m_scaled[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = row_max[r];
#pragma unroll
      for (int j = 0; j < Traits::kSAccum / 4; ++j)
        mx = fmaxf(mx, fmaxf(sacc[4 * j + 2 * r], sacc[4 * j + 2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      m_scaled[r] = max_or_zero(mx) * scale_log2;
      correction[r] = exp2_approx(row_max[r] * scale_log2 - m_scaled[r]);
      row_max[r] = mx;
    }
    // Exponentiate and pack at once, so each S register dies as its P half is born. Accumulator
    // n8 chunk j (row g + 8r, keys 8j + 2c, +1) -> A fragment of k-step j / 2, register
    // 2 (j % 2) + r (mma_sm80.cuh's A layout).
    float sum[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < Traits::kSAccum / 4; ++j) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float p0 = exp2_approx(fmaf(sacc[4 * j + 2 * r], scale_log2, -m_scaled[r]));
        const float p1 = exp2_approx(fmaf(sacc[4 * j + 2 * r + 1], scale_log2, -m_scaled[r]));
        sum[r] += p0 + p1;
        p[j / 2][2 * (j % 2) + r] = pack2<typename Traits::Element>(p0, p1);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) row_sum[r] = row_sum[r] * correction[r] + sum[r];
  }
};

/// \brief One consumer warpgroup's epilogue: normalize O by the quad-reduced row sums, write
/// lse, stage the 64 rows through `staging` (this head's Q tile, swizzled by 16-byte chunk) and
/// store them with 16-byte writes. Rows with no visible key (sum 0) get out 0 and lse -inf.
template <typename Traits>
SW_DEVICE void prefill_sm90_epilogue(const SparseAttentionParams& params, const SeqInfo& seq,
                                     const float (&o)[Traits::kOAccum],
                                     const PrefillSm90Softmax<Traits>& softmax,
                                     typename Traits::Element* staging, int q_head, int q_start,
                                     int consumer, int ctid) {
  using Element = typename Traits::Element;
  constexpr int kHeadDim = Traits::kHeadDim;
  const int lane = ctid % 32;
  const int g = lane / 4;
  const int c = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float total = softmax.row_sum[r];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    // total == 0: no visible key (empty row or all keys after the query): out 0, lse -inf.
    const float inv = total > 0.f ? 1.f / total : 0.f;
    const int row = 16 * (ctid / 32) + g + 8 * r;
#pragma unroll
    for (int j = 0; j < Traits::kOAccum / 4; ++j) {
      const uint32_t packed = pack2<Element>(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
      *reinterpret_cast<uint32_t*>(staging + row * kHeadDim + ((j ^ (row & 7)) * 8) + 2 * c) = packed;
    }
    const int t = q_start + row;
    if (c == 0 && t < seq.num_queries) {
      const float lse =
          total > 0.f ? softmax.row_max[r] * params.softmax_scale + logf(total) : -INFINITY;
      params.lse[seq.q_offset(params.lse_batch_stride, params.lse_head_stride, 1, q_head, t)] = lse;
    }
  }
  sm90::named_barrier_sync(1 + consumer, 128);  // the warpgroup's rows are staged
  Element* out_base = static_cast<Element*>(params.out) +
                      seq.q_offset(params.out_batch_stride, params.out_head_stride,
                                   params.out_token_stride, q_head, 0);
  constexpr int kChunks = kHeadDim / 8;
#pragma unroll
  for (int idx = ctid; idx < Traits::kBlockQ * kChunks; idx += 128) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const int t = q_start + row;
    if (t < seq.num_queries) {
      const uint4 val =
          *reinterpret_cast<const uint4*>(staging + row * kHeadDim + ((chunk ^ (row & 7)) * 8));
      *reinterpret_cast<uint4*>(out_base + t * params.out_token_stride + chunk * 8) = val;
    }
  }
}

template <typename Traits>
__global__ void __launch_bounds__(Traits::kNumThreads, 1)
    sparse_prefill_sm90_kernel(const __grid_constant__ SparseAttentionParams params,
                               const __grid_constant__ PrefillTensorMaps maps) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Element = typename Traits::Element;
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
  const SeqInfo seq = SeqInfo::make(params, blockIdx.z);
  // A ragged batch's grid spans its longest sequence: CTAs past this one's queries leave before
  // any barrier exists (the whole CTA takes the branch).
  if (q_block * Traits::kBlockQ >= seq.num_queries) return;
  const int q_outer = params.cu_seqlens_q != nullptr ? 0 : seq.batch_idx;  // see PrefillTensorMaps
  const int kv_outer =
      params.cu_seqlens_k != nullptr || params.page_table != nullptr ? 0 : seq.batch_idx;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int kv_head = q_head0 / group;
  const RowBlocks row = RowBlocks::of(params, seq, kv_head, q_block);
  const int num_sel = row.count;
  // TMA token coordinates of the tile's first query and of key 0 (packed ragged tokens move
  // them by the sequence's offsets; query rows past its end belong to the next sequence:
  // computed, never stored).
  const int q_coord0 = static_cast<int>(seq.q_token0) + q_block * Traits::kBlockQ;
  const int k_coord0 = static_cast<int>(seq.k_token0);
  // A paged cache: key block j is page pages[j] of the pool (KvSource's addressing, as TMA rows).
  const int* pages = params.page_table != nullptr
                         ? params.page_table + seq.batch_idx * params.page_table_stride
                         : nullptr;
  auto block_coord = [&](int block) {
    return pages != nullptr ? pages[block] * kBlockN : k_coord0 + block * kBlockN;
  };
  // The sequence's last key block when it is partial (else -1), and its rows past the last key.
  const int tail_rows = (kBlockN - seq.num_keys % kBlockN) % kBlockN;
  const int last_block = tail_rows > 0 ? seq.num_keys / kBlockN : -1;
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
                            q_full, half * 64, q_coord0, q_head0 + h, q_outer);
      constexpr uint32_t kStageTx = Traits::kKVStageBytes;
      for (int step = 0; step < num_steps; ++step) {
        const int s = step % kStages;
        if (step >= kStages) sm90::mbarrier_wait(&empty[s], ((step / kStages) - 1) & 1);
        const int b0 = row[2 * step];
        // An odd tail repeats its block: finite data the consumers mask to zero weight.
        const int b1 = 2 * step + 1 < num_sel ? row[2 * step + 1] : b0;
        // Keys past the sequence's end in a partial last block (zeros past the buffer, the next
        // sequence's rows in a packed batch, a page's unused rows) are masked by the causal
        // rule: every one of them lies after every query, so P is 0 there. Their V rows are
        // zeroed by the consumers before P V (clear_tail_v): 0 * NaN would be NaN.
        const int t0 = block_coord(b0), t1 = block_coord(b1);
        // K, then V, of the stage's two blocks: per 64-column half, block b0 into key rows
        // [0, 64) and block b1 into [64, 128), all on the tensor's full barrier.
        auto load_stage = [&](const CUtensorMap* map, uint64_t* full, int offset) {
          unsigned char* stage = smem + offset + s * Traits::kKVStageBytes;
          sm90::mbarrier_arrive_expect_tx(full, kStageTx);
#pragma unroll
          for (int half = 0; half < Traits::kHalves; ++half) {
            unsigned char* dst = stage + half * Traits::kKVHalfBytes;
            sm90::tma_load_4d(dst, map, full, half * 64, t0, kv_head, kv_outer);
            sm90::tma_load_4d(dst + kBlockN * Traits::kRowBytes, map, full, half * 64, t1, kv_head,
                              kv_outer);
          }
        };
        load_stage(&maps.k, &k_full[s], Traits::kKOffset);
        load_stage(&maps.v, &v_full[s], Traits::kVOffset);
      }
    }
    return;
  }

  // ---- consumers ----
  // Step j: issue S_{j+1} = Q K_{j+1}^T, issue O += P_j V_j, wait for S_{j+1}, softmax it into
  // P_{j+1}, wait for P_j V_j, hand stage j back, rescale O by the correction of step j + 1.
  // The softmax sits between the two waits so that it can run while P_j V_j holds the tensor
  // cores; ptxas (CUDA 13.0) still schedules its exp2 after the second wait, so today only the
  // mask and part of the row max overlap (bench/RESULTS.md).
  sm90::setmaxnreg_inc<Traits::kConsumerRegs>();
  const int consumer = warpgroup - 1;  // head q_head0 + consumer
  const int ctid = threadIdx.x - 128 * warpgroup;
  const int cwarp = ctid / 32;
  const int lane = ctid % 32;
  const int g = lane / 4;
  const int c = lane % 4;
  PrefillSm90Softmax<Traits> softmax;
  softmax.scale_log2 = params.softmax_scale * kLog2e;
  softmax.first_query_pos = seq.query_position(q_start);
  softmax.row_pos0 = softmax.first_query_pos + 16 * cwarp + g;
  softmax.c = c;

  unsigned char* q_tile = smem + consumer * Traits::kQHeadBytes;
  // Descriptors of stage 0 (layouts in ptx_sm90.cuh); a stage or k-step adds its byte offset / 16
  // to the address field (shared addresses stay below 2^18, so the add never carries out).
  const uint64_t q_desc = sm90::smem_desc_sw128(sm90::smem_u32(q_tile), 16, 1024);
  const uint64_t k_desc0 = sm90::smem_desc_sw128(sm90::smem_u32(smem + Traits::kKOffset), 16, 1024);
  const uint64_t v_desc0 =
      sm90::smem_desc_sw128(sm90::smem_u32(smem + Traits::kVOffset), Traits::kKVHalfBytes, 1024);
  // Zeroes the V rows past the sequence's last key in the stage of `step` when it holds the
  // partial last block (in slot 0, slot 1, or both for a repeated odd tail). Ids ascend and the
  // last block is the largest there is, so only the last step can hold it (last_step calls
  // this; the main loop stays as it was: the check there cost 7-9% at 32K-128K). The producer
  // issues nothing after the last step, so no TMA write races with the zeros.
  auto clear_tail_v = [&](int step, int s) {
    const int b0 = row[2 * step];
    const int b1 = 2 * step + 1 < num_sel ? row[2 * step + 1] : b0;  // the producer's slot 1
    // Both consumer warpgroups read the same stage (one row of blocks per KV head), so they
    // reach this step together and share the clearing: each zero is written once, and no
    // warpgroup's P V starts before every zero is written (one barrier over both).
    if (b0 != last_block && b1 != last_block) return;  // uniform over both consumers
    unsigned char* stage = smem + Traits::kVOffset + s * Traits::kKVStageBytes;
    constexpr int kChunks = Traits::kRowBytes / 16;  // 16-byte chunks per row (any swizzle)
    constexpr int kConsumerThreads = 32 * Traits::kConsumerWarps;
    const int per_slot = Traits::kHalves * tail_rows * kChunks;
    for (int i = threadIdx.x - 128; i < 2 * per_slot; i += kConsumerThreads) {
      const int slot = i / per_slot;
      if ((slot == 0 ? b0 : b1) != last_block) continue;
      const int rest = i % per_slot;
      const int half = rest / (tail_rows * kChunks);
      const int row_in_block = kBlockN - tail_rows + (rest / kChunks) % tail_rows;
      *reinterpret_cast<uint4*>(stage + half * Traits::kKVHalfBytes +
                                (slot * kBlockN + row_in_block) * Traits::kRowBytes +
                                (rest % kChunks) * 16) = make_uint4(0u, 0u, 0u, 0u);
    }
    sm90::fence_proxy_async_shared();  // the zeros, written generically, to wgmma's async proxy
    sm90::named_barrier_sync(Traits::kTailClearBarrier, kConsumerThreads);
  };
  auto stage_blocks = [&](int step, int& b0, int& b1) {
    b0 = row[2 * step];
    const bool has_b1 = 2 * step + 1 < num_sel;
    b1 = has_b1 ? row[2 * step + 1] : -1;  // -1: the repeated tail block, masked
  };

  float o[Traits::kOAccum];
#pragma unroll
  for (int i = 0; i < Traits::kOAccum; ++i) o[i] = 0.f;
  // P_j lives in p[j % 2]: P_{j+1} is written while the P_j V_j wgmma still reads P_j, and a
  // register copy between them would sit inside a wgmma pipeline stage (ptxas serializes it).
  uint32_t p[2][Traits::kPRegs][4];
  float correction[2];

  sm90::mbarrier_wait(q_full, 0);
  if (num_steps > 0) {
    float sacc[Traits::kSAccum];
    int b0, b1;
    stage_blocks(0, b0, b1);
    sm90::mbarrier_wait(&k_full[0], 0);
    prefill_sm90_issue_qk<Traits>(sacc, q_desc, k_desc0);
    sm90::wgmma_wait<0>();
    sm90::fence_operands(sacc);
    softmax.step(sacc, p[0], correction, b0, b1);  // O is 0: no correction to apply
  }
  // Step j < num_steps - 1, P_j in p[kCur].
  auto middle_step = [&](int step, auto cur_tag) {
    constexpr int kCur = decltype(cur_tag)::value;
    const int s = step % kStages;
    const int s_next = (step + 1) % kStages;
    float sacc[Traits::kSAccum];
    sm90::mbarrier_wait(&k_full[s_next], ((step + 1) / kStages) & 1);
    prefill_sm90_issue_qk<Traits>(sacc, q_desc, k_desc0 + s_next * (Traits::kKVStageBytes >> 4));
    sm90::mbarrier_wait(&v_full[s], (step / kStages) & 1);
    prefill_sm90_issue_pv<Traits>(o, p[kCur], v_desc0 + s * (Traits::kKVStageBytes >> 4));
    int b0, b1;
    stage_blocks(step + 1, b0, b1);
    sm90::wgmma_wait<1>();  // S_{j+1} is done; P_j V_j may still run
    sm90::fence_operands(sacc);
    softmax.step(sacc, p[kCur ^ 1], correction, b0, b1);
    sm90::wgmma_wait<0>();
    sm90::fence_operands(o);
    sm90::fence_operands(p[kCur]);
    __syncwarp();
    if (lane == 0) sm90::mbarrier_arrive(&empty[s]);  // this warp is done reading stage s
#pragma unroll
    for (int j = 0; j < Traits::kOAccum / 4; ++j) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        o[4 * j + 2 * r] *= correction[r];
        o[4 * j + 2 * r + 1] *= correction[r];
      }
    }
  };
  // The last step: no S_{j+1}; the producer issues nothing after it, so no hand-back.
  auto last_step = [&](int step, auto cur_tag) {
    constexpr int kCur = decltype(cur_tag)::value;
    const int s = step % kStages;
    sm90::mbarrier_wait(&v_full[s], (step / kStages) & 1);
    clear_tail_v(step, s);
    prefill_sm90_issue_pv<Traits>(o, p[kCur], v_desc0 + s * (Traits::kKVStageBytes >> 4));
    sm90::wgmma_wait<0>();
    sm90::fence_operands(o);
  };
  using Even = IntConst<0>;
  using Odd = IntConst<1>;
  int step = 0;
  for (; step + 2 < num_steps; step += 2) {
    middle_step(step, Even{});
    middle_step(step + 1, Odd{});
  }
  if (step + 1 < num_steps) {
    middle_step(step, Even{});
    last_step(step + 1, Odd{});
  } else if (step < num_steps) {
    last_step(step, Even{});
  }
  // ---- epilogue (its last reader, the final S wgmma, has completed: Q's tile stages O) ----
  prefill_sm90_epilogue<Traits>(params, seq, o, softmax, reinterpret_cast<Element*>(q_tile),
                                q_head0 + consumer, q_start, consumer, ctid);
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
  // Two query heads per CTA share one KV head: the group size must be even.
  if ((params.num_q_heads / params.num_kv_heads) % Traits::kHeadsPerCta != 0) return cudaErrorInvalidValue;
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
