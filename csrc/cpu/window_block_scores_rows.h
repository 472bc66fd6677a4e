// The CPU window_block_scores kernel on raw pointers (docs/ops.md section 7), shared by the ATen
// op (csrc/cpu/window_block_scores.cpp) and the stable-ABI one
// (csrc/stable/window_block_scores.cpp): the decode block scores r[b, j] from the cached window
// logits, the softmax over blocks [0, num_blocks) of every live row (slots [0, window_fill),
// every head) averaged over heads and slots, in float64 (a row holding a NaN, or only -inf,
// gives NaN, as a softmax does).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace sketchwalk {

struct WindowBlockScoresCpuArgs {
  const float* logits;  // [batch, num_q_heads, W, capacity], last dim contiguous
  int64_t l_batch_stride, l_head_stride, l_row_stride;
  int64_t batch, num_q_heads, window_fill, num_blocks;
  float* r;  // [batch, num_blocks] contiguous
};

template <typename T>
WindowBlockScoresCpuArgs window_block_scores_cpu_args(const T& window_logits, const T& r,
                                                      int64_t window_fill, int64_t num_blocks) {
  WindowBlockScoresCpuArgs a{};
  a.logits = window_logits.template const_data_ptr<float>();
  a.l_batch_stride = window_logits.stride(0), a.l_head_stride = window_logits.stride(1);
  a.l_row_stride = window_logits.stride(2);
  a.batch = window_logits.size(0), a.num_q_heads = window_logits.size(1);
  a.window_fill = window_fill, a.num_blocks = num_blocks;
  a.r = r.template mutable_data_ptr<float>();
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename ParallelFor>
void window_block_scores_cpu_rows(const WindowBlockScoresCpuArgs& a, ParallelFor&& parallel_for) {
  const double rows = static_cast<double>(a.num_q_heads * a.window_fill);
  parallel_for(int64_t{0}, a.batch, int64_t{1}, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(a.num_blocks);
    for (int64_t b = begin; b < end; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t h = 0; h < a.num_q_heads; ++h) {
        for (int64_t s = 0; s < a.window_fill; ++s) {
          const float* row =
              a.logits + b * a.l_batch_stride + h * a.l_head_stride + s * a.l_row_stride;
          double mx = -std::numeric_limits<double>::infinity();
          bool nan = false;
          for (int64_t j = 0; j < a.num_blocks; ++j) {
            nan |= std::isnan(row[j]);
            mx = std::max(mx, static_cast<double>(row[j]));
          }
          // NaN logits, or a max of +-inf (exp(inf - inf) is NaN): the softmax row is NaN.
          if (nan || std::isinf(mx)) {
            for (int64_t j = 0; j < a.num_blocks; ++j) {
              acc[j] = std::numeric_limits<double>::quiet_NaN();
            }
            continue;
          }
          double total = 0.0;
          for (int64_t j = 0; j < a.num_blocks; ++j) total += std::exp(row[j] - mx);
          for (int64_t j = 0; j < a.num_blocks; ++j) acc[j] += std::exp(row[j] - mx) / total;
        }
      }
      float* out = a.r + b * a.num_blocks;
      for (int64_t j = 0; j < a.num_blocks; ++j) out[j] = static_cast<float>(acc[j] / rows);
    }
  });
}

}  // namespace sketchwalk
