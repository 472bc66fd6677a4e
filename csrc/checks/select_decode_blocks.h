// Argument checks of select_decode_blocks_: every argument of a decode step's selection, named
// as the op's, before any state is touched; on the CPU also the values of signs and coords.
// Returns n = ceil(num_keys / block_size). A template over the tensor type: the ATen composite
// and fused CUDA op (csrc/composite/select_decode_blocks.cpp, csrc/cuda/select_decode_blocks.cpp)
// and the stable-ABI ones (csrc/stable/select_decode_blocks{,_cuda}.cpp) run the same checks.
#pragma once

#include <climits>
#include <cstdint>
#include <utility>

#include "checks/hadamard_sketch.h"
#include "checks/keys4_cache.h"
#include "checks/walk_blocks.h"
#include "sketchwalk/common.h"
#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
int64_t check_select_decode_blocks_args(const T& q, const T& k, const T& key_blocks,
                                        const T& query_window, const T& window_logits,
                                        const T& transition, const T& signs, const T& coords,
                                        int64_t window_fill, int64_t pushes, int64_t block_size,
                                        int64_t degree, double damping, double logit_scale,
                                        double keep_frac, int64_t window_tokens,
                                        int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "select_decode_blocks_";
  check_rank(q, op, "q", 4, "[batch, num_q_heads, 1, head_dim]");
  check_rank(k, op, "k", 4, "[batch, num_kv_heads, num_keys, head_dim]");
  check_dtype(q, op, "q", {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  check_dtype(k, op, "k", {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  check_last_dim_contiguous(q, op, "q");
  check_last_dim_contiguous(k, op, "k");
  SW_CHECK_ARG(q.size(2) == 1, op, "q", "must hold one query per sequence, got shape ", q.sizes());
  SW_CHECK_ARG(k.size(2) >= 1 && k.size(2) <= INT32_MAX, op, "k",
               "must hold between 1 (the new key) and ", INT32_MAX, " keys, got shape ", k.sizes());
  SW_CHECK_ARG(k.size(0) == q.size(0) && k.size(3) == q.size(3) && k.size(1) >= 1 &&
                   q.size(1) % k.size(1) == 0,
               op, "k", "must be [batch=", q.size(0), ", num_kv_heads dividing ", q.size(1),
               ", num_keys, head_dim=", q.size(3), "], got ", k.sizes());
  SW_CHECK_ARG(q.size(3) >= 1 && q.size(3) <= kMaxSketchHeadDim, op, "q", "has head_dim ",
               q.size(3), "; supported: 1 <= head_dim <= ", kMaxSketchHeadDim);
  check_rank(signs, op, "signs", 1, "[n], n = next_pow2(head_dim)");
  check_dtype(signs, op, "signs", {ScalarType::Float});
  check_rank(coords, op, "coords", 1, "[sketch_dim]");
  check_dtype(coords, op, "coords", {ScalarType::Long});
  const int64_t pow2 = next_pow2(static_cast<int>(q.size(3)));
  SW_CHECK_ARG(signs.size(0) == pow2, op, "signs", "must have n = next_pow2(head_dim) = ", pow2,
               " entries, got ", signs.size(0));
  const int64_t m = coords.size(0);
  SW_CHECK_ARG(m >= 1 && m <= pow2, op, "coords", "must have 1 <= sketch_dim <= n = ", pow2,
               " entries, got ", m);
  for (auto [t, name] : {std::pair{&k, "k"}, {&key_blocks, "key_blocks"},
                         {&query_window, "query_window"}, {&window_logits, "window_logits"},
                         {&transition, "transition"}, {&signs, "signs"}, {&coords, "coords"}}) {
    check_same_device(*t, q, op, name, "q");
  }
  check_rank(query_window, op, "query_window", 4, "[batch, num_q_heads, W, sketch_dim]");
  check_rank(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]");
  check_rank(transition, op, "transition", 3, "[batch, capacity, capacity]");
  check_rank(key_blocks, op, "key_blocks", 4, "[batch, num_kv_heads, capacity, sketch_dim]");
  for (auto [t, name] : {std::pair{&key_blocks, "key_blocks"}, {&query_window, "query_window"},
                         {&window_logits, "window_logits"}, {&transition, "transition"}}) {
    check_dtype(*t, op, name, {ScalarType::Float});
    check_last_dim_contiguous(*t, op, name);
  }
  SW_CHECK_ARG(query_window.size(0) == q.size(0) && query_window.size(1) == q.size(1) &&
                   query_window.size(3) == m,
               op, "query_window", "must be [batch=", q.size(0), ", num_q_heads=", q.size(1),
               ", W, sketch_dim=", m, "], got ", query_window.sizes());
  SW_CHECK_ARG(key_blocks.size(0) == k.size(0) && key_blocks.size(1) == k.size(1) &&
                   key_blocks.size(3) == m,
               op, "key_blocks", "must be [batch=", k.size(0), ", num_kv_heads=", k.size(1),
               ", capacity, sketch_dim=", m, "], got ", key_blocks.sizes());
  SW_CHECK_ARG(window_logits.size(0) == q.size(0) && window_logits.size(1) == q.size(1) &&
                   window_logits.size(2) == query_window.size(2),
               op, "window_logits", "must be [batch=", q.size(0), ", num_q_heads=", q.size(1),
               ", W=", query_window.size(2), ", capacity], got ", window_logits.sizes());
  SW_CHECK_ARG(transition.size(0) == q.size(0), op, "transition", "must have batch=", q.size(0),
               ", got ", transition.sizes());
  check_int32(block_size, op, "block_size", 1);
  const int64_t num_keys = k.size(2);
  const int64_t n = (num_keys + block_size - 1) / block_size;
  SW_CHECK_ARG(transition.size(1) >= n && transition.size(2) >= n && key_blocks.size(2) >= n &&
                   window_logits.size(3) >= n,
               op, "transition", "and 'key_blocks', 'window_logits' need capacity for ", n,
               " blocks, got ", transition.sizes(), ", ", key_blocks.sizes(), " and ",
               window_logits.sizes());
  SW_CHECK_ARG(pushes >= 0, op, "pushes", "must be >= 0, got ", pushes);
  SW_CHECK_ARG(window_fill >= 1 && window_fill <= query_window.size(2), op, "window_fill",
               "must lie in [1, W=", query_window.size(2), "], got ", window_fill);
  SW_CHECK_ARG(degree >= 0 && degree <= kMaxWalkDegree, op, "degree", "must lie in [0, ",
               kMaxWalkDegree, "], got ", degree);
  SW_CHECK_ARG(damping >= 0.0 && damping <= 1.0, op, "damping", "must lie in [0, 1], got ",
               damping);
  check_finite(logit_scale, op, "logit_scale");
  SW_CHECK_ARG(keep_frac >= 0.0 && keep_frac <= 1.0, op, "keep_frac", "must lie in [0, 1], got ",
               keep_frac);
  check_int32(window_tokens, op, "window_tokens", 1);
  check_int32(exclude_sink_tokens, op, "exclude_sink_tokens", 0);
  check_int32(attend_sink_tokens, op, "attend_sink_tokens", 0);
  // Coordinates and signs read memory: always on the CPU; on CUDA this per-step op trusts them
  // (they come from sketch_transform; hadamard_sketch(validate=True) checks a user's draw).
  if (!q.is_cuda()) check_sketch_transform_values(op, signs, coords, pow2);
  return n;
}

}  // namespace sketchwalk
