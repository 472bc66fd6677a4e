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
// The most rows (query heads of a KV group x sampled rows) one CUDA block of the scorer holds:
// 8 m16 tiles of the tensor-core kernel.
constexpr int kMaxSampledRowsPerGroup = 128;

// Query index (in [0, num_queries)) of sampled row `j` of query block `q_block`.
SW_HOST_DEVICE int sampled_row_query(int q_block, int j, int rows, int num_queries) {
  const int first = q_block * kIndexBlockSize;
  const int valid = num_queries - first < kIndexBlockSize ? num_queries - first : kIndexBlockSize;
  return first + static_cast<int>((2 * static_cast<int64_t>(j) + 1) * valid / (2 * rows));
}

}  // namespace sketchwalk
