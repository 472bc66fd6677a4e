// score_blocks_sampled_rows on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/score_blocks_sampled_rows.h) and kernel
// (csrc/cpu/score_blocks_sampled_rows_rows.h), with the dtype dispatched by hand over the
// header-only Half / BFloat16 and the stable parallel_for.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <optional>

#include "checks/score_blocks_sampled_rows.h"
#include "cpu/score_blocks_sampled_rows_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

template <typename scalar_t>
void score(const Tensor& q, const Tensor& k, const Tensor& scores, int64_t rows,
           const SampledRowsShape& s, double scale) {
  const auto a = sampled_rows_cpu_args<scalar_t>(q, k, scores, rows, scale);
  score_blocks_sampled_rows_cpu_rows(a, s, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
}

Tensor score_blocks_sampled_rows_cpu(Tensor q, Tensor k, int64_t rows,
                                     std::optional<double> softmax_scale) {
  const SampledRowsShape s = check_score_blocks_sampled_rows_args(q, k, rows, softmax_scale);
  const int64_t shape[] = {s.batch, s.num_kv_heads, s.num_q_blocks, s.num_k_blocks};
  using torch::headeronly::ScalarType;
  Tensor scores = torch::stable::new_empty(q, shape, ScalarType::Float);
  if (scores.numel() == 0) return scores;
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  switch (q.scalar_type()) {
    case ScalarType::Float: score<float>(q, k, scores, rows, s, scale); break;
    case ScalarType::Half: score<torch::headeronly::Half>(q, k, scores, rows, s, scale); break;
    case ScalarType::BFloat16:
      score<torch::headeronly::BFloat16>(q, k, scores, rows, s, scale);
      break;
    default: break;  // refused by the checks above
  }
  return scores;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("score_blocks_sampled_rows", TORCH_BOX(&sketchwalk::stable::score_blocks_sampled_rows_cpu));
}
