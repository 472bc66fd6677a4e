// Argument checks of update_window_logits_: the cached window logits, the query window, the
// key-block sketches, num_blocks, slot and logit_scale. A template over the tensor type: the
// ATen ops (csrc/cpu/update_window_logits.cpp, csrc/cuda/update_window_logits.cpp) and the
// stable-ABI ones (csrc/stable/update_window_logits{,_cuda}.cpp) run the same checks.
#pragma once

#include <cstdint>

#include "checks/keys4_cache.h"
#include "sketchwalk/common.h"
#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
void check_update_window_logits_args(const T& window_logits, const T& query_window,
                                     const T& key_blocks, int64_t num_blocks, int64_t slot,
                                     double logit_scale) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "update_window_logits_";
  check_finite(logit_scale, op, "logit_scale");
  check_tensor(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]",
               {ScalarType::Float});
  check_tensor(query_window, op, "query_window", 4, "[batch, num_q_heads, W, sketch_dim]",
               {ScalarType::Float});
  check_same_device(query_window, window_logits, op, "query_window", "window_logits");
  check_tensor(key_blocks, op, "key_blocks", 4, "[batch, num_kv_heads, capacity, sketch_dim]",
               {ScalarType::Float});
  check_same_device(key_blocks, window_logits, op, "key_blocks", "window_logits");
  const int64_t batch = window_logits.size(0), heads = window_logits.size(1);
  const int64_t window = window_logits.size(2);
  SW_CHECK_ARG(query_window.size(0) == batch && query_window.size(1) == heads &&
                   query_window.size(2) == window,
               op, "query_window", "must be [batch=", batch, ", num_q_heads=", heads, ", W=",
               window, ", sketch_dim] like 'window_logits', got ", query_window.sizes());
  const int64_t m = query_window.size(3);
  SW_CHECK_ARG(m >= 1 && m <= kMaxSketchHeadDim, op, "query_window",
               "must have sketch_dim in [1, ", kMaxSketchHeadDim, "], got ", m);
  SW_CHECK_ARG(key_blocks.size(0) == batch && key_blocks.size(1) >= 1 &&
                   heads % key_blocks.size(1) == 0 && key_blocks.size(3) == m,
               op, "key_blocks", "must be [batch=", batch, ", num_kv_heads dividing ", heads,
               ", capacity, sketch_dim=", m, "], got ", key_blocks.sizes());
  SW_CHECK_ARG(num_blocks >= 1 && num_blocks <= window_logits.size(3) &&
                   num_blocks <= key_blocks.size(2),
               op, "num_blocks", "must lie in [1, capacity] (window_logits holds ",
               window_logits.size(3), " blocks, key_blocks ", key_blocks.size(2), "), got ",
               num_blocks);
  SW_CHECK_ARG(slot >= -1 && slot < window, op, "slot",
               "must be a window slot in [0, W=", window, ") or -1 (every slot), got ", slot);
}

}  // namespace sketchwalk
