// Small helpers of the ATen CUDA host wrappers (csrc/cuda/*.cpp): the seq_lens pointer and the
// sketch launch; the torch-free ones both tensor types share (device check, strides, dtype tag,
// launch errors) are in csrc/cuda/launch_common.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <cuda_runtime.h>

#include <optional>
#include <type_traits>

#include "checks.h"
#include "cuda/launch_common.h"
#include "ops.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

// The device pointer of the optional int32 seq_lens (nullptr when absent); `holder` keeps its
// contiguous copy alive until the launch.
inline const int* seq_lens_ptr(const std::optional<at::Tensor>& seq_lens, at::Tensor& holder) {
  if (!seq_lens.has_value()) return nullptr;
  holder = seq_lens->contiguous();
  return holder.data_ptr<int>();
}

// The sketch kernel on x (checked into `s` by check_hadamard_sketch_args; signs and coords
// contiguous), writing row (b, h, block) to out + b * out_batch_stride + h * out_head_stride
// + block * out_block_stride; blend_count > 0 folds it into a running mean (params.h).
void launch_hadamard_sketch(const at::Tensor& x, const SketchShape& s, const at::Tensor& signs,
                            const at::Tensor& coords, float* out, int64_t out_batch_stride,
                            int64_t out_head_stride, int64_t out_block_stride, int blend_count,
                            cudaStream_t stream, const char* op);

}  // namespace sketchwalk
