// Argument checks of push_query_window_: the query window, the new query's sketch and position.
// A template over the tensor type: the ATen op (csrc/composite/push_query_window.cpp) and the
// stable-ABI one (csrc/stable/push_query_window.cpp) run the same checks, with the same messages.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
void check_push_query_window_args(const T& window, const T& q_sketch, int64_t position) {
  using ScalarType = std::decay_t<decltype(std::declval<const T&>().scalar_type())>;
  constexpr const char* op = "push_query_window_";
  check_rank(window, op, "window", 4, "[batch, heads, W, sketch_dim]");
  check_rank(q_sketch, op, "q_sketch", 4, "[batch, heads, 1, sketch_dim]");
  check_dtype(window, op, "window", {ScalarType::Float});
  check_dtype(q_sketch, op, "q_sketch", {ScalarType::Float});
  check_same_device(q_sketch, window, op, "q_sketch", "window");
  SW_CHECK_ARG(window.size(2) >= 1, op, "window", "must have W >= 1 slots, got shape ",
               window.sizes());
  SW_CHECK_ARG(q_sketch.size(0) == window.size(0) && q_sketch.size(1) == window.size(1) &&
                   q_sketch.size(2) == 1 && q_sketch.size(3) == window.size(3),
               op, "q_sketch", "must be [", window.size(0), ", ", window.size(1), ", 1, ",
               window.size(3), "], got ", q_sketch.sizes());
  SW_CHECK_ARG(position >= 0, op, "position", "must be >= 0, got ", position);
}

}  // namespace sketchwalk
