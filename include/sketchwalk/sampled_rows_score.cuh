// score_blocks_sampled_rows on sm_80 and later (docs/spec.md section 11): the exact causal
// softmax of a few sampled query rows per query block, summed per key block, on tensor cores
// (mma.sync m16n8k16, ldmatrix, cp.async K pipeline of tile_load_sm80.cuh).
//
// One CTA = (params.q_blocks_per_cta consecutive query blocks, KV group g, sequence b): its rows
// are those blocks x the group's query heads x the sampled rows (sampled_rows.h), padded to
// kMTiles m16 tiles, held in shared memory; every K tile it loads serves all of them (the
// scorer is bound by that traffic, not by its math). Four warps
// sweep the causal key tiles (64 keys, one key block) together, each taking 16 keys of a tile
// for every row. Two sweeps: the first keeps each row's running max and sum (online softmax,
// log2 domain), merged over the quad and the warps into the row's log-sum-exp; the second
// recomputes the logits, turns them into probabilities and sums them over the tile's keys and
// each query block's rows: one float per (query block, key block), written once. The sweep runs
// to the CTA's last block's limit; an earlier block's rows are masked past their own. The logits are computed twice: the scorer
// costs 2 * rows / 64 of a dense QK^T over the causal keys of its rows (bench/RESULTS.md).
// Padding rows and keys after a row's query are masked to probability 0 (never NaN: a real
// row always sees key 0). fp16 / bf16, head_dim 64 / 128.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/mma_sm80.cuh"
#include "sketchwalk/online_softmax.cuh"
#include "sketchwalk/params.h"
#include "sketchwalk/sampled_rows.h"
#include "sketchwalk/tile_load_sm80.cuh"

namespace sketchwalk {
namespace sampled_rows {

/// \brief Tiles of the scorer: kMTiles m16 tiles of rows (16 to 128), 4 warps x 16 keys of a
/// 64-key tile, a 2-stage K pipeline. Shared memory at D = 128, 8 m-tiles: Q 128 x 128 x 2 B =
/// 32 KiB + K 2 x 64 x 128 x 2 B = 32 KiB.
template <int kHeadDim_, int kMTiles_, typename Element_>
struct Traits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kMTiles = kMTiles_;
  static constexpr int kRows = 16 * kMTiles;
  static constexpr int kBlockN = kIndexBlockSize;  // keys per tile: one key block
  static constexpr int kNumWarps = 4;
  static constexpr int kNumThreads = 32 * kNumWarps;
  static constexpr int kKeysPerWarp = kBlockN / kNumWarps;  // 16: two n8 tiles
  static constexpr int kStages = 2;
  static constexpr int kElemsPerChunk = 16 / static_cast<int>(sizeof(Element));
  static constexpr int kChunksPerRow = kHeadDim / kElemsPerChunk;
  static constexpr int kQTileElems = kRows * kHeadDim;
  static constexpr int kKTileElems = kBlockN * kHeadDim;
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(kQTileElems + kStages * kKTileElems) * sizeof(Element);
  // The kernel's static arrays (stat_max, stat_sum, row_mass): with them the CTA needs more than
  // the default 48 KiB as soon as kSmemBytes + kStaticSmemBytes does (head_dim 128 at 64 rows is
  // 48 KiB dynamic + 3 KiB static), and the launcher must opt in.
  static constexpr size_t kStaticSmemBytes = 3 * sizeof(float) * kNumWarps * kRows;
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kRows <= kMaxSampledRowsPerGroup, "at most kMaxSampledRowsPerGroup rows");
  static_assert(kKeysPerWarp == 16, "a warp's keys are two n8 tiles");
  static_assert(kChunksPerRow >= 8, "the XOR swizzle needs >= 8 chunks per row");
};

template <typename T>
__global__ void __launch_bounds__(T::kNumThreads)
    sampled_rows_kernel(const SampledRowsParams params) {
  using Element = typename T::Element;
  constexpr int kHeadDim = T::kHeadDim;
  constexpr int kMTiles = T::kMTiles;
  constexpr int kE = T::kElemsPerChunk;
  constexpr int kChunks = T::kChunksPerRow;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  Element* q_smem = reinterpret_cast<Element*>(smem_raw);  // [kRows][kHeadDim], swizzled
  Element* k_smem = q_smem + T::kQTileElems;              // [kStages][64][kHeadDim], swizzled
  __shared__ float stat_max[T::kNumWarps][T::kRows];       // raw logits
  __shared__ float stat_sum[T::kNumWarps][T::kRows];
  __shared__ float row_mass[T::kNumWarps][T::kRows];        // a tile's mass per row and warp
  static_assert(sizeof(stat_max) + sizeof(stat_sum) + sizeof(row_mass) == T::kStaticSmemBytes,
                "Traits::kStaticSmemBytes counts the static arrays (the launcher's opt-in)");

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int g = lane / 4;
  const int c = lane % 4;
  // Heavy (late) query blocks first: CTA x = gridDim.x - 1 takes blocks [0, q_blocks_per_cta).
  const int first_q_block = (gridDim.x - 1 - blockIdx.x) * params.q_blocks_per_cta;
  const int cta_q_blocks = min(params.q_blocks_per_cta, params.num_q_blocks - first_q_block);
  const int kv_head = blockIdx.y;
  const int b = blockIdx.z;
  const int group = params.num_q_heads / params.num_kv_heads;
  const int rows_per_block = group * params.rows;
  const int live_rows = cta_q_blocks * rows_per_block;  // <= kRows (the launcher's choice)
  const int key_offset = params.num_keys - params.num_queries;
  // Row r = (query block r / rows_per_block of the CTA, head h of the group, sampled row j):
  // r % rows_per_block = h * rows + j. Its query index:
  auto row_query = [&](int r) {
    return sampled_row_query(first_q_block + r / rows_per_block, r % params.rows, params.rows,
                             params.num_queries);
  };

  // Q rows; padding rows zero.
  const Element* q_base = static_cast<const Element*>(params.q) + b * params.q_batch_stride;
  for (int idx = tid; idx < T::kRows * kChunks; idx += T::kNumThreads) {
    const int r = idx / kChunks;
    const int chunk = idx % kChunks;
    const bool live = r < live_rows;
    const Element* src = q_base;
    if (live) {
      const int head = kv_head * group + (r % rows_per_block) / params.rows;
      src += head * params.q_head_stride + static_cast<int64_t>(row_query(r)) * params.q_token_stride +
             chunk * kE;
    }
    sm80::cp_async_16(sm80::smem_u32(q_smem + detail::swizzle<kHeadDim, kE>(r, chunk)), src, live);
  }

  // This thread's rows (g and g + 8 of each m-tile): the last key each may see (-1: padding).
  int key_limit[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = mt * 16 + g + 8 * h;
      key_limit[mt][h] = r < live_rows ? key_offset + row_query(r) : -1;
    }
  // The latest sampled row is the last block's last (j = rows - 1): its key limit bounds the sweep.
  const int max_limit = key_offset + row_query(live_rows - 1);
  const int num_tiles = max_limit / T::kBlockN + 1;

  const Element* k_base = static_cast<const Element*>(params.k) + b * params.k_batch_stride +
                          kv_head * params.k_head_stride;
  auto load_k = [&](int stage, int tile) {
    const int64_t key0 = static_cast<int64_t>(tile) * T::kBlockN;
    const int valid = static_cast<int>(min(static_cast<int64_t>(T::kBlockN), params.num_keys - key0));
    detail::load_tile_async<T, T::kBlockN>(k_smem + stage * T::kKTileElems,
                                           k_base + key0 * params.k_token_stride,
                                           params.k_token_stride, valid, tid);
  };

  const float scale_log2 = params.softmax_scale * kLog2e;
  const uint32_t q_u32 = sm80::smem_u32(q_smem);
  float row_max[kMTiles][2], row_sum[kMTiles][2], row_lse[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      row_max[mt][h] = -INFINITY;
      row_sum[mt][h] = 0.f;
      row_lse[mt][h] = 0.f;
    }

  // Raw logits of this warp's 16 keys of tile `stage` for every row; masked ones -inf.
  auto tile_logits = [&](float (&s)[kMTiles][2][4], int stage, int tile) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
    const uint32_t k_u32 = sm80::smem_u32(k_smem + stage * T::kKTileElems);
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      uint32_t bfrag[4];
      sm80::ldmatrix_x4(bfrag, k_u32 + 2 * detail::swizzle<kHeadDim, kE>(
                                           warp * T::kKeysPerWarp + (lane / 16) * 8 + lane % 8,
                                           kk * 2 + (lane / 8) % 2));
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        uint32_t a[4];
        sm80::ldmatrix_x4(a, q_u32 + 2 * detail::swizzle<kHeadDim, kE>(mt * 16 + lane % 16,
                                                                        kk * 2 + lane / 16));
        sm80::mma_m16n8k16<Element>(s[mt][0], a, bfrag[0], bfrag[1]);
        sm80::mma_m16n8k16<Element>(s[mt][1], a, bfrag[2], bfrag[3]);
      }
    }
    const int key0 = tile * T::kBlockN + warp * T::kKeysPerWarp + 2 * c;
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (key0 + nt * 8 + (e & 1) > key_limit[mt][e / 2]) s[mt][nt][e] = -INFINITY;
  };

  // One sweep over the causal key tiles. kMass false: running max / sum per row. kMass true:
  // probabilities against row_lse, summed per tile over the keys and rows into scores.
  // Row of the CTA's first query block; block q of the CTA's at scores_first + q * num_k_blocks.
  float* scores_first = params.scores +
                        ((static_cast<int64_t>(b) * params.num_kv_heads + kv_head) * params.num_q_blocks +
                         first_q_block) * params.num_k_blocks;
  const float inv_rows = 1.f / static_cast<float>(rows_per_block);
  auto sweep = [&](auto mass_pass) {
    constexpr bool kMass = decltype(mass_pass)::value;
    load_k(0, 0);
    sm80::cp_async_commit();  // the first sweep's group 0 also carries Q
    for (int tile = 0; tile < num_tiles; ++tile) {
      if (tile + 1 < num_tiles) load_k((tile + 1) % T::kStages, tile + 1);
      sm80::cp_async_commit();
      sm80::cp_async_wait<1>();
      __syncthreads();
      float s[kMTiles][2][4];
      tile_logits(s, tile % T::kStages, tile);
      if constexpr (!kMass) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float mx = fmaxf(row_max[mt][h], fmaxf(fmaxf(s[mt][0][2 * h], s[mt][0][2 * h + 1]),
                                                         fmaxf(s[mt][1][2 * h], s[mt][1][2 * h + 1])));
            const float m_scaled = max_or_zero(mx) * scale_log2;
            float sum = row_sum[mt][h] * sm80::exp2_approx(row_max[mt][h] * scale_log2 - m_scaled);
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
              for (int e = 0; e < 2; ++e)
                sum += sm80::exp2_approx(fmaf(s[mt][nt][2 * h + e], scale_log2, -m_scaled));
            row_max[mt][h] = mx;
            row_sum[mt][h] = sum;
          }
      } else {
        // Each row's probability over this warp's 16 keys (its quad's 4 lanes hold 4 each).
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            float p = 0.f;
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
              for (int e = 0; e < 2; ++e)
                if (s[mt][nt][2 * h + e] != -INFINITY)
                  p += sm80::exp2_approx(fmaf(s[mt][nt][2 * h + e], scale_log2, -row_lse[mt][h]));
            p += __shfl_xor_sync(0xffffffffu, p, 1);
            p += __shfl_xor_sync(0xffffffffu, p, 2);
            if (c == 0) row_mass[warp][mt * 16 + g + 8 * h] = p;
          }
      }
      __syncthreads();  // the stage is free for the next load; row_mass is complete
      if constexpr (kMass) {
        // A warp per query block sums its rows over the 4 warps' keys, in a fixed order (the
        // scores are the same on every run). row_mass is next written after the next tile's
        // first barrier, which every reader reaches only when done.
        for (int q = warp; q < cta_q_blocks; q += T::kNumWarps) {
          float mass = 0.f;
          for (int r = q * rows_per_block + lane; r < (q + 1) * rows_per_block; r += 32)
#pragma unroll
            for (int w = 0; w < T::kNumWarps; ++w) mass += row_mass[w][r];
#pragma unroll
          for (int off = 16; off > 0; off /= 2) mass += __shfl_xor_sync(0xffffffffu, mass, off);
          if (lane == 0) scores_first[static_cast<int64_t>(q) * params.num_k_blocks + tile] = mass * inv_rows;
        }
      }
    }
  };

  sweep(std::false_type{});
  // Row statistics: merge the quad's lanes, then the warps (shared memory), into log2-domain
  // log-sum-exp per row. A padding row keeps -inf / 0 and is masked in the second sweep.
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float m = row_max[mt][h];
      float l = row_sum[mt][h];
#pragma unroll
      for (int off = 1; off <= 2; off *= 2) {
        const float m_other = __shfl_xor_sync(0xffffffffu, m, off);
        const float l_other = __shfl_xor_sync(0xffffffffu, l, off);
        const float m_new = fmaxf(m, m_other);
        const float ref = max_or_zero(m_new) * scale_log2;
        l = l * sm80::exp2_approx(m * scale_log2 - ref) + l_other * sm80::exp2_approx(m_other * scale_log2 - ref);
        m = m_new;
      }
      if (c == 0) {
        stat_max[warp][mt * 16 + g + 8 * h] = m;
        stat_sum[warp][mt * 16 + g + 8 * h] = l;
      }
    }
  __syncthreads();
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = mt * 16 + g + 8 * h;
      float m = -INFINITY;
#pragma unroll
      for (int w = 0; w < T::kNumWarps; ++w) m = fmaxf(m, stat_max[w][r]);
      const float ref = max_or_zero(m) * scale_log2;
      float l = 0.f;
#pragma unroll
      for (int w = 0; w < T::kNumWarps; ++w) l += stat_sum[w][r] * merge_weight(stat_max[w][r] * scale_log2, ref);
      row_lse[mt][h] = ref + log2f(l);
    }
  sweep(std::true_type{});
  // Key blocks past the latest row's limit hold no probability (nor, in the sweep, those past an
  // earlier block's own rows: their probabilities are 0).
  const int tail = params.num_k_blocks - num_tiles;
  for (int idx = tid; idx < cta_q_blocks * tail; idx += T::kNumThreads)
    scores_first[static_cast<int64_t>(idx / tail) * params.num_k_blocks + num_tiles + idx % tail] = 0.f;
}

}  // namespace sampled_rows
}  // namespace sketchwalk
