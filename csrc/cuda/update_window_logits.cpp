// update_window_logits_, CUDA host wrapper (ATen): checks (csrc/checks/update_window_logits.h),
// launch (csrc/cuda/update_window_logits_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/update_window_logits.h"
#include "cuda/host.h"
#include "cuda/update_window_logits_launch.h"
#include "ops.h"

namespace sketchwalk {

void update_window_logits_cuda(const at::Tensor& window_logits, const at::Tensor& query_window,
                               const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                               double logit_scale) {
  check_cuda(window_logits, "update_window_logits_", "window_logits");
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const c10::cuda::CUDAGuard guard(window_logits.device());
  launch_update_window_logits(window_logits, query_window, key_blocks, num_blocks, slot,
                              logit_scale, c10::cuda::getCurrentCUDAStream());
}

}  // namespace sketchwalk
