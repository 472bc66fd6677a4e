// score_blocks_keys4 on tensor cores (SPEC.md section 7 steps 1-2): the logits of one query per
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

/// \brief grid (ceil(num_blocks / kStatsWarps), num_kv_heads, batch), 32 * kStatsWarps threads.
/// Warp w takes key block j = blockIdx.x * kStatsWarps + w (64 tokens = four m16 tiles) and
/// writes, for each query head of the group, block_max = max_t s_t and block_sum =
/// sum_t exp2(s_t - block_max) over the block's keys t < L_b, with s_t the log2-domain logit
/// softmax_scale * log2(e) * scale_t * <q, code_t>. Blocks at or past L_b are not written.
/// kOneTile: group <= 8, one n-tile (a separate kernel: with a loop over n-tiles the compiler
/// hoists every unpacked code out of it, ~200 registers at head_dim 128).
template <typename Element, int kHeadDim, bool kOneTile>
__global__ void __launch_bounds__(32 * kStatsWarps)
    keys4_block_stats_kernel(const ScoreKeys4Params p) {
  using Tile = Keys4Tile<Element, kHeadDim>;
  constexpr int kWords = Tile::kWords;
  const int lane = threadIdx.x & 31;
  const int c = lane & 3, r = lane >> 2;
  const int block = blockIdx.x * kStatsWarps + (threadIdx.x >> 5);
  const int kv_head = blockIdx.y, batch_idx = blockIdx.z;
  const int seq_len = p.seq_lens != nullptr ? p.seq_lens[batch_idx] : p.capacity;
  const int key0 = block * kIndexBlockSize;
  if (block >= p.num_blocks || key0 >= seq_len) return;  // warp-uniform

  const uint8_t* codes = p.codes + batch_idx * p.codes_batch_stride +
                         kv_head * p.codes_head_stride + c * (kHeadDim / 8);
  const float* scales = p.scales + batch_idx * p.scales_batch_stride + kv_head * p.scales_head_stride;
  // All loads of the block first: 8 rows x (kHeadDim / 8) bytes per thread in flight.
  uint32_t raw[4][2][kWords];
  float row_scale[4][2];
  bool valid[4][2];
#pragma unroll
  for (int m = 0; m < 4; ++m) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int token = key0 + 16 * m + r + 8 * half;
      valid[m][half] = token < seq_len;
      const int safe = valid[m][half] ? token : key0;  // rows past L_b (or capacity): any valid row
      CodeRow<kWords>::load(codes + safe * p.codes_token_stride, raw[m][half]);
      row_scale[m][half] = __ldg(scales + safe);
    }
  }

  const int group = p.num_q_heads / p.num_kv_heads;
  const float qk_scale = p.softmax_scale * kLog2e;
  const Element* q_group = static_cast<const Element*>(p.q) + batch_idx * p.q_batch_stride +
                           static_cast<int64_t>(kv_head) * group * p.q_head_stride;
  for (int n0 = 0; n0 < (kOneTile ? 1 : group); n0 += 8) {  // n-tiles of 8 heads
    uint32_t b[Tile::kKSteps][2];
    load_q_fragments<Element, kHeadDim>(q_group + (n0 + r) * p.q_head_stride, n0 + r < group, c, b);
    // Running max and sum of exp2 per head of this thread (2c: col 0, 2c+1: col 1) over its rows.
    float mx[2] = {-INFINITY, -INFINITY}, sum[2] = {0.f, 0.f};
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      float acc[4] = {0.f, 0.f, 0.f, 0.f};  // (row r, head 2c), (r, 2c+1), (r+8, 2c), (r+8, 2c+1)
#pragma unroll
      for (int kk = 0; kk < Tile::kKSteps; ++kk) {  // rows r (raw[m][0]) and r + 8 (raw[m][1])
        const int i = kk / 2, j = 2 * (kk % 2);
        const uint32_t a[4] = {unpack_codes<Element>(raw[m][0][i], j),
                               unpack_codes<Element>(raw[m][1][i], j),
                               unpack_codes<Element>(raw[m][0][i], j + 1),
                               unpack_codes<Element>(raw[m][1][i], j + 1)};
        sm80::mma_m16n8k16<Element>(acc, a, b[kk][0], b[kk][1]);
      }
#pragma unroll
      for (int col = 0; col < 2; ++col) {
        const float s0 = valid[m][0] ? acc[col] * row_scale[m][0] * qk_scale : -INFINITY;
        const float s1 = valid[m][1] ? acc[col + 2] * row_scale[m][1] * qk_scale : -INFINITY;
        const float m_new = fmaxf(mx[col], fmaxf(s0, s1));
        if (m_new != -INFINITY) {  // else every row so far is masked: nothing to add
          sum[col] = sum[col] * exp2f(mx[col] - m_new) + exp2f(s0 - m_new) + exp2f(s1 - m_new);
          mx[col] = m_new;
        }
      }
    }
    // Merge the 8 lanes sharing c (xor 4, 8, 16): the block's max and sum of exp2 per head.
#pragma unroll
    for (int col = 0; col < 2; ++col) {
      float block_mx = mx[col];
#pragma unroll
      for (int off = 4; off < 32; off *= 2)
        block_mx = fmaxf(block_mx, __shfl_xor_sync(0xffffffffu, block_mx, off));
      // A lane whose rows are all masked has mx = -inf and sum 0: weight 0 (block_mx is finite).
      float block_sum = mx[col] == -INFINITY ? 0.f : sum[col] * exp2f(mx[col] - block_mx);
#pragma unroll
      for (int off = 4; off < 32; off *= 2) block_sum += __shfl_xor_sync(0xffffffffu, block_sum, off);
      const int head = n0 + 2 * c + col;
      if (r == 0 && head < group) {
        const int64_t at = (static_cast<int64_t>(batch_idx) * p.num_q_heads +
                            static_cast<int64_t>(kv_head) * group + head) * p.num_blocks + block;
        p.block_max[at] = block_mx;
        p.block_sum[at] = block_sum;
      }
    }
  }
}

/// \brief Sum of v over the CTA (kMassThreads threads), returned to every thread.
template <typename Op>
SW_DEVICE float cta_reduce(float v, Op op, float* scratch) {
#pragma unroll
  for (int off = 16; off >= 1; off /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float total = scratch[0];
#pragma unroll
  for (int w = 1; w < kMassThreads / 32; ++w) total = op(total, scratch[w]);
  __syncthreads();  // scratch is reused by the next reduction
  return total;
}

/// \brief grid (num_kv_heads, batch), kMassThreads threads, dynamic smem 2 * group floats.
/// Per query head h of the group: M_h = max_j block_max, S_h = sum_j block_sum exp2(block_max -
/// M_h) over the live blocks j < n = ceil(L_b / 64); then mass[j] = sum_h block_sum[h, j]
/// exp2(block_max[h, j] - M_h) / S_h, and 0 for n <= j < num_blocks. A NaN logit makes the
/// group's masses NaN (fmaxf skips NaN; the sums do not).
__global__ void __launch_bounds__(kMassThreads) keys4_block_mass_kernel(const ScoreKeys4Params p) {
  extern __shared__ float head_stats[];  // [group] max, then [group] 1 / sum
  __shared__ float scratch[kMassThreads / 32];
  const int kv_head = blockIdx.x, batch_idx = blockIdx.y;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int seq_len = p.seq_lens != nullptr ? p.seq_lens[batch_idx] : p.capacity;
  const int n = ceil_div(seq_len, kIndexBlockSize);
  const int64_t head0 = static_cast<int64_t>(batch_idx) * p.num_q_heads +
                        static_cast<int64_t>(kv_head) * group;
  for (int h = 0; h < group; ++h) {
    const float* bmax = p.block_max + (head0 + h) * p.num_blocks;
    const float* bsum = p.block_sum + (head0 + h) * p.num_blocks;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += kMassThreads) mx = fmaxf(mx, bmax[j]);
    mx = cta_reduce(mx, [](float a, float b) { return fmaxf(a, b); }, scratch);
    float sum = 0.f;
    for (int j = threadIdx.x; j < n; j += kMassThreads) sum += bsum[j] * exp2f(bmax[j] - mx);
    sum = cta_reduce(sum, [](float a, float b) { return a + b; }, scratch);
    if (threadIdx.x == 0) {
      head_stats[h] = mx;
      head_stats[group + h] = 1.f / sum;
    }
  }
  __syncthreads();
  float* mass = p.mass + (static_cast<int64_t>(batch_idx) * p.num_kv_heads + kv_head) * p.num_blocks;
  for (int j = threadIdx.x; j < p.num_blocks; j += kMassThreads) {
    float v = 0.f;
    if (j < n) {
      for (int h = 0; h < group; ++h) {
        const int64_t at = (head0 + h) * p.num_blocks + j;
        v += p.block_sum[at] * exp2f(p.block_max[at] - head_stats[h]) * head_stats[group + h];
      }
    }
    mass[j] = v;
  }
}

}  // namespace keys4
}  // namespace sketchwalk
