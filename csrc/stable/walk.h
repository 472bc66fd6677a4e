// walk_blocks on PyTorch's stable ABI, for one device: the ATen composite's checks
// (csrc/checks/walk_blocks.h) and its `degree` batched GEMMs (state = (1 - damping) * base +
// damping * state @ transition), each through the device's AOTInductor C shim for
// baddbmm.out (aoti_torch_{cpu,cuda}_baddbmm_out: BLAS / cuBLAS, as at::baddbmm). Used by
// csrc/stable/walk_blocks.cpp (CPU) and csrc/stable/walk_blocks_cuda.cpp (CUDA).
#pragma once

#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "checks/walk_blocks.h"
#include "stable/common.h"

namespace sketchwalk::stable {

// baddbmm_out(out, self, batch1, batch2, beta, alpha): the device's C shim.
template <typename BaddbmmOut>
torch::stable::Tensor walk_blocks_with(const torch::stable::Tensor& base,
                                       const torch::stable::Tensor& transition,
                                       const std::optional<torch::stable::Tensor>& init,
                                       int64_t degree, double damping, BaddbmmOut baddbmm_out) {
  check_walk_blocks_args(base, transition, init, degree, damping);
  torch::stable::Tensor state =
      torch::stable::contiguous(torch::stable::clone(init.has_value() ? *init : base));
  for (int64_t step = 0; step < degree; ++step) {
    torch::stable::Tensor next = torch::stable::empty(
        state.sizes(), torch::headeronly::ScalarType::Float, std::nullopt, base.device());
    STABLE_TORCH_ERROR_CODE_CHECK(baddbmm_out(next.get(), base.get(), state.get(),
                                              transition.get(), 1.0 - damping, damping));
    state = next;
  }
  return state;
}

}  // namespace sketchwalk::stable
