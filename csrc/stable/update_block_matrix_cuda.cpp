// update_block_matrix_ on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/update_block_matrix.h) and launch (csrc/cuda/update_block_matrix_launch.h), with
// the device guard and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/update_block_matrix.h"
#include "cuda/update_block_matrix_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void update_block_matrix_cuda(Tensor transition, Tensor r, int64_t num_keys, int64_t block_size) {
  check_cuda(transition, "update_block_matrix_", "transition");
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const torch::stable::accelerator::DeviceGuard guard(transition.get_device_index());
  launch_update_block_matrix(transition, torch::stable::contiguous(r), num_keys, block_size,
                             current_cuda_stream(transition));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("update_block_matrix_", TORCH_BOX(&sketchwalk::stable::update_block_matrix_cuda));
}
