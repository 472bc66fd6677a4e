// score_blocks, CUDA host wrapper: checks (csrc/checks/score_blocks.h), params, launch
// (csrc/cuda/score_blocks.cu).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/score_blocks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
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
  ScoreBlocksParams p{};
  p.q_sketch = q_sketch.data_ptr<float>();
  p.k_sketch = k_sketch.data_ptr<float>();
  p.out = out.data_ptr<float>();
  copy_strides(q_sketch, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  copy_strides(k_sketch, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  p.batch = static_cast<int>(q_sketch.size(0));
  p.num_q_heads = static_cast<int>(q_sketch.size(1));
  p.num_kv_heads = static_cast<int>(k_sketch.size(1));
  p.rows = static_cast<int>(q_sketch.size(2));
  p.cols = static_cast<int>(k_sketch.size(2));
  p.sketch_dim = static_cast<int>(q_sketch.size(3));
  p.logit_scale = static_cast<float>(logit_scale);
  if (num_kv_blocks.has_value()) p.col_counts = num_kv_blocks->data_ptr<int>();
  check_launch(run_score_blocks(p, c10::cuda::getCurrentCUDAStream()), "score_blocks");
  return out;
}

}  // namespace sketchwalk
