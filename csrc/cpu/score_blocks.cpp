// CPU score_blocks: per (batch, row) accumulate over query heads the softmax over all key
// blocks of the sketched logits, then normalize the row. Per-head logits live in one
// row-sized scratch buffer only. fp32 logits, fp64 accumulation of the head sum. With
// num_kv_blocks the softmax of batch row b runs over its first num_kv_blocks[b] columns only
// (the rest stay 0).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor score_blocks_cpu(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                            double logit_scale, const std::optional<at::Tensor>& num_kv_blocks,
                            bool validate) {
  (void)validate;  // always validated on the CPU
  check_score_blocks_args(q_sketch, k_sketch, logit_scale, num_kv_blocks, true);
  const int64_t batch = q_sketch.size(0), hq = q_sketch.size(1), rows = q_sketch.size(2);
  const int64_t hkv = k_sketch.size(1), cols = k_sketch.size(2), m = q_sketch.size(3);
  const int64_t group = hq / hkv;
  auto out = at::empty({batch, rows, cols}, q_sketch.options());
  if (out.numel() == 0) return out;
  const float* qp = q_sketch.data_ptr<float>();
  const float* kp = k_sketch.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t qb = q_sketch.stride(0), qh = q_sketch.stride(1), qr = q_sketch.stride(2);
  const int64_t kb = k_sketch.stride(0), kh = k_sketch.stride(1), kr = k_sketch.stride(2);
  const float c = static_cast<float>(logit_scale);
  at::Tensor counts;
  if (num_kv_blocks.has_value()) counts = num_kv_blocks->contiguous();
  const int* count_p = num_kv_blocks.has_value() ? counts.data_ptr<int>() : nullptr;
  at::parallel_for(0, batch * rows, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> logits(cols);
    std::vector<double> acc(cols);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / rows, i = task % rows;
      const int64_t live = count_p != nullptr ? count_p[b] : cols;  // columns of the softmax
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t h = 0; h < hq; ++h) {
        const float* qv = qp + b * qb + h * qh + i * qr;
        const float* kbase = kp + b * kb + (h / group) * kh;
        float mx = -INFINITY;
        for (int64_t j = 0; j < live; ++j) {
          const float* kv = kbase + j * kr;
          float dot = 0.f;
          for (int64_t d = 0; d < m; ++d) dot += qv[d] * kv[d];
          logits[j] = dot * c;
          mx = std::max(mx, logits[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < live; ++j) {
          logits[j] = std::exp(logits[j] - mx);
          sum += logits[j];
        }
        for (int64_t j = 0; j < live; ++j) acc[j] += logits[j] / sum;
      }
      double total = 0.0;
      for (int64_t j = 0; j < cols; ++j) total += acc[j];
      float* dst = op + task * cols;
      for (int64_t j = 0; j < cols; ++j) dst[j] = static_cast<float>(acc[j] / total);
    }
  });
  return out;
}

}  // namespace sketchwalk
