// update_block_matrix_, CUDA host wrapper: checks (csrc/checks/update_block_matrix.h), launch
// (csrc/cuda/update_block_matrix.cu).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/update_block_matrix.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

void update_block_matrix_cuda(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                              int64_t block_size) {
  constexpr const char* op = "update_block_matrix_";
  check_cuda(transition, op, "transition");
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const c10::cuda::CUDAGuard guard(transition.device());
  const auto r_c = r.contiguous();
  const int64_t n = transition.size(1);
  const float alpha = 1.0f / static_cast<float>((num_keys - 1) % block_size + 1);
  check_launch(run_update_block_matrix(transition.data_ptr<float>(), transition.stride(0),
                                       transition.stride(1), r_c.data_ptr<float>(),
                                       static_cast<int>(transition.size(0)), static_cast<int>(n),
                                       alpha, c10::cuda::getCurrentCUDAStream()),
               op);
}

}  // namespace sketchwalk
