// window_block_scores, CUDA host wrapper (ATen): checks and the CUDA batch limit
// (csrc/checks/window_block_scores.h), launch (csrc/cuda/window_block_scores_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/window_block_scores.h"
#include "cuda/host.h"
#include "cuda/window_block_scores_launch.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor window_block_scores_cuda(const at::Tensor& window_logits, int64_t window_fill,
                                    int64_t num_blocks) {
  check_cuda(window_logits, "window_block_scores", "window_logits");
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  check_window_block_scores_cuda_batch(window_logits);
  const c10::cuda::CUDAGuard guard(window_logits.device());
  const int64_t batch = window_logits.size(0), heads = window_logits.size(1);
  auto r = at::empty({batch, num_blocks}, window_logits.options());
  auto row_offset = at::empty({batch * heads * window_fill}, window_logits.options());
  launch_window_block_scores(window_logits, window_fill, num_blocks, r, row_offset,
                             c10::cuda::getCurrentCUDAStream());
  return r;
}

}  // namespace sketchwalk
