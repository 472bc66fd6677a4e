// window_block_scores on the CPU (ATen): the checks of csrc/checks/window_block_scores.h and the
// kernel of csrc/cpu/window_block_scores_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/window_block_scores.h"
#include "cpu/window_block_scores_rows.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor window_block_scores_cpu(const at::Tensor& window_logits, int64_t window_fill,
                                   int64_t num_blocks) {
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  auto r = at::empty({window_logits.size(0), num_blocks}, window_logits.options());
  const WindowBlockScoresCpuArgs a = window_block_scores_cpu_args(window_logits, r, window_fill,
                                                                  num_blocks);
  window_block_scores_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  });
  return r;
}

}  // namespace sketchwalk
