// update_block_sketch_ on PyTorch's stable ABI, CUDA: the ATen wrapper's checks and params
// (csrc/checks/update_block_sketch.h) and kernel (csrc/cuda/update_block_sketch.cu), with the
// device guard and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/update_block_sketch.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void update_block_sketch_cuda(Tensor block_sketch, Tensor token_sketch, int64_t num_tokens_before,
                              int64_t block_size) {
  check_cuda(block_sketch, "update_block_sketch_", "block_sketch");
  check_update_block_sketch_args(block_sketch, token_sketch, num_tokens_before, block_size);
  const torch::stable::accelerator::DeviceGuard guard(block_sketch.get_device_index());
  check_launch(run_update_block_sketch(update_block_sketch_params(block_sketch, token_sketch,
                                                                  num_tokens_before, block_size),
                                       current_cuda_stream(block_sketch)),
               "update_block_sketch_");
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("update_block_sketch_", TORCH_BOX(&sketchwalk::stable::update_block_sketch_cuda));
}
