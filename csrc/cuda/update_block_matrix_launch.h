// update_block_matrix_'s CUDA launch from checked tensors (check_update_block_matrix_args), for
// either tensor type: the ATen wrapper (csrc/cuda/update_block_matrix.cpp), the stable-ABI one
// (csrc/stable/update_block_matrix_cuda.cpp) and the fused decode selection. The caller holds
// the device guard; r_contiguous is r made contiguous.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

template <typename T>
void launch_update_block_matrix(const T& transition, const T& r_contiguous, int64_t num_keys,
                                int64_t block_size, cudaStream_t stream) {
  // The newest block's blend weight: 1 / (tokens in it so far), docs/spec.md section 6.
  const float alpha = 1.0f / static_cast<float>((num_keys - 1) % block_size + 1);
  check_launch(run_update_block_matrix(transition.template mutable_data_ptr<float>(),
                                       transition.stride(0), transition.stride(1),
                                       r_contiguous.template const_data_ptr<float>(),
                                       static_cast<int>(transition.size(0)),
                                       static_cast<int>(transition.size(1)), alpha, stream),
               "update_block_matrix_");
}

}  // namespace sketchwalk
