// Small helpers of the ATen CUDA host wrappers (csrc/cuda/*.cpp): the seq_lens pointer; the
// torch-free ones both tensor types share (device check, strides, dtype tag,
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

}  // namespace sketchwalk
