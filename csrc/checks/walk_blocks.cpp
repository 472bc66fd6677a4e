// Argument checks of walk_blocks: base, transition, the optional init, degree and damping.
#include "checks.h"

namespace sketchwalk {

void check_walk_blocks_args(const at::Tensor& base, const at::Tensor& transition,
                            const std::optional<at::Tensor>& init, int64_t degree,
                            double damping) {
  constexpr const char* op = "walk_blocks";
  check_rank(base, op, "base", 3, "[batch, rows, n]");
  check_rank(transition, op, "transition", 3, "[batch, n, n]");
  check_dtype(base, op, "base", {at::kFloat});
  check_dtype(transition, op, "transition", {at::kFloat});
  check_same_device(transition, base, op, "transition", "base");
  const int64_t n = base.size(2);
  SW_CHECK_ARG(transition.size(0) == base.size(0) && transition.size(1) == n &&
                   transition.size(2) == n,
               op, "transition", "must be [batch=", base.size(0), ", n=", n, ", n=", n, "], got ",
               transition.sizes());
  SW_CHECK_ARG(degree >= 0 && degree <= kMaxWalkDegree, op, "degree", "must lie in [0, ",
               kMaxWalkDegree, "], got ", degree);
  SW_CHECK_ARG(damping >= 0.0 && damping <= 1.0, op, "damping", "must lie in [0, 1], got ", damping);
  if (init.has_value()) {
    check_dtype(*init, op, "init", {at::kFloat});
    check_same_device(*init, base, op, "init", "base");
    SW_CHECK_ARG(init->sizes() == base.sizes(), op, "init", "must have the shape of 'base' ",
                 base.sizes(), ", got ", init->sizes());
  }
}

}  // namespace sketchwalk
