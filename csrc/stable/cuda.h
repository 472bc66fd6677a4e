// What the stable-ABI CUDA host wrappers (csrc/stable/*_cuda.cpp) take from torch, through the
// stable C shim only: the current CUDA stream of a tensor's device (the stream torch's caching
// allocator and the caller's graph capture use), and the view, copy and allocation hooks of the
// shared launch templates (csrc/cuda/). The device guard is torch::stable::accelerator::DeviceGuard.
// Compiled with USE_CUDA (CMakeLists.txt), without which aoti_torch/c/shim.h hides the CUDA
// stream call.
#pragma once

#include <cuda_runtime.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "tensor_checks.h"

namespace sketchwalk::stable {

inline cudaStream_t current_cuda_stream(const torch::stable::Tensor& t) {
  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
}

}  // namespace sketchwalk::stable

namespace sketchwalk {

// The view and allocation hooks of csrc/cuda/select_decode_blocks_launch.h and
// csrc/cuda/attention_launch.h for the stable tensor (contiguous_of: csrc/stable/common.h).
inline torch::stable::Tensor narrow_of(tensor_world, const torch::stable::Tensor& t, int64_t dim,
                                       int64_t start, int64_t length) {
  torch::stable::Tensor view = t;  // narrow takes a non-const reference (this shares t's handle)
  return torch::stable::narrow(view, dim, start, length);
}
inline torch::stable::Tensor empty_of(tensor_world, const torch::stable::Tensor& like,
                                      torch::headeronly::IntHeaderOnlyArrayRef shape,
                                      torch::headeronly::ScalarType dtype) {
  return torch::stable::empty(shape, dtype, std::nullopt, like.device());
}

}  // namespace sketchwalk
