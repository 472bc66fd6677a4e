// Argument checks of score_blocks: the query and key sketches and logit_scale.
#include "checks.h"

namespace sketchwalk {

void check_score_blocks_args(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                             double logit_scale) {
  constexpr const char* op = "score_blocks";
  check_finite(logit_scale, op, "logit_scale");
  check_rank(q_sketch, op, "q_sketch", 4, "[batch, num_q_heads, rows, sketch_dim]");
  check_rank(k_sketch, op, "k_sketch", 4, "[batch, num_kv_heads, cols, sketch_dim]");
  check_dtype(q_sketch, op, "q_sketch", {at::kFloat});
  check_dtype(k_sketch, op, "k_sketch", {at::kFloat});
  check_same_device(k_sketch, q_sketch, op, "k_sketch", "q_sketch");
  check_last_dim_contiguous(q_sketch, op, "q_sketch");
  check_last_dim_contiguous(k_sketch, op, "k_sketch");
  check_size(k_sketch, op, "k_sketch", 0, q_sketch.size(0), "batch of 'q_sketch'");
  check_size(k_sketch, op, "k_sketch", 3, q_sketch.size(3), "sketch_dim of 'q_sketch'");
  SW_CHECK_ARG(k_sketch.size(1) >= 1 && q_sketch.size(1) % k_sketch.size(1) == 0, op, "k_sketch",
               "has ", k_sketch.size(1), " heads, which must divide the ", q_sketch.size(1),
               " heads of 'q_sketch' (GQA)");
}

}  // namespace sketchwalk
