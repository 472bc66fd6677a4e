// Argument checks of update_block_sketch_: the key-block sketches, the new token's sketch,
// num_tokens_before and block_size (the token's block must fit the capacity).
#include "checks.h"

namespace sketchwalk {

void check_update_block_sketch_args(const at::Tensor& block_sketch,
                                    const at::Tensor& token_sketch, int64_t num_tokens_before,
                                    int64_t block_size) {
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
  SW_CHECK_ARG(j < block_sketch.size(2), op, "block_sketch", "has capacity for ", block_sketch.size(2),
               " blocks, but token ", num_tokens_before, " falls in block ", j);
}

}  // namespace sketchwalk
