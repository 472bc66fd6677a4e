// update_block_matrix_, CUDA host wrapper (ATen): checks (csrc/checks/update_block_matrix.h),
// launch (csrc/cuda/update_block_matrix_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/update_block_matrix.h"
#include "cuda/host.h"
#include "cuda/update_block_matrix_launch.h"
#include "ops.h"

namespace sketchwalk {

void update_block_matrix_cuda(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                              int64_t block_size) {
  constexpr const char* op = "update_block_matrix_";
  check_cuda(transition, op, "transition");
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const c10::cuda::CUDAGuard guard(transition.device());
  launch_update_block_matrix(transition, r.contiguous(), num_keys, block_size,
                             c10::cuda::getCurrentCUDAStream());
}

}  // namespace sketchwalk
