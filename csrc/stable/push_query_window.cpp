// push_query_window_ on PyTorch's stable ABI (docs/stable_abi.md, step 1 of the migration): the
// first op whose code binds to no torch C++ symbol, only to the stable C shim, so that one
// binary would serve several torch minor versions once every op is moved. One implementation for
// every device (CompositeExplicitAutograd): writes one query sketch into slot position % W of
// the recent-query window, in place (a ring buffer). Compiled with TORCH_TARGET_VERSION
// (CMakeLists.txt): the ATen / c10 headers refuse to compile here; the checks are the ATen op's
// (csrc/checks/push_query_window.h, a template over the tensor type), messages and all.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/push_query_window.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void push_query_window(Tensor window, Tensor q_sketch, int64_t position) {
  check_push_query_window_args(window, q_sketch, position);
  Tensor slot = torch::stable::select(window, 2, position % window.size(2));
  torch::stable::copy_(slot, torch::stable::select(q_sketch, 2, 0));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CompositeExplicitAutograd, m) {
  m.impl("push_query_window_", TORCH_BOX(&sketchwalk::stable::push_query_window));
}
