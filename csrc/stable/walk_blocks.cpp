// walk_blocks on PyTorch's stable ABI, CPU (csrc/stable/walk.h with BLAS through the C shim).
#include <torch/csrc/inductor/aoti_torch/generated/c_shim_cpu.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "stable/walk.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor walk_blocks_cpu(Tensor base, Tensor transition, std::optional<Tensor> init, int64_t degree,
                       double damping) {
  return walk_blocks_with(base, transition, init, degree, damping, &aoti_torch_cpu_baddbmm_out);
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("walk_blocks", TORCH_BOX(&sketchwalk::stable::walk_blocks_cpu));
}
