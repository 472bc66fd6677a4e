// push_query_window_, one implementation for every device: writes one query sketch into slot
// position % W of the recent-query window, in place (a ring buffer).
// Checks: csrc/checks/push_query_window.h.
#include <ATen/core/Tensor.h>

#include "checks.h"
#include "checks/push_query_window.h"
#include "ops.h"

namespace sketchwalk {

void push_query_window_(const at::Tensor& window, const at::Tensor& q_sketch, int64_t position) {
  check_push_query_window_args(window, q_sketch, position);
  window.select(2, position % window.size(2)).copy_(q_sketch.select(2, 0));
}

}  // namespace sketchwalk
