// Argument checks of window_block_scores: the cached window logits, window_fill and num_blocks,
// and the batch limit the CUDA kernel adds. Templates over the tensor type: the ATen ops
// (csrc/cpu/window_block_scores.cpp, csrc/cuda/window_block_scores.cpp) and the stable-ABI ones
// (csrc/stable/window_block_scores{,_cuda}.cpp) run the same checks.
#pragma once

#include <cstdint>

#include "checks/keys4_cache.h"
#include "sketchwalk/common.h"
#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
void check_window_block_scores_args(const T& window_logits, int64_t window_fill,
                                    int64_t num_blocks) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "window_block_scores";
  check_tensor(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]",
               {ScalarType::Float});
  SW_CHECK_ARG(window_fill >= 1 && window_fill <= window_logits.size(2), op, "window_fill",
               "must lie in [1, W=", window_logits.size(2), "], got ", window_fill);
  SW_CHECK_ARG(num_blocks >= 1 && num_blocks <= window_logits.size(3), op, "num_blocks",
               "must lie in [1, capacity=", window_logits.size(3), "], got ", num_blocks);
  SW_CHECK_ARG(window_logits.size(1) >= 1, op, "window_logits",
               "must have at least one head, got shape ", window_logits.sizes());
}

// One block per batch row on the grid's y.
template <typename T>
void check_window_block_scores_cuda_batch(const T& window_logits) {
  SW_CHECK_ARG(window_logits.size(0) <= kMaxGridYZ, "window_block_scores", "window_logits",
               "must have batch <= ", kMaxGridYZ, " on CUDA, got ", window_logits.size(0));
}

}  // namespace sketchwalk
