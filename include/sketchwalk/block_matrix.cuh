// Warp-level row pieces of update_block_matrix_ (decode-time blend of the block transition
// matrix, docs/ops.md section 7): the blended value of one entry and a strided-row sum.
// Torch-free. The three steps of the authors' order are spelled out in
// csrc/cuda/update_block_matrix.cu; this header only holds the arithmetic they share.
#pragma once

#include <cuda_runtime.h>

#include "sketchwalk/common.h"

namespace sketchwalk {
namespace thread {

/// \brief (1 - alpha) * old + alpha * r, or r itself when alpha == 1 (a new block: the buffer
/// may hold anything, NaN included, and 0 * NaN would leak it).
SW_DEVICE float blend_with_r(float old_value, float r, float alpha) {
  return alpha >= 1.f ? r : (1.f - alpha) * old_value + alpha * r;
}

}  // namespace thread

namespace warp {

/// \brief Sum of value_at(j) for j in [0, n), every lane gets the total (xor-shuffle tree).
template <typename ValueAt>
SW_DEVICE float row_sum(const ValueAt& value_at, int n, int lane) {
  float s = 0.f;
  for (int j = lane; j < n; j += 32) s += value_at(j);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  return s;
}

}  // namespace warp
}  // namespace sketchwalk
