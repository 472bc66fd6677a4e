// CPU score_blocks (ATen): checks (csrc/checks/score_blocks.h), the output, and the kernel of
// csrc/cpu/score_blocks_rows.h. With SKETCHWALK_STABLE_ABI_OPS the stable-ABI version
// (csrc/stable/score_blocks.cpp) is registered instead (csrc/registration.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/score_blocks.h"
#include "cpu/score_blocks_rows.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor score_blocks_cpu(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                            double logit_scale, const std::optional<at::Tensor>& num_kv_blocks,
                            bool validate) {
  (void)validate;  // always validated on the CPU
  check_score_blocks_args(q_sketch, k_sketch, logit_scale, num_kv_blocks, true);
  auto out = at::empty({q_sketch.size(0), q_sketch.size(2), k_sketch.size(2)}, q_sketch.options());
  if (out.numel() == 0) return out;
  at::Tensor counts;
  if (num_kv_blocks.has_value()) counts = num_kv_blocks->contiguous();
  const auto a = score_blocks_cpu_args(q_sketch, k_sketch, out,
                                       counts.defined() ? counts.data_ptr<int>() : nullptr,
                                       logit_scale);
  score_blocks_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  });
  return out;
}

}  // namespace sketchwalk
