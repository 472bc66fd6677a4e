// Calling a registered op (ours or ATen's) from a stable-ABI op, through the dispatcher's C entry
// point torch_call_dispatcher (torch >= 2.10): the arguments packed as StableIValues the way
// torch/csrc/stable/ops.h packs them, the returns read back from the front of the same stack.
// The arguments must have the schema's C++ types exactly (int64_t, double, bool, Tensor,
// std::optional<Tensor>), as for TORCH_BOX.
#pragma once

#include <torch/csrc/stable/c/shim.h>
#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/stableivalue_conversions.h>
#include <torch/csrc/stable/tensor.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <tuple>
#include <utility>

namespace sketchwalk::stable {

// Calls `name` (overload `overload`) with args; returns its NumReturns results as Returns...
// (nothing for a void op, one value, or a tuple).
template <typename... Returns, typename... Args>
auto call_op(const char* name, const char* overload, const Args&... args) {
  constexpr size_t kReturns = sizeof...(Returns);
  std::array<StableIValue, std::max(sizeof...(Args), kReturns)> stack{
      torch::stable::detail::from(args)...};
  STABLE_TORCH_ERROR_CODE_CHECK(
      torch_call_dispatcher(name, overload, stack.data(), TORCH_ABI_VERSION));
  if constexpr (kReturns == 1) {
    return torch::stable::detail::to<Returns...>(stack[0]);
  } else if constexpr (kReturns > 1) {
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return std::tuple<Returns...>{torch::stable::detail::to<Returns>(stack[I])...};
    }(std::index_sequence_for<Returns...>{});
  }
}

}  // namespace sketchwalk::stable
