// Argument checks of score_blocks: the query and key sketches, logit_scale and the optional
// per-row key-block counts (their values only with validate and no graph capture). A template
// over the tensor type: the ATen CUDA wrapper (csrc/cuda/score_blocks.cpp), the ATen CPU op
// (csrc/cpu/score_blocks.cpp) and the stable-ABI CPU op (csrc/stable/score_blocks.cpp) run the
// same checks with the same messages.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
void check_score_blocks_args(const T& q_sketch, const T& k_sketch, double logit_scale,
                             const std::optional<T>& num_kv_blocks, bool validate) {
  using ScalarType = std::decay_t<decltype(std::declval<const T&>().scalar_type())>;
  constexpr const char* op = "score_blocks";
  check_finite(logit_scale, op, "logit_scale");
  check_rank(q_sketch, op, "q_sketch", 4, "[batch, num_q_heads, rows, sketch_dim]");
  check_rank(k_sketch, op, "k_sketch", 4, "[batch, num_kv_heads, cols, sketch_dim]");
  check_dtype(q_sketch, op, "q_sketch", {ScalarType::Float});
  check_dtype(k_sketch, op, "k_sketch", {ScalarType::Float});
  check_same_device(k_sketch, q_sketch, op, "k_sketch", "q_sketch");
  check_last_dim_contiguous(q_sketch, op, "q_sketch");
  check_last_dim_contiguous(k_sketch, op, "k_sketch");
  check_size(k_sketch, op, "k_sketch", 0, q_sketch.size(0), "batch of 'q_sketch'");
  check_size(k_sketch, op, "k_sketch", 3, q_sketch.size(3), "sketch_dim of 'q_sketch'");
  SW_CHECK_ARG(k_sketch.size(1) >= 1 && q_sketch.size(1) % k_sketch.size(1) == 0, op, "k_sketch",
               "has ", k_sketch.size(1), " heads, which must divide the ", q_sketch.size(1),
               " heads of 'q_sketch' (GQA)");
  if (!num_kv_blocks.has_value()) return;
  const T& counts = *num_kv_blocks;
  check_tensor(counts, op, "num_kv_blocks", 1, "[batch]", {ScalarType::Int});
  check_same_device(counts, q_sketch, op, "num_kv_blocks", "q_sketch");
  check_size(counts, op, "num_kv_blocks", 0, q_sketch.size(0), "batch of 'q_sketch'");
  if (read_values(tensor_world{}, validate, q_sketch) && counts.numel() > 0) {
    const auto [lo, hi] = int_range(tensor_world{}, counts);
    SW_CHECK_ARG(lo >= 1 && hi <= k_sketch.size(2), op, "num_kv_blocks",
                 "must hold counts in [1, cols=", k_sketch.size(2),
                 "] (the key blocks of 'k_sketch'), got values in [", lo, ", ", hi, "]");
  }
}

}  // namespace sketchwalk
