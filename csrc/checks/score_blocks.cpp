// Argument checks of score_blocks: the query and key sketches, logit_scale and the optional
// per-row key-block counts (their values only with validate and no graph capture).
#include <ATen/ATen.h>

#include "checks.h"

namespace sketchwalk {

void check_score_blocks_args(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                             double logit_scale, const std::optional<at::Tensor>& num_kv_blocks,
                             bool validate) {
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
  if (num_kv_blocks.has_value()) {
    check_tensor(*num_kv_blocks, op, "num_kv_blocks", 1, "[batch]", {at::kInt});
    check_same_device(*num_kv_blocks, q_sketch, op, "num_kv_blocks", "q_sketch");
    check_last_dim_contiguous(*num_kv_blocks, op, "num_kv_blocks");
    check_size(*num_kv_blocks, op, "num_kv_blocks", 0, q_sketch.size(0), "batch of 'q_sketch'");
    if (read_values(validate, q_sketch) && num_kv_blocks->numel() > 0) {
      auto [lo, hi] = at::aminmax(*num_kv_blocks);
      SW_CHECK_ARG(lo.item<int>() >= 1 && hi.item<int>() <= k_sketch.size(2), op, "num_kv_blocks",
                   "must hold counts in [1, cols=", k_sketch.size(2),
                   "] (the key blocks of 'k_sketch'), got values in [", lo.item<int>(), ", ",
                   hi.item<int>(), "]");
    }
  }
}

}  // namespace sketchwalk
