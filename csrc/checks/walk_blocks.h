// Argument checks of walk_blocks: base, transition, the optional init, degree and damping. A
// template over the tensor type: the ATen composite (csrc/composite/walk_blocks.cpp) and the
// stable-ABI ops (csrc/stable/walk_blocks{,_cuda}.cpp) run the same checks.
#pragma once

#include <cstdint>
#include <optional>

#include "checks/keys4_cache.h"
#include "tensor_checks.h"

namespace sketchwalk {

// Largest walk degree walk_blocks and select_decode_blocks_ accept: each step is one batched
// GEMM and the damped walk converges geometrically (beta^degree), so a bound far above any
// useful value refuses what would run for hours.
constexpr int64_t kMaxWalkDegree = 1024;

template <typename T>
void check_walk_blocks_args(const T& base, const T& transition, const std::optional<T>& init,
                            int64_t degree, double damping) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "walk_blocks";
  check_rank(base, op, "base", 3, "[batch, rows, n]");
  check_rank(transition, op, "transition", 3, "[batch, n, n]");
  check_dtype(base, op, "base", {ScalarType::Float});
  check_dtype(transition, op, "transition", {ScalarType::Float});
  check_same_device(transition, base, op, "transition", "base");
  const int64_t n = base.size(2);
  SW_CHECK_ARG(transition.size(0) == base.size(0) && transition.size(1) == n &&
                   transition.size(2) == n,
               op, "transition", "must be [batch=", base.size(0), ", n=", n, ", n=", n, "], got ",
               transition.sizes());
  SW_CHECK_ARG(degree >= 0 && degree <= kMaxWalkDegree, op, "degree", "must lie in [0, ",
               kMaxWalkDegree, "], got ", degree);
  SW_CHECK_ARG(damping >= 0.0 && damping <= 1.0, op, "damping", "must lie in [0, 1], got ",
               damping);
  if (init.has_value()) {
    check_dtype(*init, op, "init", {ScalarType::Float});
    check_same_device(*init, base, op, "init", "base");
    bool same = init->dim() == base.dim();
    for (int64_t d = 0; same && d < base.dim(); ++d) same = init->size(d) == base.size(d);
    SW_CHECK_ARG(same, op, "init", "must have the shape of 'base' ", base.sizes(), ", got ",
                 init->sizes());
  }
}

}  // namespace sketchwalk
