// Small helpers of the CUDA host wrappers (csrc/cuda_*.cpp): dtype mapping, the device check
// and turning a launch's cudaError_t into an error naming the op.
#pragma once

#include <ATen/core/Tensor.h>
#include <cuda_runtime.h>

#include "checks.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

inline DType to_dtype(at::ScalarType t) {
  switch (t) {
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    case at::kFloat: return DType::kFloat32;
    default: TORCH_CHECK(false, "sketchwalk: unsupported dtype ", c10::toString(t));
  }
}

inline void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "sketchwalk.", op, ": CUDA launch failed: ", cudaGetErrorString(err));
}

inline void check_cuda(const at::Tensor& t, const char* op, const char* arg) {
  SW_CHECK_ARG(t.is_cuda(), op, arg, "must be a CUDA tensor, got device ", t.device());
}

}  // namespace sketchwalk
