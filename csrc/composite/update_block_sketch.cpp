// update_block_sketch_, one implementation for every device: folds one new token's sketch into
// the running mean of its key block's sketch, in place (ATen tensor ops).
// Checks: csrc/checks/update_block_sketch.cpp.
#include <ATen/core/Tensor.h>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

void update_block_sketch_(const at::Tensor& block_sketch, const at::Tensor& token_sketch,
                          int64_t num_tokens_before, int64_t block_size) {
  check_update_block_sketch_args(block_sketch, token_sketch, num_tokens_before, block_size);
  const int64_t j = num_tokens_before / block_size;
  const int64_t count = num_tokens_before % block_size;
  auto dst = block_sketch.select(2, j);
  if (count == 0) {
    dst.copy_(token_sketch.select(2, 0));
  } else {
    dst.mul_(static_cast<double>(count)).add_(token_sketch.select(2, 0)).div_(static_cast<double>(count + 1));
  }
}

}  // namespace sketchwalk
