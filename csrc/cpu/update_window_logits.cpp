// update_window_logits_ on the CPU (ATen): the checks of csrc/checks/update_window_logits.h and
// the kernel of csrc/cpu/update_window_logits_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/update_window_logits.h"
#include "cpu/update_window_logits_rows.h"
#include "ops.h"

namespace sketchwalk {

void update_window_logits_cpu(const at::Tensor& window_logits, const at::Tensor& query_window,
                              const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                              double logit_scale) {
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const UpdateWindowLogitsCpuArgs a = update_window_logits_cpu_args(
      window_logits, query_window, key_blocks, num_blocks, slot, logit_scale);
  update_window_logits_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  });
}

}  // namespace sketchwalk
