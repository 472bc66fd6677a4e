// Small helpers of the ATen CUDA host wrappers (csrc/cuda/*.cpp): the seq_lens pointer; the
// torch-free ones both tensor types share (device check, strides, dtype tag,
// launch errors) are in csrc/cuda/launch_common.h.
#pragma once

#include <ATen/ATen.h>
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

// The view and allocation hooks of csrc/cuda/select_decode_blocks_launch.h for at::Tensor.
inline at::Tensor narrow_of(tensor_world, const at::Tensor& t, int64_t dim, int64_t start,
                            int64_t length) {
  return t.narrow(dim, start, length);
}
inline at::Tensor contiguous_of(tensor_world, const at::Tensor& t) { return t.contiguous(); }
inline at::Tensor empty_of(tensor_world, const at::Tensor& like, at::IntArrayRef shape,
                           at::ScalarType dtype) {
  return at::empty(shape, like.options().dtype(dtype));
}

}  // namespace sketchwalk
