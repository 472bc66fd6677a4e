// score_blocks_keys4 on tensor cores (docs/spec.md section 7 steps 1-2): the logits of one query per
// sequence against the 4-bit key cache (keys4.h), as per-(query head, key block) softmax
// statistics, then per kv group the block attention mass. Used by csrc/cuda/keys4_score.cu.
// Token-level logits never reach memory. fp16/bf16 queries, head_dim 64/128. Torch-free.
//
// Why tensor cores: per token and kv group the scorer reads head_dim / 2 + 4 bytes (68 at 128)
// and does group * head_dim multiply-adds (512 for Llama-3.1-8B's group of 4): ~7.5 FMA per
// byte, twice what the H200's CUDA cores sustain at its ~4.3 TB/s, plus the unpacking. One
// mma.m16n8k16 takes 16 tokens x 16 dims against up to 8 heads of the group.
//
// Exactness: codes are integers in [-7, 7] and q is used in its own 16-bit type, so every
// product is exact and accumulates in fp32; the token scale and softmax scale multiply after.
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
template <typename Element>
SW_DEVICE uint32_t unpack_codes(uint32_t word, int j) {
  return sub_bias2<Element>(((word >> (4 * j)) & 0x000F000Fu) | NibbleMagic<Element>::kBits);
}

// Fragment mapping (mma_sm80.cuh layouts; c = lane % 4, r = lane / 4). Thread c loads bytes
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

template <int kWords>
struct CodeRow;
template <>
struct CodeRow<4> {
  SW_DEVICE static void load(const uint8_t* p, uint32_t (&w)[4]) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
  }
};
template <>
struct CodeRow<2> {
  SW_DEVICE static void load(const uint8_t* p, uint32_t (&w)[2]) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x, w[1] = v.y;
  }
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
constexpr int kStatsCtasPerSm = 6;  // <= 80 registers x 128 threads: 6 CTAs per SM
SW_HOST_DEVICE int keys4_score_splits(int batch, int num_kv_heads, int num_blocks, int num_sms) {
  const int rows = batch * num_kv_heads;
  int splits = (kStatsCtasPerSm * num_sms + rows - 1) / rows;
  const int by_width = (num_blocks + kStatsWarps - 1) / kStatsWarps;
  splits = splits < by_width ? splits : by_width;
  return splits < 1 ? 1 : splits;
}

/// \brief The 4 m16 tiles (64 tokens) of one key block held by one thread: rows r and r + 8 of
/// each tile (kWords code words each), their scales, and whether they lie before L_b.
template <int kWords>
struct BlockRows {
  uint32_t raw[4][2][kWords];
  float scale[4][2];
  bool valid[4][2];

  SW_DEVICE void load(const uint8_t* codes, int64_t token_stride, const float* scales, int key0,
                      int seq_len, int r) {
#pragma unroll
    for (int m = 0; m < 4; ++m) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int token = key0 + 16 * m + r + 8 * half;
        valid[m][half] = token < seq_len;
        const int safe = valid[m][half] ? token : key0;  // rows past L_b (or capacity): any live row
        CodeRow<kWords>::load(codes + safe * token_stride, raw[m][half]);
        scale[m][half] = __ldg(scales + safe);
      }
    }
  }
};

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
/// 2 * kStatsWarps * group floats. CTA s takes the live key blocks [s * per, (s + 1) * per) of its
/// (batch, kv head), per = ceil(n / splits), n = ceil(L_b / 64); its warps take every
/// kStatsWarps-th block. For each block j and query head h of the group it writes block_max[h, j] = max_t
/// s_t and block_sum[h, j] = sum_t exp2(s_t - block_max) over the block's keys t < L_b, with
/// s_t = softmax_scale * log2(e) * scale_t * <q_h, code_t>; and per CTA the merge of its blocks,
/// head_max / head_sum [batch, num_q_heads, splits] (empty CTAs write -inf / 0).
/// kOneTile: group <= 8, one n-tile (a separate kernel: with a loop over n-tiles the compiler
/// hoists every unpacked code out of it, ~200 registers at head_dim 128).
template <typename Element, int kHeadDim, bool kOneTile>
__global__ void __launch_bounds__(32 * kStatsWarps, kStatsCtasPerSm)
    keys4_block_stats_kernel(const ScoreKeys4Params p, float* __restrict__ head_max,
                             float* __restrict__ head_sum) {
  using Tile = Keys4Tile<Element, kHeadDim>;
  constexpr int kWords = Tile::kWords;
  extern __shared__ float warp_totals[];  // [kStatsWarps][group] max, then [kStatsWarps][group] sum
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

  const uint8_t* codes = p.codes + batch_idx * p.codes_batch_stride +
                         kv_head * p.codes_head_stride + c * (kHeadDim / 8);
  const float* scales = p.scales + batch_idx * p.scales_batch_stride + kv_head * p.scales_head_stride;
  const float qk_scale = p.softmax_scale * kLog2e;
  const Element* q_group = static_cast<const Element*>(p.q) + batch_idx * p.q_batch_stride +
                           static_cast<int64_t>(kv_head) * group * p.q_head_stride;
  const int64_t stats_row0 = static_cast<int64_t>(batch_idx) * p.num_q_heads +
                             static_cast<int64_t>(kv_head) * group;
  uint32_t b[Tile::kKSteps][2];  // q of the n-tile (reloaded per block only when group > 8)
  if constexpr (kOneTile) load_q_fragments<Element, kHeadDim>(q_group + r * p.q_head_stride, r < group, c, b);

  // One block's statistics from registers; updates this warp's per-head totals (lanes r == 0).
  auto process = [&](const BlockRows<kWords>& rows, int block) {
    for (int n0 = 0; n0 < (kOneTile ? 1 : group); n0 += 8) {  // n-tiles of 8 heads
      if constexpr (!kOneTile)
        load_q_fragments<Element, kHeadDim>(q_group + (n0 + r) * p.q_head_stride, n0 + r < group, c, b);
      SoftmaxTotal t[2];  // heads 2c (col 0) and 2c + 1 (col 1) over this thread's rows
#pragma unroll
      for (int m = 0; m < 4; ++m) {
        float acc[4] = {0.f, 0.f, 0.f, 0.f};  // (row r, head 2c), (r, 2c+1), (r+8, 2c), (r+8, 2c+1)
#pragma unroll
        for (int kk = 0; kk < Tile::kKSteps; ++kk) {
          const int i = kk / 2, j = 2 * (kk % 2);
          const uint32_t a[4] = {unpack_codes<Element>(rows.raw[m][0][i], j),
                                 unpack_codes<Element>(rows.raw[m][1][i], j),
                                 unpack_codes<Element>(rows.raw[m][0][i], j + 1),
                                 unpack_codes<Element>(rows.raw[m][1][i], j + 1)};
          sm80::mma_m16n8k16<Element>(acc, a, b[kk][0], b[kk][1]);
        }
#pragma unroll
        for (int col = 0; col < 2; ++col) {
          const float s0 = rows.valid[m][0] ? acc[col] * rows.scale[m][0] * qk_scale : -INFINITY;
          const float s1 = rows.valid[m][1] ? acc[col + 2] * rows.scale[m][1] * qk_scale : -INFINITY;
          const float mx = fmaxf(s0, s1);
          t[col].add(mx, mx == -INFINITY ? 0.f : exp2f(s0 - mx) + exp2f(s1 - mx));
        }
      }
      // Merge the 8 lanes sharing c (xor 4, 8, 16): the block's max and sum per head.
#pragma unroll
      for (int col = 0; col < 2; ++col) {
        float block_mx = t[col].max;
#pragma unroll
        for (int off = 4; off < 32; off *= 2)
          block_mx = fmaxf(block_mx, __shfl_xor_sync(0xffffffffu, block_mx, off));
        // A lane whose rows are all masked has max -inf and sum 0: weight 0 (block_mx is finite).
        float block_sum = t[col].max == -INFINITY ? 0.f : t[col].sum * exp2f(t[col].max - block_mx);
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

  // One register buffer per warp; the loads in flight come from many resident warps instead
  // (measured on an H200: two buffers per warp took 150 registers, 10 resident warps per SM and
  // 33% of DRAM bandwidth; a single buffer fits 6 CTAs of 4 warps per SM).
  for (int block = begin + warp; block < end; block += kStatsWarps) {  // warp-uniform
    BlockRows<kWords> rows;
    rows.load(codes, p.codes_token_stride, scales, block * kIndexBlockSize, seq_len, r);
    process(rows, block);
  }
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
    for (int h = 0; h < group; ++h) {
      const int64_t at = (head0 + h) * p.num_blocks + j;
      v += p.block_sum[at] * exp2f(p.block_max[at] - head_stats[h]) * head_stats[group + h];
    }
  }
  p.mass[(static_cast<int64_t>(batch_idx) * p.num_kv_heads + kv_head) * p.num_blocks + j] = v;
}

}  // namespace keys4
}  // namespace sketchwalk
