// What every CUDA host wrapper needs besides torch, for both tensor types the extension compiles
// against (at::Tensor in csrc/cuda/*.cpp, torch::stable::Tensor in csrc/stable/*_cuda.cpp):
// the device check, the kernels' dtype tag, and a launch's cudaError_t turned into an error
// naming the op (strides into params fields: csrc/params_fill.h). Torch-free: templates over the tensor type,
// errors thrown as std::runtime_error (a Python RuntimeError) with csrc/message.h's strings.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "params_fill.h"
#include "sketchwalk/params.h"
#include "tensor_checks.h"

namespace sketchwalk {

inline void check_launch(cudaError_t err, const char* op) {
  if (err == cudaSuccess) return;
  throw std::runtime_error(std::string("sketchwalk.") + op +
                           ": CUDA launch failed: " + cudaGetErrorString(err));
}

template <typename T>
void check_cuda(const T& t, const char* op, const char* arg) {
  SW_CHECK_ARG(t.is_cuda(), op, arg, "must be a CUDA tensor, got device ", t.device());
}

// The kernels' dtype tag of a 16/32-bit float tensor (the checks have limited the dtype).
template <typename ScalarType>
DType to_dtype(ScalarType t) {
  switch (t) {
    case ScalarType::Half: return DType::kFloat16;
    case ScalarType::BFloat16: return DType::kBFloat16;
    case ScalarType::Float: return DType::kFloat32;
    default: throw std::logic_error("sketchwalk: a CUDA kernel reached with an unchecked dtype");
  }
}

// copy_strides, seq_lens_ptr: csrc/params_fill.h.

}  // namespace sketchwalk
