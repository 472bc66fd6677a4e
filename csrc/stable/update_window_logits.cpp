// update_window_logits_ on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/update_window_logits.h) and kernel (csrc/cpu/update_window_logits_rows.h), with
// the stable parallel_for.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/update_window_logits.h"
#include "cpu/update_window_logits_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void update_window_logits_cpu(Tensor window_logits, Tensor query_window, Tensor key_blocks,
                              int64_t num_blocks, int64_t slot, double logit_scale) {
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const UpdateWindowLogitsCpuArgs a = update_window_logits_cpu_args(
      window_logits, query_window, key_blocks, num_blocks, slot, logit_scale);
  update_window_logits_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("update_window_logits_", TORCH_BOX(&sketchwalk::stable::update_window_logits_cpu));
}
