// update_block_sketch_ on PyTorch's stable ABI, CPU: the ATen op's checks and params
// (csrc/checks/update_block_sketch.h) and kernel (csrc/cpu/update_block_sketch_rows.h).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/update_block_sketch.h"
#include "cpu/update_block_sketch_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void update_block_sketch_cpu(Tensor block_sketch, Tensor token_sketch, int64_t num_tokens_before,
                             int64_t block_size) {
  check_update_block_sketch_args(block_sketch, token_sketch, num_tokens_before, block_size);
  update_block_sketch_cpu_rows(
      update_block_sketch_params(block_sketch, token_sketch, num_tokens_before, block_size));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("update_block_sketch_", TORCH_BOX(&sketchwalk::stable::update_block_sketch_cpu));
}
