// score_blocks on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/score_blocks.h) and launch (csrc/cuda/score_blocks_launch.h), with the device
// guard, allocation and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "checks/score_blocks.h"
#include "cuda/score_blocks_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor score_blocks_cuda(Tensor q_sketch, Tensor k_sketch, double logit_scale,
                         std::optional<Tensor> num_kv_blocks, bool validate) {
  check_cuda(q_sketch, "score_blocks", "q_sketch");
  check_score_blocks_args(q_sketch, k_sketch, logit_scale, num_kv_blocks, validate);
  const torch::stable::accelerator::DeviceGuard guard(q_sketch.get_device_index());
  const int64_t shape[] = {q_sketch.size(0), q_sketch.size(2), k_sketch.size(2)};
  Tensor out = torch::stable::empty(shape, torch::headeronly::ScalarType::Float, std::nullopt,
                                    q_sketch.device());
  if (out.numel() == 0) return out;
  launch_score_blocks(q_sketch, k_sketch, out,
                      num_kv_blocks.has_value() ? num_kv_blocks->const_data_ptr<int>() : nullptr,
                      logit_scale, current_cuda_stream(q_sketch));
  return out;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("score_blocks", TORCH_BOX(&sketchwalk::stable::score_blocks_cuda));
}
