// Small helpers of the CUDA host wrappers (csrc/cuda/*.cpp): dtype mapping, tensor strides into
// params fields, the seq_lens pointer, the device check and turning a launch's cudaError_t into
// an error naming the op.
#pragma once

#include <ATen/core/Tensor.h>
#include <cuda_runtime.h>

#include <optional>
#include <type_traits>

#include "checks.h"
#include "ops.h"
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

// Copies t.stride(0), t.stride(1), ... into the given params fields, in that order (strides
// in elements, as params.h wants them), e.g. copy_strides(q, p.q_batch_stride, p.q_head_stride,
// p.q_token_stride).
template <typename... Fields>
void copy_strides(const at::Tensor& t, Fields&... fields) {
  static_assert((std::is_same_v<Fields, int64_t> && ...), "params strides are int64_t");
  int64_t dim = 0;
  ((fields = t.stride(dim++)), ...);
}

// The device pointer of the optional int32 seq_lens (nullptr when absent); `holder` keeps its
// contiguous copy alive until the launch.
inline const int* seq_lens_ptr(const std::optional<at::Tensor>& seq_lens, at::Tensor& holder) {
  if (!seq_lens.has_value()) return nullptr;
  holder = seq_lens->contiguous();
  return holder.data_ptr<int>();
}

inline void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, "sketchwalk.", op, ": CUDA launch failed: ", cudaGetErrorString(err));
}

inline void check_cuda(const at::Tensor& t, const char* op, const char* arg) {
  SW_CHECK_ARG(t.is_cuda(), op, arg, "must be a CUDA tensor, got device ", t.device());
}

// The sketch kernel on x (checked into `s` by check_hadamard_sketch_args; signs and coords
// contiguous), writing row (b, h, block) to out + b * out_batch_stride + h * out_head_stride
// + block * out_block_stride; blend_count > 0 folds it into a running mean (params.h).
void launch_hadamard_sketch(const at::Tensor& x, const SketchShape& s, const at::Tensor& signs,
                            const at::Tensor& coords, float* out, int64_t out_batch_stride,
                            int64_t out_head_stride, int64_t out_block_stride, int blend_count,
                            cudaStream_t stream, const char* op);

}  // namespace sketchwalk
