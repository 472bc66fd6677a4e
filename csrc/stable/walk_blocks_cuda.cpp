// walk_blocks on PyTorch's stable ABI, CUDA (csrc/stable/walk.h with cuBLAS through the C shim),
// under the device guard of base's device.
#include <torch/csrc/inductor/aoti_torch/generated/c_shim_cuda.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "stable/walk.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor walk_blocks_cuda(Tensor base, Tensor transition, std::optional<Tensor> init,
                        int64_t degree, double damping) {
  const torch::stable::accelerator::DeviceGuard guard(base.get_device_index());
  return walk_blocks_with(base, transition, init, degree, damping, &aoti_torch_cuda_baddbmm_out);
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("walk_blocks", TORCH_BOX(&sketchwalk::stable::walk_blocks_cuda));
}
