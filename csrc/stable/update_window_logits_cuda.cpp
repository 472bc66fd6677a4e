// update_window_logits_ on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/update_window_logits.h) and launch (csrc/cuda/update_window_logits_launch.h), with
// the device guard and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/update_window_logits.h"
#include "cuda/update_window_logits_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void update_window_logits_cuda(Tensor window_logits, Tensor query_window, Tensor key_blocks,
                               int64_t num_blocks, int64_t slot, double logit_scale) {
  check_cuda(window_logits, "update_window_logits_", "window_logits");
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const torch::stable::accelerator::DeviceGuard guard(window_logits.get_device_index());
  launch_update_window_logits(window_logits, query_window, key_blocks, num_blocks, slot,
                              logit_scale, current_cuda_stream(window_logits));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("update_window_logits_", TORCH_BOX(&sketchwalk::stable::update_window_logits_cuda));
}
