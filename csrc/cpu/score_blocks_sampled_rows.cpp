// score_blocks_sampled_rows on the CPU (ATen): the checks of
// csrc/checks/score_blocks_sampled_rows.h and the kernel of
// csrc/cpu/score_blocks_sampled_rows_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/score_blocks_sampled_rows.h"
#include "cpu/score_blocks_sampled_rows_rows.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor score_blocks_sampled_rows_cpu(const at::Tensor& q, const at::Tensor& k, int64_t rows,
                                         std::optional<double> softmax_scale) {
  const SampledRowsShape s = check_score_blocks_sampled_rows_args(q, k, rows, softmax_scale);
  auto scores = at::empty({s.batch, s.num_kv_heads, s.num_q_blocks, s.num_k_blocks},
                          q.options().dtype(at::kFloat));
  if (scores.numel() == 0) return scores;
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "score_blocks_sampled_rows", [&] {
    const auto a = sampled_rows_cpu_args<scalar_t>(q, k, scores, rows, scale);
    score_blocks_sampled_rows_cpu_rows(a, s, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
      at::parallel_for(begin, end, grain, fn);
    });
  });
  return scores;
}

}  // namespace sketchwalk
