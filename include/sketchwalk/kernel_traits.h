// Compile-time tile shapes, thread counts and shared-memory sizes of the sparse attention
// kernels (sparse_prefill_sm80.cuh, sparse_decode_mma.cuh; the sm90 prefill keeps its own in
// sparse_prefill_sm90.cuh). Traits derive; kernels consume.
// Torch-free; host code includes this to size launches.
#pragma once

#include <cstddef>

namespace sketchwalk {

/// \brief Tiles of the sm80 (mma.sync) block-sparse prefill kernel.
/// \tparam kHeadDim_     64 or 128.
/// \tparam kHeadsPerCta_ query heads of one kv head packed into one CTA (1 or 2): they share
///                       every K/V tile load, so GQA groups of even size read K/V half as often.
/// \tparam Element_      __half or __nv_bfloat16.
///
/// One CTA = one 64-query block (one row of the block index) x kHeadsPerCta heads, so
/// kBlockM = 64 * kHeadsPerCta rows, always 4 warps: a warp owns kHeadsPerCta m16 tiles
/// (16 or 32 rows) and spans all 64 keys of the tile. Two m-tiles per warp let every K/V
/// ldmatrix feed 4 mma instead of 2: at 16 rows/warp the smem reads (512 B per 2 mma)
/// outrun the mma.sync rate on H100. Registers at D = 128, 2 m-tiles: S 64 + O 128 floats.
/// Shared memory at D = 128, 2 heads, 2 stages: Q 128x128x2 B = 32 KiB + (K + V) 2 x 2 x
/// 64x128x2 B = 64 KiB -> 96 KiB, so two CTAs (8 warps) fit in the 227 KiB of an H100 SM.
template <int kHeadDim_, int kHeadsPerCta_, typename Element_>
struct SparsePrefillTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kHeadsPerCta = kHeadsPerCta_;
  static constexpr int kBlockQ = 64;  // queries per CTA: the index's block size
  static constexpr int kBlockN = 64;  // keys per K/V tile: one selected key block
  static constexpr int kBlockM = kBlockQ * kHeadsPerCta;
  static constexpr int kMTilesPerWarp = kHeadsPerCta;
  static constexpr int kRowsPerWarp = 16 * kMTilesPerWarp;
  static constexpr int kNumWarps = kBlockM / kRowsPerWarp;  // 4
  static constexpr int kNumThreads = kNumWarps * 32;
  static constexpr int kStages = 2;  // K/V tiles in shared memory (1 computing + 1 loading)
#ifdef SW_PREFILL_MIN_BLOCKS_PER_SM  // dev knob for register-cap experiments
  static constexpr int kMinBlocksPerSm = SW_PREFILL_MIN_BLOCKS_PER_SM;
#else
  // 2 CTAs of 4 warps per SM: 255 registers a thread (2 x 128 x 255 fits 64K registers),
  // shared memory 2 x 96 KiB at D = 128.
  static constexpr int kMinBlocksPerSm = 2;
#endif
  static constexpr int kElemsPerChunk = 16 / static_cast<int>(sizeof(Element));  // 16-byte chunk
  static constexpr int kChunksPerRow = kHeadDim / kElemsPerChunk;
  static constexpr int kQTileElems = kBlockM * kHeadDim;
  static constexpr int kKVTileElems = kBlockN * kHeadDim;
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(kQTileElems + 2 * kStages * kKVTileElems) * sizeof(Element);

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kHeadsPerCta == 1 || kHeadsPerCta == 2, "1 or 2 heads per CTA");
  static_assert(sizeof(Element) == 2, "fp16 / bf16 only");
  static_assert(kChunksPerRow >= 8, "the XOR swizzle needs >= 8 chunks per row");
};

/// \brief Shape of the tensor-core decode kernel: 4 warps, 16 query-head rows per CTA, 64-key
/// blocks of which each warp takes 16 keys (one k-step of P V), kStages-deep K/V pipeline.
template <int kHeadDim_, typename Element_>
struct SparseDecodeMmaTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockN = 64;
  static constexpr int kRows = 16;  // query heads per CTA: one m16 tile
  static constexpr int kNumWarps = 4;
  static constexpr int kNumThreads = kNumWarps * 32;
  static constexpr int kKeysPerWarp = kBlockN / kNumWarps;  // 16
  static constexpr int kElemsPerChunk = 8;                   // 16 bytes
  static constexpr int kChunksPerRow = kHeadDim / kElemsPerChunk;
  static constexpr int kStages = 3;  // 3 x 32 KiB at D = 128: two CTAs fit an SM
  static constexpr int kTileElems = kBlockN * kHeadDim;
  static constexpr int kPartialStride = kHeadDim + 2;  // floats: o[D], m, l
  static constexpr size_t kPipeBytes = static_cast<size_t>(kStages) * 2 * kTileElems * sizeof(Element);
  static constexpr size_t kMergeBytes =
      static_cast<size_t>(kNumWarps) * kRows * kPartialStride * sizeof(float);
  static constexpr size_t kSmemBytes = kPipeBytes > kMergeBytes ? kPipeBytes : kMergeBytes;
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kKeysPerWarp == 16, "a warp's keys are one k-step of P V");
};

}  // namespace sketchwalk
