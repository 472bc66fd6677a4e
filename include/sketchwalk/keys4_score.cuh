// score_blocks_keys4 on tensor cores (docs/spec.md section 7 steps 1-2): the logits of one query per
// sequence against the 4-bit key cache (keys4.h), as per-(query head, key block) softmax
// statistics, then per kv group the block attention mass. Used by csrc/cuda/score_blocks_keys4.cu.
// Token-level logits never reach memory. fp16/bf16 queries, head_dim 64/128. Torch-free.
//
// Why tensor cores: per token and kv group the scorer reads head_dim / 2 + 4 bytes (68 at 128)
// and does group * head_dim multiply-adds (512 for Llama-3.1-8B's group of 4): ~7.5 FMA per
// byte, twice what the H200's CUDA cores sustain at its ~4.3 TB/s, plus the unpacking. One
// mma.m16n8k16 takes 16 tokens x 16 dims against up to 8 heads of the group.
//
// Exactness: codes are integers in [-7, 7] and q is used in its own 16-bit type, so every
// product is exact and accumulates in fp32; the token scale and softmax scale multiply after.
// (Folding the nibble offset into a per-head correction would save one instruction per code
// register but cancel ~136 * sum|q| in fp32: more error than the test tolerance allows.)
//
// Streaming: each warp copies its blocks' codes and scales into its own shared-memory ring
// with cp.async (kStatsStages deep), so the next block's bytes are in flight while the warp
// computes; measured on an H200 (128K keys, batch 1, 8 kv heads): 35 -> 30 us for the
// statistics kernel, with the nibble unpacking at 3 instructions per code register.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/keys4.h"
#include "sketchwalk/mma_sm80.cuh"
#include "sketchwalk/params.h"

namespace sketchwalk {
namespace keys4 {

constexpr int kStatsWarps = 4;  // key blocks per CTA of the statistics kernel (one per warp)
constexpr int kMassThreads = 256;

/// \brief A nibble OR-ed into the mantissa of 2^7 (bf16 0x4300) is 128 + nibble exactly: bf16
/// keeps 7 mantissa bits and the ulp at 128 is 1. For fp16 2^10 (0x6400) gives 1024 + nibble.
/// Subtracting the magic value plus the nibble offset 8 leaves the signed code, exactly.
template <typename Element>
struct NibbleMagic;
template <>
struct NibbleMagic<__nv_bfloat16> {
  static constexpr uint32_t kBits = 0x43004300u;
  static constexpr float kBias = 128.f + kKeys4Offset;
};
template <>
struct NibbleMagic<__half> {
  static constexpr uint32_t kBits = 0x64006400u;
  static constexpr float kBias = 1024.f + kKeys4Offset;
};

template <typename Element>
SW_DEVICE uint32_t sub_bias2(uint32_t bits);
template <>
SW_DEVICE uint32_t sub_bias2<__nv_bfloat16>(uint32_t bits) {
  const __nv_bfloat162 v = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&bits),
                                   __float2bfloat162_rn(NibbleMagic<__nv_bfloat16>::kBias));
  return *reinterpret_cast<const uint32_t*>(&v);
}
template <>
SW_DEVICE uint32_t sub_bias2<__half>(uint32_t bits) {
  const __half2 v = __hsub2(*reinterpret_cast<const __half2*>(&bits),
                            __float2half2_rn(NibbleMagic<__half>::kBias));
  return *reinterpret_cast<const uint32_t*>(&v);
}

/// \brief From a 32-bit word of 8 nibbles (dims base .. base + 7, low nibble first), the
/// register of two 16-bit codes (code of dim base + j, code of dim base + j + 4), j in [0, 4).
/// One funnel shift, one lop3 ((x & mask) | magic) and one 16-bit subtraction per register.
template <typename Element>
SW_DEVICE uint32_t unpack_codes(uint32_t word, int j) {
  uint32_t v;
  asm("lop3.b32 %0, %1, %2, %3, 0xea;\n"  // 0xea: (a & b) | c
      : "=r"(v)
      : "r"(word >> (4 * j)), "n"(0x000F000F), "n"(NibbleMagic<Element>::kBits));
  return sub_bias2<Element>(v);
}

// Fragment mapping (mma_sm80.cuh layouts; c = lane % 4, r = lane / 4). Thread c uses bytes
// [c * D/8, (c+1) * D/8) of a token row, i.e. dims [c * D/4, (c+1) * D/4), as kWords words.
// The dot product does not care which k index a dim takes as long as A and B agree, so the
// k-step pair (2i, 2i+1) of thread c takes word i (dims base = c * D/4 + 8i .. + 7):
//   k-step 2i   : a0/a1 = (base, base+4)   a2/a3 = (base+1, base+5)
//   k-step 2i+1 : a0/a1 = (base+2, base+6) a2/a3 = (base+3, base+7)
// and B (q of head r) holds the same dims: one 16-byte load of q[base .. base+7] per pair.
template <typename Element, int kHeadDim>
struct Keys4Tile {
  static constexpr int kKSteps = kHeadDim / 16;
  static constexpr int kWords = kHeadDim / 32;  // 32-bit code words per thread per token row
  static constexpr int kDimsPerThread = kHeadDim / 4;
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim 64 or 128");
};

/// \brief B fragments of one n-tile: q of head `head` (zero when the head is idle).
template <typename Element, int kHeadDim>
SW_DEVICE void load_q_fragments(const Element* q_head, bool active, int c,
                                uint32_t (&b)[kHeadDim / 16][2]) {
  using Tile = Keys4Tile<Element, kHeadDim>;
#pragma unroll
  for (int i = 0; i < Tile::kWords; ++i) {
    uint4 v = make_uint4(0, 0, 0, 0);
    if (active) v = *reinterpret_cast<const uint4*>(q_head + c * Tile::kDimsPerThread + 8 * i);
    // v.x = (q0, q1), v.y = (q2, q3), v.z = (q4, q5), v.w = (q6, q7)
    b[2 * i][0] = __byte_perm(v.x, v.z, 0x5410);      // (q0, q4)
    b[2 * i][1] = __byte_perm(v.x, v.z, 0x7632);      // (q1, q5)
    b[2 * i + 1][0] = __byte_perm(v.y, v.w, 0x5410);  // (q2, q6)
    b[2 * i + 1][1] = __byte_perm(v.y, v.w, 0x7632);  // (q3, q7)
  }
}

/// \brief Splits of the key blocks per (batch, kv head) for the statistics kernel: about
/// kStatsCtasPerSm CTAs per SM in all, each with >= kStatsWarps blocks of the capacity.
/// Llama-3.1-8B (8 kv heads) at 128K keys (2048 blocks) on 132 SMs: batch 1 -> 99 splits of
/// ~21 blocks (~5 per warp); batch 8 -> 13 splits of ~158 blocks.
constexpr int kStatsCtasPerSm = 6;  // <= 80 registers x 128 threads and ~35 KB of stages each
SW_HOST_DEVICE int keys4_score_splits(int batch, int num_kv_heads, int num_blocks, int num_sms) {
  const int rows = batch * num_kv_heads;
  int splits = (kStatsCtasPerSm * num_sms + rows - 1) / rows;
  const int by_width = (num_blocks + kStatsWarps - 1) / kStatsWarps;
  splits = splits < by_width ? splits : by_width;
  return splits < 1 ? 1 : splits;
}

/// \brief One warp's shared-memory stage: a key block's codes and scales. Chunk (i, lane) is
/// the piece c = lane % 4 of token r + 8i (r = lane / 4), i.e. of token 16m + r + 8h for
/// i = 2m + h: each thread copies exactly the code chunks it later reads, so only the scales
/// (token r + 8i copied by the lane with c == i % 4) cross lanes.
template <int kHeadDim>
struct Keys4Stage {
  static constexpr int kChunkBytes = kHeadDim / 8;  // one thread's piece of a token row
  static constexpr int kCodeBytes = kIndexBlockSize * kHeadDim / 2;
  static constexpr int kBytes = kCodeBytes + kIndexBlockSize * static_cast<int>(sizeof(float));
  static_assert(kIndexBlockSize == 64, "8 chunks per thread: 64 tokens x 4 pieces / 32 lanes");
};

constexpr int kStatsStages = 2;  // per warp: one block in flight while the previous one computes

template <int kHeadDim>
constexpr size_t keys4_stats_smem_bytes(int group) {
  return static_cast<size_t>(kStatsWarps) * kStatsStages * Keys4Stage<kHeadDim>::kBytes +
         2 * sizeof(float) * kStatsWarps * static_cast<size_t>(group);
}

/// \brief Async copy of `bytes` (4, 8 or 16) from global to shared memory; zero-fills when
/// `valid` is false (src must still be a mapped address).
template <int kBytes>
SW_DEVICE void cp_async_ca(uint32_t dst, const void* src, bool valid) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async sizes");
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(src),
               "n"(kBytes), "r"(valid ? kBytes : 0)
               : "memory");
}

/// \brief Running (max, sum of exp2 against max) of log2-domain logits; merges are exact
/// up to float rounding in any order. max = -inf means empty (sum 0).
struct SoftmaxTotal {
  float max = -INFINITY, sum = 0.f;
  SW_DEVICE void add(float other_max, float other_sum) {
    const float m = fmaxf(max, other_max);
    if (m == -INFINITY) return;  // both empty
    sum = (max == -INFINITY ? 0.f : sum * exp2f(max - m)) +
          (other_max == -INFINITY ? 0.f : other_sum * exp2f(other_max - m));
    max = m;
  }
};

/// \brief grid (splits, num_kv_heads, batch), 32 * kStatsWarps threads, dynamic shared memory
/// keys4_stats_smem_bytes<kHeadDim>(group). CTA s takes the live key blocks
/// [s * per, (s + 1) * per) of its (batch, kv head), per = ceil(n / splits), n = ceil(L_b / 64);
/// its warps take every kStatsWarps-th block, each streaming its blocks through its own
/// kStatsStages-deep cp.async ring. For each block j and query head h of the group it writes
/// block_max[h, j] = max_t s_t and block_sum[h, j] = sum_t exp2(s_t - block_max) over the
/// block's keys t < L_b, with s_t = softmax_scale * log2(e) * scale_t * <q_h, code_t>; and per
/// CTA the merge of its blocks, head_max / head_sum [batch, num_q_heads, splits] (empty CTAs
/// write -inf / 0). A block with no finite-or-NaN maximum (every live logit -inf) has sum 0.
/// kOneTile: group <= 8, one n-tile (a separate kernel: with a loop over n-tiles the compiler
/// hoists every unpacked code out of it).
template <typename Element, int kHeadDim, bool kOneTile>
__global__ void __launch_bounds__(32 * kStatsWarps, kStatsCtasPerSm)
    keys4_block_stats_kernel(const ScoreKeys4Params p, float* __restrict__ head_max,
                             float* __restrict__ head_sum) {
  using Tile = Keys4Tile<Element, kHeadDim>;
  using Stage = Keys4Stage<kHeadDim>;
  constexpr int kWords = Tile::kWords;
  constexpr int kChunk = Stage::kChunkBytes;
  extern __shared__ __align__(16) uint8_t stats_smem[];
  // [kStatsWarps][kStatsStages] stages, then [kStatsWarps][group] max, [kStatsWarps][group] sum
  float* warp_totals = reinterpret_cast<float*>(stats_smem + kStatsWarps * kStatsStages * Stage::kBytes);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int c = lane & 3, r = lane >> 2;
  const int split = blockIdx.x, splits = gridDim.x;
  const int kv_head = blockIdx.y, batch_idx = blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int seq_len = p.seq_lens != nullptr ? p.seq_lens[batch_idx] : p.capacity;
  const int n = min(ceil_div(seq_len, kIndexBlockSize), p.num_blocks);
  const int per = ceil_div(n, splits);
  const int begin = split * per, end = min(n, begin + per);

  for (int i = threadIdx.x; i < kStatsWarps * group; i += blockDim.x) {
    warp_totals[i] = -INFINITY;
    warp_totals[kStatsWarps * group + i] = 0.f;
  }
  __syncthreads();

  // Token 0 of key block `block` of this (sequence, kv head): its batch row, or its page.
  auto block_codes = [&](int block) {
    const Keys4Slot at = keys4_slot(p.page_table, p.page_table_stride, batch_idx, block * kIndexBlockSize);
    return p.codes + at.outer * p.codes_batch_stride + kv_head * p.codes_head_stride +
           at.slot * p.codes_token_stride + c * kChunk;
  };
  auto block_scales = [&](int block) {
    const Keys4Slot at = keys4_slot(p.page_table, p.page_table_stride, batch_idx, block * kIndexBlockSize);
    return p.scales + at.outer * p.scales_batch_stride + kv_head * p.scales_head_stride + at.slot;
  };
  const float qk_scale = p.softmax_scale * kLog2e;
  const Element* q_group = static_cast<const Element*>(p.q) + batch_idx * p.q_batch_stride +
                           static_cast<int64_t>(kv_head) * group * p.q_head_stride;
  const int64_t stats_row0 = static_cast<int64_t>(batch_idx) * p.num_q_heads +
                             static_cast<int64_t>(kv_head) * group;
  uint8_t* ring = stats_smem + warp * kStatsStages * Stage::kBytes;

  // This warp's blocks: begin + warp + kStatsWarps * i, i < count.
  const int first = begin + warp;
  const int count = first < end ? ceil_div(end - first, kStatsWarps) : 0;

  // Copies block i of this warp into stage `stage`; rows at or past L_b are zero-filled, never
  // read (the capacity may end inside the block). Always commits a group, so the wait below
  // counts the same on every iteration. Thread (r, c) copies code chunks (k, lane) = piece c of
  // token r + 8k, k < 8, and the scales of tokens r + 8c and r + 8c + 32.
  const int64_t row8_bytes = 8 * p.codes_token_stride;
  const uint32_t ring_u32 = sm80::smem_u32(ring);
  auto issue = [&](int i, int stage) {
    if (i < count) {
      const int block = first + kStatsWarps * i;
      const int key0 = block * kIndexBlockSize;
      const uint32_t dst = ring_u32 + stage * Stage::kBytes + lane * kChunk;
      const uint32_t dst_scales = ring_u32 + stage * Stage::kBytes + Stage::kCodeBytes +
                                  static_cast<uint32_t>(sizeof(float)) * (r + 8 * c);
      const uint8_t* row0 = block_codes(block);  // token 0 of the block: always live
      const float* scales0 = block_scales(block);
      const uint8_t* src = row0 + r * p.codes_token_stride;
      const float* src_scales = scales0 + r + 8 * c;
      if (key0 + kIndexBlockSize <= seq_len) {  // every row live: all blocks but the last
#pragma unroll
        for (int k = 0; k < 8; ++k) cp_async_ca<kChunk>(dst + 32 * k * kChunk, src + k * row8_bytes, true);
        cp_async_ca<4>(dst_scales, src_scales, true);
        cp_async_ca<4>(dst_scales + 32 * sizeof(float), src_scales + 32, true);
      } else {
        const int live = seq_len - key0 - r;  // token r + 8k is live iff 8k < live
#pragma unroll
        for (int k = 0; k < 8; ++k)
          cp_async_ca<kChunk>(dst + 32 * k * kChunk, 8 * k < live ? src + k * row8_bytes : row0, 8 * k < live);
        cp_async_ca<4>(dst_scales, 8 * c < live ? src_scales : scales0, 8 * c < live);
        cp_async_ca<4>(dst_scales + 32 * sizeof(float), 8 * c + 32 < live ? src_scales + 32 : scales0,
                       8 * c + 32 < live);
      }
    }
    sm80::cp_async_commit();
  };

  uint32_t b[Tile::kKSteps][2];  // q of the n-tile (reloaded per block only when group > 8)
  if constexpr (kOneTile) load_q_fragments<Element, kHeadDim>(q_group + r * p.q_head_stride, r < group, c, b);

  // One block's statistics from its stage; updates this warp's per-head totals (lanes r == 0).
  auto process = [&](const uint8_t* stage, int block) {
    const float* stage_scales = reinterpret_cast<const float*>(stage + Stage::kCodeBytes);
    const int key0 = block * kIndexBlockSize;
    // Row (m, h) = token 16m + r + 8h: its logit scale, and whether it lies before L_b (rows
    // past it are -inf whatever q holds: their zero-filled codes times an infinite q are NaN).
    float row_scale[4][2];
    bool row_live[4][2];
#pragma unroll
    for (int m = 0; m < 4; ++m) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int t = 16 * m + r + 8 * h;
        row_scale[m][h] = stage_scales[t] * qk_scale;
        row_live[m][h] = key0 + t < seq_len;
      }
    }
    for (int n0 = 0; n0 < (kOneTile ? 1 : group); n0 += 8) {  // n-tiles of 8 heads
      if constexpr (!kOneTile)
        load_q_fragments<Element, kHeadDim>(q_group + (n0 + r) * p.q_head_stride, n0 + r < group, c, b);
      // s[m][e]: logits of (row r, head 2c), (r, 2c+1), (r+8, 2c), (r+8, 2c+1) of tile m.
      float s[4][4];
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        uint32_t raw[2][kWords];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const uint8_t* src = stage + (32 * (2 * m + h) + lane) * kChunk;
          if constexpr (kWords == 4) {
            const uint4 v = *reinterpret_cast<const uint4*>(src);
            raw[h][0] = v.x, raw[h][1] = v.y, raw[h][2] = v.z, raw[h][3] = v.w;
          } else {
            const uint2 v = *reinterpret_cast<const uint2*>(src);
            raw[h][0] = v.x, raw[h][1] = v.y;
          }
        }
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int kk = 0; kk < Tile::kKSteps; ++kk) {
          const int i = kk / 2, j = 2 * (kk % 2);
          const uint32_t a[4] = {unpack_codes<Element>(raw[0][i], j), unpack_codes<Element>(raw[1][i], j),
                                 unpack_codes<Element>(raw[0][i], j + 1),
                                 unpack_codes<Element>(raw[1][i], j + 1)};
          sm80::mma_m16n8k16<Element>(acc, a, b[kk][0], b[kk][1]);
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) s[m][e] = row_live[m][e / 2] ? acc[e] * row_scale[m][e / 2] : -INFINITY;
      }
      // Per head (col): the block max over the 64 rows (8 lanes sharing c: xor 4, 8, 16), then
      // the sum of exp2 against it. max == -inf (all rows masked or -inf) gives sum 0; fmaxf
      // skips NaN, the sum keeps it.
#pragma unroll
      for (int col = 0; col < 2; ++col) {
        float block_mx = fmaxf(fmaxf(fmaxf(s[0][col], s[0][col + 2]), fmaxf(s[1][col], s[1][col + 2])),
                               fmaxf(fmaxf(s[2][col], s[2][col + 2]), fmaxf(s[3][col], s[3][col + 2])));
#pragma unroll
        for (int off = 4; off < 32; off *= 2)
          block_mx = fmaxf(block_mx, __shfl_xor_sync(0xffffffffu, block_mx, off));
        const float base = block_mx == -INFINITY ? 0.f : block_mx;
        float block_sum = 0.f;
#pragma unroll
        for (int m = 0; m < 4; ++m)
          block_sum += sm80::exp2_approx(s[m][col] - base) + sm80::exp2_approx(s[m][col + 2] - base);
#pragma unroll
        for (int off = 4; off < 32; off *= 2) block_sum += __shfl_xor_sync(0xffffffffu, block_sum, off);
        const int head = n0 + 2 * c + col;
        if (r == 0 && head < group) {
          const int64_t at = (stats_row0 + head) * p.num_blocks + block;
          p.block_max[at] = block_mx;
          p.block_sum[at] = block_sum;
          SoftmaxTotal w{warp_totals[warp * group + head], warp_totals[(kStatsWarps + warp) * group + head]};
          w.add(block_mx, block_sum);
          warp_totals[warp * group + head] = w.max;
          warp_totals[(kStatsWarps + warp) * group + head] = w.sum;
        }
      }
    }
  };

#pragma unroll
  for (int i = 0; i < kStatsStages - 1; ++i) issue(i, i);
  int stage = 0;
  for (int i = 0; i < count; ++i) {  // warp-uniform
    issue(i + kStatsStages - 1, (stage + kStatsStages - 1) % kStatsStages);
    sm80::cp_async_wait<kStatsStages - 1>();  // block i has landed (this thread's copies)
    __syncwarp();                             // ... and every lane's scales
    process(ring + stage * Stage::kBytes, first + kStatsWarps * i);
    __syncwarp();  // all lanes are done with this stage before it is refilled
    stage = (stage + 1) % kStatsStages;
  }
  sm80::cp_async_wait<0>();  // only empty groups can be pending
  __syncthreads();
  for (int h = threadIdx.x; h < group; h += blockDim.x) {
    SoftmaxTotal total;
#pragma unroll
    for (int w = 0; w < kStatsWarps; ++w)
      total.add(warp_totals[w * group + h], warp_totals[(kStatsWarps + w) * group + h]);
    head_max[(stats_row0 + h) * splits + split] = total.max;
    head_sum[(stats_row0 + h) * splits + split] = total.sum;
  }
}

/// \brief grid (ceil(num_blocks / kMassThreads), num_kv_heads, batch), kMassThreads threads,
/// dynamic shared memory 2 * group floats. Warp w first merges the split totals of heads
/// w, w + 8, ... (M_h = max, S_h = sum against M_h over the splits of the statistics kernel);
/// then thread j of the CTA writes mass[j] = sum_h block_sum[h, j] exp2(block_max[h, j] - M_h)
/// / S_h for the live blocks j < n = ceil(L_b / 64), and 0 for n <= j < num_blocks. A NaN logit
/// makes the group's masses NaN (fmaxf skips NaN; the sums do not).
__global__ void __launch_bounds__(kMassThreads)
    keys4_block_mass_kernel(const ScoreKeys4Params p, const float* __restrict__ head_max,
                            const float* __restrict__ head_sum, int splits) {
  extern __shared__ float head_stats[];  // [group] max, then [group] 1 / sum
  const int kv_head = blockIdx.y, batch_idx = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int seq_len = p.seq_lens != nullptr ? p.seq_lens[batch_idx] : p.capacity;
  const int n = min(ceil_div(seq_len, kIndexBlockSize), p.num_blocks);
  const int64_t head0 = static_cast<int64_t>(batch_idx) * p.num_q_heads +
                        static_cast<int64_t>(kv_head) * group;
  for (int h = warp; h < group; h += kMassThreads / 32) {
    SoftmaxTotal total;
#pragma unroll 4  // the loads of several splits in flight at once (~100 splits at batch 1)
    for (int s = lane; s < splits; s += 32)
      total.add(head_max[(head0 + h) * splits + s], head_sum[(head0 + h) * splits + s]);
#pragma unroll
    for (int off = 16; off >= 1; off /= 2) {
      const float other_max = __shfl_xor_sync(0xffffffffu, total.max, off);
      const float other_sum = __shfl_xor_sync(0xffffffffu, total.sum, off);
      total.add(other_max, other_sum);
    }
    if (lane == 0) {
      head_stats[h] = total.max;
      head_stats[group + h] = 1.f / total.sum;
    }
  }
  __syncthreads();
  const int j = blockIdx.x * kMassThreads + threadIdx.x;
  if (j >= p.num_blocks) return;
  float v = 0.f;
  if (j < n) {
#pragma unroll 4  // the heads' loads in flight together
    for (int h = 0; h < group; ++h) {
      const int64_t at = (head0 + h) * p.num_blocks + j;
      v += p.block_sum[at] * exp2f(p.block_max[at] - head_stats[h]) * head_stats[group + h];
    }
  }
  p.mass[(static_cast<int64_t>(batch_idx) * p.num_kv_heads + kv_head) * p.num_blocks + j] = v;
}

}  // namespace keys4
}  // namespace sketchwalk
