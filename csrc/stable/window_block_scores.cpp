// window_block_scores on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/window_block_scores.h) and kernel (csrc/cpu/window_block_scores_rows.h),
// allocated and parallelized through the stable C shim.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/window_block_scores.h"
#include "cpu/window_block_scores_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor window_block_scores_cpu(Tensor window_logits, int64_t window_fill, int64_t num_blocks) {
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  const int64_t shape[] = {window_logits.size(0), num_blocks};
  Tensor r = torch::stable::empty(shape, torch::headeronly::ScalarType::Float, std::nullopt,
                                  window_logits.device());
  const WindowBlockScoresCpuArgs a = window_block_scores_cpu_args(window_logits, r, window_fill,
                                                                  num_blocks);
  window_block_scores_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
  return r;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("window_block_scores", TORCH_BOX(&sketchwalk::stable::window_block_scores_cpu));
}
