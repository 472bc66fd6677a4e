// The ATen hooks of the shared checks (csrc/tensor_checks.h, declared in csrc/checks.h):
// int_range, host_contiguous, read_values; the checks themselves are templates in
// csrc/tensor_checks.h and csrc/checks/<op>.h.
#include "checks.h"

#include <ATen/ATen.h>

#include <climits>
#include <cmath>

#include "sketchwalk/block_index.h"

namespace sketchwalk {

std::pair<int64_t, int64_t> int_range(tensor_world, const at::Tensor& t) {
  auto [lo, hi] = at::aminmax(t);
  return {lo.item<int64_t>(), hi.item<int64_t>()};
}

at::Tensor host_contiguous(tensor_world, const at::Tensor& t) {
  return t.to(at::kCPU).contiguous();
}

bool read_values(bool validate, const at::Tensor& t) {
  return validate && !current_stream_is_capturing(t);
}

#ifndef SKETCHWALK_WITH_CUDA
bool current_stream_is_capturing(const at::Tensor&) { return false; }
#endif

}  // namespace sketchwalk
