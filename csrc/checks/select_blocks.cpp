// Argument checks of select_blocks: the block scores and the integer and fraction knobs of the
// selection rule.
#include "checks.h"

namespace sketchwalk {

void check_select_blocks_args(const at::Tensor& scores, int64_t num_queries, int64_t num_keys,
                              int64_t block_size, double keep_frac, int64_t window_tokens,
                              int64_t exclude_sink_tokens, int64_t attend_sink_tokens,
                              int64_t dense_last_q_blocks) {
  constexpr const char* op = "select_blocks";
  check_tensor(scores, op, "scores", 3, "[batch, num_q_blocks, num_kv_blocks]", {at::kFloat});
  check_int32(block_size, op, "block_size", 1);
  check_int32(num_keys, op, "num_keys", 1);
  check_int32(window_tokens, op, "window_tokens", 1);
  check_int32(exclude_sink_tokens, op, "exclude_sink_tokens", 0);
  check_int32(attend_sink_tokens, op, "attend_sink_tokens", 0);
  check_int32(dense_last_q_blocks, op, "dense_last_q_blocks", 0);
  SW_CHECK_ARG(num_queries >= 1 && num_queries <= num_keys, op, "num_queries",
               "must lie in [1, num_keys=", num_keys, "], got ", num_queries);
  check_size(scores, op, "scores", 1, (num_queries + block_size - 1) / block_size,
             "num_q_blocks = ceil(num_queries / block_size)");
  check_size(scores, op, "scores", 2, (num_keys + block_size - 1) / block_size,
             "num_kv_blocks = ceil(num_keys / block_size)");
  SW_CHECK_ARG(keep_frac >= 0.0 && keep_frac <= 1.0, op, "keep_frac", "must lie in [0, 1], got ",
               keep_frac);
  SW_CHECK_ARG(window_tokens >= 1, op, "window_tokens", "must be >= 1, got ", window_tokens);
  SW_CHECK_ARG(exclude_sink_tokens >= 0, op, "exclude_sink_tokens", "must be >= 0, got ",
               exclude_sink_tokens);
  SW_CHECK_ARG(attend_sink_tokens >= 0, op, "attend_sink_tokens", "must be >= 0, got ",
               attend_sink_tokens);
  SW_CHECK_ARG(dense_last_q_blocks >= 0, op, "dense_last_q_blocks", "must be >= 0, got ",
               dense_last_q_blocks);
}

}  // namespace sketchwalk
