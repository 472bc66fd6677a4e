// Argument checks of update_block_sketch_ (the key-block sketches, the new token's sketch,
// num_tokens_before and block_size: the token's block must fit the capacity), and the kernels'
// params from the checked tensors. Templates over the tensor type: the ATen ops
// (csrc/cpu/update_block_sketch.cpp, csrc/cuda/update_block_sketch.cpp) and the stable-ABI ones
// (csrc/stable/update_block_sketch{,_cuda}.cpp) share them.
#pragma once

#include <cstdint>

#include "checks/keys4_cache.h"
#include "sketchwalk/params.h"
#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
void check_update_block_sketch_args(const T& block_sketch, const T& token_sketch,
                                    int64_t num_tokens_before, int64_t block_size) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "update_block_sketch_";
  check_rank(block_sketch, op, "block_sketch", 4, "[batch, heads, capacity, sketch_dim]");
  check_rank(token_sketch, op, "token_sketch", 4, "[batch, heads, 1, sketch_dim]");
  check_dtype(block_sketch, op, "block_sketch", {ScalarType::Float});
  check_dtype(token_sketch, op, "token_sketch", {ScalarType::Float});
  check_same_device(token_sketch, block_sketch, op, "token_sketch", "block_sketch");
  SW_CHECK_ARG(token_sketch.size(0) == block_sketch.size(0) &&
                   token_sketch.size(1) == block_sketch.size(1) && token_sketch.size(2) == 1 &&
                   token_sketch.size(3) == block_sketch.size(3),
               op, "token_sketch", "must be [", block_sketch.size(0), ", ", block_sketch.size(1),
               ", 1, ", block_sketch.size(3), "], got ", token_sketch.sizes());
  check_int32(block_size, op, "block_size", 1);
  SW_CHECK_ARG(num_tokens_before >= 0, op, "num_tokens_before", "must be >= 0, got ",
               num_tokens_before);
  const int64_t j = num_tokens_before / block_size;
  SW_CHECK_ARG(j < block_sketch.size(2), op, "block_sketch", "has capacity for ",
               block_sketch.size(2), " blocks, but token ", num_tokens_before, " falls in block ",
               j);
  // The kernels write every (batch, head, coordinate) of the block row once: no two of them may
  // share memory (an expanded dimension, stride 0).
  for (int64_t d : {0, 1, 3}) {
    SW_CHECK_ARG(block_sketch.size(d) <= 1 || block_sketch.stride(d) != 0, op, "block_sketch",
                 "must not have overlapping elements (stride 0 in dim ", d, "), got strides ",
                 block_sketch.strides());
  }
  SW_CHECK_ARG(block_sketch.size(0) <= INT32_MAX && block_sketch.size(1) <= INT32_MAX &&
                   block_sketch.size(3) <= INT32_MAX,
               op, "block_sketch", "must have batch, heads and sketch_dim <= ", INT32_MAX,
               ", got shape ", block_sketch.sizes());
}

// The kernels' params (sketchwalk/params.h) from checked tensors.
template <typename T>
UpdateBlockSketchParams update_block_sketch_params(const T& block_sketch, const T& token_sketch,
                                                   int64_t num_tokens_before,
                                                   int64_t block_size) {
  UpdateBlockSketchParams p{};
  p.block = block_sketch.template mutable_data_ptr<float>() +
            (num_tokens_before / block_size) * block_sketch.stride(2);
  p.token = token_sketch.template const_data_ptr<float>();
  p.block_batch_stride = block_sketch.stride(0);
  p.block_head_stride = block_sketch.stride(1);
  p.block_dim_stride = block_sketch.stride(3);
  p.token_batch_stride = token_sketch.stride(0);
  p.token_head_stride = token_sketch.stride(1);
  p.token_dim_stride = token_sketch.stride(3);
  p.batch = static_cast<int>(block_sketch.size(0));
  p.heads = static_cast<int>(block_sketch.size(1));
  p.sketch_dim = static_cast<int>(block_sketch.size(3));
  p.count = static_cast<int>(num_tokens_before % block_size);
  return p;
}

}  // namespace sketchwalk
