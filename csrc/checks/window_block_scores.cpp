// Argument checks of window_block_scores: the cached window logits, window_fill and num_blocks.
#include "checks.h"

namespace sketchwalk {

void check_window_block_scores_args(const at::Tensor& window_logits, int64_t window_fill,
                                    int64_t num_blocks) {
  constexpr const char* op = "window_block_scores";
  check_tensor(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]",
               {at::kFloat});
  SW_CHECK_ARG(window_fill >= 1 && window_fill <= window_logits.size(2), op, "window_fill",
               "must lie in [1, W=", window_logits.size(2), "], got ", window_fill);
  SW_CHECK_ARG(num_blocks >= 1 && num_blocks <= window_logits.size(3), op, "num_blocks",
               "must lie in [1, capacity=", window_logits.size(3), "], got ", num_blocks);
  SW_CHECK_ARG(window_logits.size(1) >= 1, op, "window_logits",
               "must have at least one head, got shape ", window_logits.sizes());
}

}  // namespace sketchwalk
