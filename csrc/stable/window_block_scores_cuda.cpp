// window_block_scores on PyTorch's stable ABI, CUDA: the ATen wrapper's checks and batch limit
// (csrc/checks/window_block_scores.h) and launch (csrc/cuda/window_block_scores_launch.h), with
// the device guard, allocations and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/window_block_scores.h"
#include "cuda/window_block_scores_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor window_block_scores_cuda(Tensor window_logits, int64_t window_fill, int64_t num_blocks) {
  check_cuda(window_logits, "window_block_scores", "window_logits");
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  check_window_block_scores_cuda_batch(window_logits);
  const torch::stable::accelerator::DeviceGuard guard(window_logits.get_device_index());
  const int64_t batch = window_logits.size(0), heads = window_logits.size(1);
  const int64_t r_shape[] = {batch, num_blocks};
  const int64_t scratch_shape[] = {batch * heads * window_fill};
  using torch::headeronly::ScalarType;
  Tensor r = torch::stable::empty(r_shape, ScalarType::Float, std::nullopt, window_logits.device());
  Tensor row_offset =
      torch::stable::empty(scratch_shape, ScalarType::Float, std::nullopt, window_logits.device());
  launch_window_block_scores(window_logits, window_fill, num_blocks, r, row_offset,
                             current_cuda_stream(window_logits));
  return r;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("window_block_scores", TORCH_BOX(&sketchwalk::stable::window_block_scores_cuda));
}
