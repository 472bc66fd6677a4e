// window_block_scores, CUDA host wrapper: checks (csrc/checks/window_block_scores.cpp), the
// CUDA-only batch limit, params, launch (csrc/cuda/window_block_scores.cu).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor window_block_scores_cuda(const at::Tensor& window_logits, int64_t window_fill,
                                    int64_t num_blocks) {
  constexpr const char* op = "window_block_scores";
  check_cuda(window_logits, op, "window_logits");
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  SW_CHECK_ARG(window_logits.size(0) <= kMaxGridYZ, op, "window_logits",
               "must have batch <= ", kMaxGridYZ, " on CUDA, got ", window_logits.size(0));
  const c10::cuda::CUDAGuard guard(window_logits.device());
  const int64_t batch = window_logits.size(0), heads = window_logits.size(1);
  auto r = at::empty({batch, num_blocks}, window_logits.options());
  // Scratch: one logsumexp per (batch, head, slot).
  auto row_offset = at::empty({batch * heads * window_fill}, window_logits.options());
  WindowScoresParams p{};
  p.logits = window_logits.data_ptr<float>();
  p.row_offset = row_offset.data_ptr<float>();
  p.r = r.data_ptr<float>();
  copy_strides(window_logits, p.l_batch_stride, p.l_head_stride, p.l_row_stride);
  p.batch = static_cast<int>(batch);
  p.num_q_heads = static_cast<int>(heads);
  p.window_fill = static_cast<int>(window_fill);
  p.num_blocks = static_cast<int>(num_blocks);
  check_launch(run_window_block_scores(p, c10::cuda::getCurrentCUDAStream()), op);
  return r;
}

}  // namespace sketchwalk
