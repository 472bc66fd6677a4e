// Ops built from ATen ops, one implementation for every device: the walk (a few batched
// GEMMs through cuBLAS/BLAS, which is the right tool for it) and the two small decode-state
// writes. Argument checks name the op and argument like the kernels' (checks.h).
#include <ATen/ATen.h>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor walk_blocks(const at::Tensor& base, const at::Tensor& transition,
                       const std::optional<at::Tensor>& init, int64_t degree, double damping) {
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
  at::Tensor state;
  if (init.has_value()) {
    check_dtype(*init, op, "init", {at::kFloat});
    check_same_device(*init, base, op, "init", "base");
    SW_CHECK_ARG(init->sizes() == base.sizes(), op, "init", "must have the shape of 'base' ",
                 base.sizes(), ", got ", init->sizes());
    state = init->clone(at::MemoryFormat::Contiguous);
  } else {
    state = base.clone(at::MemoryFormat::Contiguous);
  }
  for (int64_t step = 0; step < degree; ++step) {
    state = at::baddbmm(base, state, transition, /*beta=*/1.0 - damping, /*alpha=*/damping);
  }
  return state;
}

void update_block_sketch_(const at::Tensor& block_sketch, const at::Tensor& token_sketch,
                          int64_t num_tokens_before, int64_t block_size) {
  constexpr const char* op = "update_block_sketch_";
  check_rank(block_sketch, op, "block_sketch", 4, "[batch, heads, capacity, sketch_dim]");
  check_rank(token_sketch, op, "token_sketch", 4, "[batch, heads, 1, sketch_dim]");
  check_dtype(block_sketch, op, "block_sketch", {at::kFloat});
  check_dtype(token_sketch, op, "token_sketch", {at::kFloat});
  check_same_device(token_sketch, block_sketch, op, "token_sketch", "block_sketch");
  SW_CHECK_ARG(token_sketch.size(0) == block_sketch.size(0) && token_sketch.size(1) == block_sketch.size(1) &&
                   token_sketch.size(2) == 1 && token_sketch.size(3) == block_sketch.size(3),
               op, "token_sketch", "must be [", block_sketch.size(0), ", ", block_sketch.size(1), ", 1, ",
               block_sketch.size(3), "], got ", token_sketch.sizes());
  SW_CHECK_ARG(block_size >= 1, op, "block_size", "must be >= 1, got ", block_size);
  SW_CHECK_ARG(num_tokens_before >= 0, op, "num_tokens_before", "must be >= 0, got ", num_tokens_before);
  const int64_t j = num_tokens_before / block_size;
  const int64_t count = num_tokens_before % block_size;
  SW_CHECK_ARG(j < block_sketch.size(2), op, "block_sketch", "has capacity for ", block_sketch.size(2),
               " blocks, but token ", num_tokens_before, " falls in block ", j);
  auto dst = block_sketch.select(2, j);
  if (count == 0) {
    dst.copy_(token_sketch.select(2, 0));
  } else {
    dst.mul_(static_cast<double>(count)).add_(token_sketch.select(2, 0)).div_(static_cast<double>(count + 1));
  }
}

void push_query_window_(const at::Tensor& window, const at::Tensor& q_sketch, int64_t position) {
  constexpr const char* op = "push_query_window_";
  check_rank(window, op, "window", 4, "[batch, heads, W, sketch_dim]");
  check_rank(q_sketch, op, "q_sketch", 4, "[batch, heads, 1, sketch_dim]");
  check_dtype(window, op, "window", {at::kFloat});
  check_dtype(q_sketch, op, "q_sketch", {at::kFloat});
  check_same_device(q_sketch, window, op, "q_sketch", "window");
  SW_CHECK_ARG(window.size(2) >= 1, op, "window", "must have W >= 1 slots, got shape ", window.sizes());
  SW_CHECK_ARG(q_sketch.size(0) == window.size(0) && q_sketch.size(1) == window.size(1) &&
                   q_sketch.size(2) == 1 && q_sketch.size(3) == window.size(3),
               op, "q_sketch", "must be [", window.size(0), ", ", window.size(1), ", 1, ", window.size(3),
               "], got ", q_sketch.sizes());
  SW_CHECK_ARG(position >= 0, op, "position", "must be >= 0, got ", position);
  window.select(2, position % window.size(2)).copy_(q_sketch.select(2, 0));
}

}  // namespace sketchwalk
