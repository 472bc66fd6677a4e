// The at::Tensor hooks of the CUDA host wrappers' shared templates (views, contiguous copies and
// allocations; csrc/cuda/select_decode_blocks_launch.h, launch_common.h's seq_lens_ptr); the
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

// The view, copy and allocation hooks for at::Tensor.
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
