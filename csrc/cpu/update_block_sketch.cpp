// update_block_sketch_ on the CPU (ATen): the checks and params of
// csrc/checks/update_block_sketch.h and the kernel of csrc/cpu/update_block_sketch_rows.h.
#include <ATen/ATen.h>

#include "checks.h"
#include "checks/update_block_sketch.h"
#include "cpu/update_block_sketch_rows.h"
#include "ops.h"

namespace sketchwalk {

void update_block_sketch_cpu(const at::Tensor& block_sketch, const at::Tensor& token_sketch,
                             int64_t num_tokens_before, int64_t block_size) {
  check_update_block_sketch_args(block_sketch, token_sketch, num_tokens_before, block_size);
  update_block_sketch_cpu_rows(
      update_block_sketch_params(block_sketch, token_sketch, num_tokens_before, block_size));
}

}  // namespace sketchwalk
