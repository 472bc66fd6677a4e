// The swizzled shared-memory tiles of the sm_80 attention kernels (the mma.sync prefill,
// sparse_prefill_sm80.cuh, and the tensor-core decode, sparse_decode_mma.cuh): the swizzle and
// the cp.async loads of Q rows and of one key block's K and V rows (dense, packed or paged).
#pragma once

#include <cstdint>

#include "sketchwalk/attention_core.cuh"
#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/mma_sm80.cuh"

namespace sketchwalk {
namespace detail {

/// \brief Element offset of 16-byte chunk `chunk` of tile row `row` in a [rows][kHeadDim]
/// shared-memory tile, XOR-swizzled on the low 3 chunk bits so the 8 rows an ldmatrix
/// phase reads (same logical chunk) land in 8 different 16-byte bank groups.
template <int kHeadDim, int kElemsPerChunk>
SW_DEVICE int swizzle(int row, int chunk) {
  return row * kHeadDim + ((chunk ^ (row & 7)) * kElemsPerChunk);
}

/// \brief Async copy of rows [0, kRows) of a [*, kHeadDim] global tile (row stride
/// `row_stride` elements) into a swizzled smem tile; rows >= `valid_rows` are zero-filled.
template <typename Traits, int kRows>
SW_DEVICE void load_tile_async(typename Traits::Element* smem,
                               const typename Traits::Element* gmem, int64_t row_stride,
                               int valid_rows, int tid) {
  constexpr int kChunks = Traits::kChunksPerRow;
  constexpr int kE = Traits::kElemsPerChunk;
#pragma unroll
  for (int idx = tid; idx < kRows * kChunks; idx += Traits::kNumThreads) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const bool valid = row < valid_rows;
    const auto* src = gmem + (valid ? row : 0) * row_stride + chunk * kE;
    sm80::cp_async_16(sm80::smem_u32(smem + swizzle<Traits::kHeadDim, kE>(row, chunk)), src,
                      valid);
  }
}

/// \brief Async copy of the K and V rows of key block `block` (Traits::kBlockN keys) of one KV
/// head into the swizzled tiles k_tile / v_tile; rows at or past `valid` are zero-filled, never
/// read (and, in a paged cache, never addressed: valid <= 0 reads no page-table entry).
template <typename Traits>
SW_DEVICE void load_kv_block_async(typename Traits::Element* k_tile, typename Traits::Element* v_tile,
                                   const KvSource<typename Traits::Element>& kv, int64_t block,
                                   int valid, int tid) {
  static_assert(Traits::kBlockN == kIndexBlockSize, "a K/V tile is one index block (one page)");
  const auto* k_rows = valid > 0 ? kv.k_block(block) : kv.k;
  const auto* v_rows = valid > 0 ? kv.v_block(block) : kv.v;
  load_tile_async<Traits, Traits::kBlockN>(k_tile, k_rows, kv.k_stride, valid, tid);
  load_tile_async<Traits, Traits::kBlockN>(v_tile, v_rows, kv.v_stride, valid, tid);
}

}  // namespace detail
}  // namespace sketchwalk
