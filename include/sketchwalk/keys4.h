// THE 4-bit key cache of the keys4 decode scorer (docs/spec.md section 7): its layout and its
// encoding rule, shared by the CPU and CUDA kernels of quantize_keys4_, score_blocks_keys4
// and select_blocks_keys4. docs/ops.md documents it for users. Torch-free.
//
//   codes   uint8   [batch, num_kv_heads, capacity, head_dim / 2]
//   scales  float32 [batch, num_kv_heads, capacity]
//
//   token t of kv head g:  k[g, t, d] ~= scales[g, t] * code(g, t, d), code in {-7..7}
//   byte i of a token row: low nibble = code of dim 2i + 8, high nibble = code of dim 2i+1 + 8
//                          (offset binary: nibbles 1..15; 0 never occurs)
//   scale s = amax / 7 with amax = max_d |k[g, t, d]| (float32, exact); s == 0 -> codes 0
//   code    = clamp(rint(k / s), -7, 7): float32 division rounded to nearest, then round half
//             to even. Written in exactly these float32 operations so that the CPU, the CUDA
//             kernel and the float64 reference (which replays them in float32) agree bit for bit.
//
// Rows at or past a sequence's length (seq_lens) are never read by the scorer.
//
// Paged (page_table [batch, max_pages], seq_lens given): codes [num_pages, num_kv_heads, 64,
// head_dim / 2] and scales [num_pages, num_kv_heads, 64]; token t of sequence b is row t % 64 of
// page page_table[b, t / 64] (keys4_slot), the same page ids as a paged K / V cache's.
// Memory: head_dim / 2 + 4 bytes per token and kv head, against 4 * head_dim for a bf16 K and V
// cache: 68 / 512 = 13.3% at head_dim 128, 36 / 256 = 14.1% at head_dim 64.
#pragma once

#include <cmath>
#include <cstdint>

#include "sketchwalk/common.h"

namespace sketchwalk {

constexpr int kKeys4MaxCode = 7;  // codes lie in [-kKeys4MaxCode, kKeys4MaxCode]
constexpr int kKeys4Offset = 8;   // nibble = code + kKeys4Offset
constexpr int kKeys4MaxHeadDim = 256;  // CPU and quantize; the CUDA scorer takes 64 and 128

/// \brief Where token `pos` of sequence `batch_idx` lives in the 4-bit cache: `outer` (the
/// batch row, or the page of a paged cache) and the row `slot` within it.
struct Keys4Slot {
  int64_t outer;
  int slot;
};
SW_HOST_DEVICE Keys4Slot keys4_slot(const int* page_table, int64_t page_table_stride, int batch_idx,
                                    int pos) {
  if (page_table == nullptr) return Keys4Slot{batch_idx, pos};
  return Keys4Slot{page_table[batch_idx * page_table_stride + pos / 64], pos % 64};
}

/// \brief s = amax / 7 in float32 (amax = max |k| over the token's head_dim values).
SW_HOST_DEVICE float keys4_scale(float amax) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(amax, static_cast<float>(kKeys4MaxCode));  // IEEE even under --use_fast_math
#else
  return amax / static_cast<float>(kKeys4MaxCode);
#endif
}

/// \brief The nibble (code + 8) of value x under scale s. s == 0 (an all-zero row) and a NaN
/// quotient (x NaN, or x infinite with s infinite) give code 0. amax skips NaN values (fmax).
SW_HOST_DEVICE uint32_t keys4_nibble(float x, float s) {
  if (!(s > 0.f)) return kKeys4Offset;
#if defined(__CUDA_ARCH__)
  float c = rintf(__fdiv_rn(x, s));
#else
  float c = std::nearbyint(x / s);  // default rounding mode: half to even
#endif
  if (c != c) return kKeys4Offset;
  c = c < -kKeys4MaxCode ? -kKeys4MaxCode : (c > kKeys4MaxCode ? kKeys4MaxCode : c);
  return static_cast<uint32_t>(static_cast<int>(c) + kKeys4Offset);
}

/// \brief Decode window and sink of the keys4 rule for a sequence of num_keys keys (docs/spec.md
/// section 7): window_tokens = max(1, floor(window_frac * num_keys)) and sink_tokens likewise,
/// computed in float64 as Python computes them; blocks of block_size tokens.
struct Keys4Budget {
  int num_blocks;     // ceil(num_keys / block_size)
  int sink_blocks;    // min(num_blocks, ceil(sink_tokens / block_size))
  int window_blocks;  // min(num_blocks, ceil(window_tokens / block_size))
};

SW_HOST_DEVICE Keys4Budget keys4_budget(int num_keys, int block_size, double window_frac,
                                        double sink_frac) {
  const int64_t w = static_cast<int64_t>(floor(window_frac * static_cast<double>(num_keys)));
  const int64_t s = static_cast<int64_t>(floor(sink_frac * static_cast<double>(num_keys)));
  const int64_t window_tokens = w > 1 ? w : 1;
  const int64_t sink_tokens = s > 1 ? s : 1;
  Keys4Budget b{};
  b.num_blocks = (num_keys + block_size - 1) / block_size;
  const int64_t wb = (window_tokens + block_size - 1) / block_size;
  const int64_t sb = (sink_tokens + block_size - 1) / block_size;
  b.window_blocks = static_cast<int>(wb < b.num_blocks ? wb : b.num_blocks);
  b.sink_blocks = static_cast<int>(sb < b.num_blocks ? sb : b.num_blocks);
  return b;
}

}  // namespace sketchwalk
