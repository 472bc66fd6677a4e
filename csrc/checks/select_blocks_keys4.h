// Argument checks of select_blocks_keys4: mass, seq_lens and the three fractions; with
// validate (and no graph capture) also the lengths in seq_lens. A template over the tensor
// type, shared by the ATen ops (csrc/cpu/select_blocks_keys4.cpp,
// csrc/cuda/select_blocks_keys4.cpp) and the stable-ABI one (csrc/stable/select_blocks_keys4.cpp).
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <utility>

#include "checks/keys4_cache.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

template <typename T>
void check_select_blocks_keys4_args(const T& mass, const std::optional<T>& seq_lens,
                                    double keep_frac, double window_frac, double sink_frac,
                                    bool validate) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "select_blocks_keys4";
  check_rank(mass, op, "mass", 3, "[batch, num_kv_heads, num_blocks]");
  check_dtype(mass, op, "mass", {ScalarType::Float});
  SW_CHECK_ARG(mass.is_contiguous(), op, "mass", "must be contiguous, got strides ",
               mass.strides());
  SW_CHECK_ARG(mass.size(2) <= INT_MAX / kIndexBlockSize, op, "mass", "has ", mass.size(2),
               " blocks, more than ", INT_MAX / kIndexBlockSize, " (lengths are int32)");
  for (auto [value, name] : {std::pair{keep_frac, "keep_frac"}, {window_frac, "window_frac"},
                             {sink_frac, "sink_frac"}}) {
    SW_CHECK_ARG(value >= 0.0 && value <= 1.0, op, name, "must lie in [0, 1], got ", value);
  }
  check_seq_lens_tensor(op, seq_lens, mass.size(0), mass, "mass");
  if (seq_lens.has_value() && read_values(tensor_world{}, validate, mass)) {
    check_seq_lens_values(op, *seq_lens, 1, mass.size(2) * kIndexBlockSize,
                          "1 <= length <= 64 * num_blocks of 'mass'");
  }
}

}  // namespace sketchwalk
