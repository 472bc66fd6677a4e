// score_blocks, CUDA host wrapper (ATen): checks (csrc/checks/score_blocks.h), launch
// (csrc/cuda/score_blocks_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/score_blocks.h"
#include "cuda/host.h"
#include "cuda/score_blocks_launch.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor score_blocks_cuda(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                             double logit_scale, const std::optional<at::Tensor>& num_kv_blocks,
                             bool validate) {
  check_cuda(q_sketch, "score_blocks", "q_sketch");
  check_score_blocks_args(q_sketch, k_sketch, logit_scale, num_kv_blocks, validate);
  const c10::cuda::CUDAGuard guard(q_sketch.device());
  auto out = at::empty({q_sketch.size(0), q_sketch.size(2), k_sketch.size(2)}, q_sketch.options());
  if (out.numel() == 0) return out;
  launch_score_blocks(q_sketch, k_sketch, out,
                      num_kv_blocks.has_value() ? num_kv_blocks->data_ptr<int>() : nullptr,
                      logit_scale, c10::cuda::getCurrentCUDAStream());
  return out;
}

}  // namespace sketchwalk
