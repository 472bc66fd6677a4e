// The at::Tensor hooks of the CUDA host wrappers' shared templates (views and allocations;
// csrc/cuda/select_decode_blocks_launch.h, csrc/cuda/attention_launch.h); the
// torch-free helpers both tensor types share are in csrc/cuda/launch_common.h.
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

// The view and allocation hooks for at::Tensor (contiguous_of: csrc/checks.h).
inline at::Tensor narrow_of(tensor_world, const at::Tensor& t, int64_t dim, int64_t start,
                            int64_t length) {
  return t.narrow(dim, start, length);
}
inline at::Tensor empty_of(tensor_world, const at::Tensor& like, at::IntArrayRef shape,
                           at::ScalarType dtype) {
  return at::empty(shape, like.options().dtype(dtype));
}

}  // namespace sketchwalk
