// Compile-time tile shapes, thread counts and shared-memory sizes of the sparse attention
// kernels (sparse_prefill.cuh, sparse_decode.cuh). Traits derive; kernels consume.
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
/// 64x128x2 B = 64 KiB -> 96 KiB, so two CTAs (16 warps) fit in the 227 KiB of an H100 SM.
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

/// \brief Threads and shared memory of the split-KV decode kernel (CUDA cores: decode is
/// bandwidth-bound).
/// \tparam kHeads query heads of one kv head handled together (1, 2, 4 or 8); every K/V
///         vector loaded is used by all of them.
///
/// 4 warps. K/V blocks reach shared memory through a kStages-deep cp.async pipeline (one
/// 64-key block of K and V per stage, 32 KiB at D = 128 bf16), so kStages - 1 blocks are in
/// flight while the CTA computes on the oldest: loads never wait for compute. A key row of D
/// elements is read from shared memory by kLanesPerKey lanes with 16-byte loads (D = 128: 16
/// lanes, 2 keys per warp-load; D = 64: 8 lanes, 4 keys), a warp reading 512 contiguous bytes
/// (conflict-free). A block is kPasses passes of kKeysPerPass keys; each of the kKeysPerPass
/// key lanes keeps its own online-softmax state, merged through shared memory at the end
/// (that buffer aliases the pipeline, drained by then).
template <int kHeadDim_, int kHeads_, typename Element_>
struct SparseDecodeTraits {
  using Element = Element_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kHeads = kHeads_;
  static constexpr int kBlockN = 64;
  static constexpr int kNumWarps = 4;
  static constexpr int kNumThreads = kNumWarps * 32;
  static constexpr int kVecElems = 16 / static_cast<int>(sizeof(Element));
  static constexpr int kLanesPerKey = kHeadDim / kVecElems;
  static constexpr int kKeysPerWarp = 32 / kLanesPerKey;
  static constexpr int kKeysPerPass = kNumWarps * kKeysPerWarp;
  static constexpr int kPasses = kBlockN / kKeysPerPass;
  static constexpr int kPartials = kKeysPerPass;       // softmax states merged at the end
  static constexpr int kPartialStride = kHeadDim + 2;  // floats: acc[D], m, l
  static constexpr int kStages = 3;  // 3 x 32 KiB at D = 128: two CTAs fit an SM's 227 KiB
  static constexpr int kStageElems = 2 * kBlockN * kHeadDim;  // K block, then V block
  static constexpr int kCopiesPerThread = 2 * kBlockN * kLanesPerKey / kNumThreads;  // 16 B each
  static constexpr size_t kPipeBytes =
      static_cast<size_t>(kStages) * kStageElems * sizeof(Element);
  static constexpr size_t kMergeBytes =
      static_cast<size_t>(kPartials) * kHeads * kPartialStride * sizeof(float);
  static constexpr size_t kSmemBytes = kPipeBytes > kMergeBytes ? kPipeBytes : kMergeBytes;

  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim must be 64 or 128");
  static_assert(kLanesPerKey <= 32 && 32 % kLanesPerKey == 0, "key lanes tile a warp");
  static_assert(kBlockN % kKeysPerPass == 0, "passes tile a key block");
  static_assert(kCopiesPerThread * kNumThreads == 2 * kBlockN * kLanesPerKey &&
                    kCopiesPerThread % 2 == 0,
                "each thread copies the same number of K and V chunks");
};

}  // namespace sketchwalk
