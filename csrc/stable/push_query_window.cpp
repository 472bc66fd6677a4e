// push_query_window_ on PyTorch's stable ABI (docs/stable_abi.md, step 1 of the migration): the
// first op whose code binds to no torch C++ symbol, only to the stable C shim, so that one
// binary would serve several torch minor versions once every op is moved. One implementation for
// every device (CompositeExplicitAutograd): writes one query sketch into slot position % W of
// the recent-query window, in place (a ring buffer). Compiled with TORCH_TARGET_VERSION
// (CMakeLists.txt): the ATen / c10 headers refuse to compile here, so the checks are spelled
// with the stable API; their messages follow csrc/checks.h's format.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "message.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

constexpr const char* kOp = "push_query_window_";

// "sketchwalk.<op>: argument '<arg>' <what>" (SW_CHECK_ARG's format, csrc/checks.h), built by
// csrc/message.h: no std::ostream, whose use here is the likely cause of this op's crash on
// the GPU machine (docs/stable_abi.md).
template <typename... Parts>
[[noreturn]] void fail(const char* arg, const Parts&... what) {
  throw std::runtime_error(
      sketchwalk::detail::message("sketchwalk.", kOp, ": argument '", arg, "' ", what...));
}

std::string shape_of(const Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

void check_float_rank4(const Tensor& t, const char* arg, const char* dims) {
  if (t.dim() != 4) fail(arg, "must have 4 dims ", dims, ", got ", t.dim(), " dims");
  if (t.scalar_type() != torch::headeronly::ScalarType::Float)
    fail(arg, "must have dtype float32");
}

void push_query_window(Tensor window, Tensor q_sketch, int64_t position) {
  check_float_rank4(window, "window", "[batch, heads, W, sketch_dim]");
  check_float_rank4(q_sketch, "q_sketch", "[batch, heads, 1, sketch_dim]");
  if (!(q_sketch.device() == window.device()))
    fail("q_sketch", "must be on the device of 'window'");
  if (window.size(2) < 1) fail("window", "must have W >= 1 slots, got shape ", shape_of(window));
  if (q_sketch.size(0) != window.size(0) || q_sketch.size(1) != window.size(1) ||
      q_sketch.size(2) != 1 || q_sketch.size(3) != window.size(3)) {
    fail("q_sketch", "must be [", window.size(0), ", ", window.size(1), ", 1, ", window.size(3),
         "], got ", shape_of(q_sketch));
  }
  if (position < 0) fail("position", "must be >= 0, got ", position);
  Tensor slot = torch::stable::select(window, 2, position % window.size(2));
  torch::stable::copy_(slot, torch::stable::select(q_sketch, 2, 0));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CompositeExplicitAutograd, m) {
  m.impl("push_query_window_", TORCH_BOX(&sketchwalk::stable::push_query_window));
}
