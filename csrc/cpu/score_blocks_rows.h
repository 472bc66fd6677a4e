// The CPU score_blocks kernel on raw pointers, shared by the ATen op (csrc/cpu/score_blocks.cpp)
// and the stable-ABI one (csrc/stable/score_blocks.cpp), which differ only in how they allocate
// and which parallel_for they pass. Per (batch, row): accumulate over query heads the softmax
// over all key blocks of the sketched logits, then normalize the row. Per-head logits live in
// one row-sized scratch buffer only. fp32 logits, fp64 accumulation of the head sum. With
// col_counts the softmax of batch row b runs over its first col_counts[b] columns only (the rest
// stay 0).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sketchwalk {

struct ScoreBlocksCpuArgs {
  const float* q;  // [batch, num_q_heads, rows, sketch_dim], last dim contiguous
  const float* k;  // [batch, num_kv_heads, cols, sketch_dim], last dim contiguous
  float* out;      // [batch, rows, cols], contiguous
  const int* col_counts;  // [batch] or nullptr (every column)
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t batch, num_q_heads, num_kv_heads, rows, cols, sketch_dim;
  float logit_scale;
};

// The kernel's arguments from the op's tensors (at::Tensor or torch::stable::Tensor: both have
// const_data_ptr / mutable_data_ptr, size and stride); col_counts contiguous or nullptr.
template <typename T>
ScoreBlocksCpuArgs score_blocks_cpu_args(const T& q_sketch, const T& k_sketch, const T& out,
                                         const int* col_counts, double logit_scale) {
  ScoreBlocksCpuArgs a{};
  a.q = q_sketch.template const_data_ptr<float>();
  a.k = k_sketch.template const_data_ptr<float>();
  a.out = out.template mutable_data_ptr<float>();
  a.col_counts = col_counts;
  a.q_batch_stride = q_sketch.stride(0), a.q_head_stride = q_sketch.stride(1);
  a.q_row_stride = q_sketch.stride(2);
  a.k_batch_stride = k_sketch.stride(0), a.k_head_stride = k_sketch.stride(1);
  a.k_row_stride = k_sketch.stride(2);
  a.batch = q_sketch.size(0), a.num_q_heads = q_sketch.size(1), a.num_kv_heads = k_sketch.size(1);
  a.rows = q_sketch.size(2), a.cols = k_sketch.size(2), a.sketch_dim = q_sketch.size(3);
  a.logit_scale = static_cast<float>(logit_scale);
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename ParallelFor>
void score_blocks_cpu_rows(const ScoreBlocksCpuArgs& a, ParallelFor&& parallel_for) {
  const int64_t group = a.num_q_heads / a.num_kv_heads;
  parallel_for(int64_t{0}, a.batch * a.rows, int64_t{4}, [&](int64_t begin, int64_t end) {
    std::vector<float> logits(a.cols);
    std::vector<double> acc(a.cols);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / a.rows, i = task % a.rows;
      const int64_t live = a.col_counts != nullptr ? a.col_counts[b] : a.cols;  // softmax columns
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t h = 0; h < a.num_q_heads; ++h) {
        const float* qv = a.q + b * a.q_batch_stride + h * a.q_head_stride + i * a.q_row_stride;
        const float* kbase = a.k + b * a.k_batch_stride + (h / group) * a.k_head_stride;
        float mx = -INFINITY;
        for (int64_t j = 0; j < live; ++j) {
          const float* kv = kbase + j * a.k_row_stride;
          float dot = 0.f;
          for (int64_t d = 0; d < a.sketch_dim; ++d) dot += qv[d] * kv[d];
          logits[j] = dot * a.logit_scale;
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
      for (int64_t j = 0; j < a.cols; ++j) total += acc[j];
      float* dst = a.out + task * a.cols;
      for (int64_t j = 0; j < a.cols; ++j) dst[j] = static_cast<float>(acc[j] / total);
    }
  });
}

}  // namespace sketchwalk
