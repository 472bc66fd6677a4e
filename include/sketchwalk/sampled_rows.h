// Which query rows the sampled-row block scorer reads (docs/spec.md section 11), one definition
// for the CPU kernel, the CUDA kernel and the checks. Torch-free.
//
//   query block i holds valid = min(64, Tq - 64 i) queries; its sampled row j < rows sits at
//   offset floor((2j + 1) * valid / (2 rows)) in the block: evenly spaced, the middle of each
//   of `rows` equal slices (offsets repeat when valid < rows).
#pragma once

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

// The most sampled rows of one query head per query block (a block has 64 queries).
constexpr int kMaxSampledRows = kIndexBlockSize;
// The most rows (query heads of a KV group x sampled rows, x query blocks) one CUDA block of the
// scorer holds: 8 m16 tiles of the tensor-core kernel.
constexpr int kMaxSampledRowsPerGroup = 128;

// How many consecutive query blocks one CTA of the CUDA scorer takes (a power of two): their
// rows (rows_per_block = group * rows each, at most kMaxSampledRowsPerGroup in all) share each
// K tile the CTA loads, so the scorer's K traffic falls by that factor. By count (not yet
// timed: bench/python/bench_prefill_scorers.py) that traffic, not its rows_per_block / 64 of a
// dense QK^T's math per K tile, bounds the scorer, so the CTA takes as many blocks as fit while
// the grid still covers every SM once (`ctas_per_block_row` = batch * KV heads CTAs per block
// row); `requested` > 0 (a benchmark's or test's choice) replaces that target, capped to what
// fits. Never more than the next power of two of num_q_blocks (the m16 tiles are sized by it).
SW_HOST_DEVICE int sampled_rows_q_blocks_per_cta(int num_q_blocks, int rows_per_block,
                                                 int ctas_per_block_row, int num_sms,
                                                 int requested) {
  if (rows_per_block < 1) return 1;
  int fit = 1;
  while (2 * fit * rows_per_block <= kMaxSampledRowsPerGroup && fit < num_q_blocks) fit *= 2;
  int n = 1;
  if (requested > 0) {
    while (2 * n <= requested && 2 * n <= fit) n *= 2;
    return n;
  }
  while (2 * n <= fit &&
         static_cast<int64_t>((num_q_blocks + 2 * n - 1) / (2 * n)) * ctas_per_block_row >= num_sms)
    n *= 2;
  return n;
}

// Query index (in [0, num_queries)) of sampled row `j` of query block `q_block`.
SW_HOST_DEVICE int sampled_row_query(int q_block, int j, int rows, int num_queries) {
  const int first = q_block * kIndexBlockSize;
  const int valid = num_queries - first < kIndexBlockSize ? num_queries - first : kIndexBlockSize;
  return first + static_cast<int>((2 * static_cast<int64_t>(j) + 1) * valid / (2 * rows));
}

}  // namespace sketchwalk
