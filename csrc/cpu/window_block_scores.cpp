// window_block_scores on the CPU (docs/ops.md section 7): the decode block scores r from the
// cached window logits, the softmax of every live row averaged over heads and slots. Plain ATen
// on float32; the CUDA version (csrc/cuda/window_block_scores.cu) computes the same.
#include <ATen/ATen.h>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor window_block_scores_cpu(const at::Tensor& window_logits, int64_t window_fill,
                                   int64_t num_blocks) {
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  const auto live = window_logits.narrow(2, 0, window_fill).narrow(3, 0, num_blocks);
  const double rows = static_cast<double>(window_logits.size(1) * window_fill);
  return at::softmax(live, -1).sum({1, 2}).div_(rows);
}

}  // namespace sketchwalk
