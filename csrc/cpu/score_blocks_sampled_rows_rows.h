// The CPU score_blocks_sampled_rows kernel on raw pointers (docs/spec.md section 11): for each
// (sequence, KV group, query block), the group's query heads x the sampled rows
// (sketchwalk/sampled_rows.h), each row's causal softmax over every key in float64, summed per
// key block and divided by the row count. Shared by the ATen op
// (csrc/cpu/score_blocks_sampled_rows.cpp) and the stable-ABI one
// (csrc/stable/score_blocks_sampled_rows.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "checks/score_blocks_sampled_rows.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/sampled_rows.h"

namespace sketchwalk {

template <typename scalar_t>
struct SampledRowsCpuArgs {
  const scalar_t* q;  // [batch, num_q_heads, num_queries, head_dim], last dim contiguous
  int64_t q_batch_stride, q_head_stride, q_token_stride;
  const scalar_t* k;  // [batch, num_kv_heads, num_keys, head_dim], last dim contiguous
  int64_t k_batch_stride, k_head_stride, k_token_stride;
  float* scores;  // [batch, num_kv_heads, num_q_blocks, num_k_blocks] contiguous
  int64_t rows;
  double softmax_scale;
};

template <typename scalar_t, typename T>
SampledRowsCpuArgs<scalar_t> sampled_rows_cpu_args(const T& q, const T& k, const T& scores,
                                                   int64_t rows, double softmax_scale) {
  SampledRowsCpuArgs<scalar_t> a{};
  a.q = q.template const_data_ptr<scalar_t>();
  a.q_batch_stride = q.stride(0), a.q_head_stride = q.stride(1), a.q_token_stride = q.stride(2);
  a.k = k.template const_data_ptr<scalar_t>();
  a.k_batch_stride = k.stride(0), a.k_head_stride = k.stride(1), a.k_token_stride = k.stride(2);
  a.scores = scores.template mutable_data_ptr<float>();
  a.rows = rows;
  a.softmax_scale = softmax_scale;
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename scalar_t, typename ParallelFor>
void score_blocks_sampled_rows_cpu_rows(const SampledRowsCpuArgs<scalar_t>& a,
                                        const SampledRowsShape& s, ParallelFor&& parallel_for) {
  constexpr int64_t kBlockSize = kIndexBlockSize;
  const int64_t group = s.num_q_heads / s.num_kv_heads;
  const int64_t key_offset = s.num_keys - s.num_queries;
  const int64_t work = s.batch * s.num_kv_heads * s.num_q_blocks;
  parallel_for(int64_t{0}, work, int64_t{1}, [&](int64_t begin, int64_t end) {
    std::vector<double> logits, qd(s.head_dim), acc(s.num_k_blocks);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t i = w % s.num_q_blocks;
      const int64_t g = (w / s.num_q_blocks) % s.num_kv_heads;
      const int64_t b = w / (s.num_q_blocks * s.num_kv_heads);
      std::fill(acc.begin(), acc.end(), 0.0);
      const scalar_t* kg = a.k + b * a.k_batch_stride + g * a.k_head_stride;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t j = 0; j < a.rows; ++j) {
          const int64_t t = sampled_row_query(static_cast<int>(i), static_cast<int>(j),
                                              static_cast<int>(a.rows),
                                              static_cast<int>(s.num_queries));
          const scalar_t* qr = a.q + b * a.q_batch_stride + h * a.q_head_stride + t * a.q_token_stride;
          for (int64_t d = 0; d < s.head_dim; ++d) qd[d] = static_cast<double>(static_cast<float>(qr[d]));
          const int64_t visible = key_offset + t + 1;  // keys 0 .. key_offset + t
          logits.assign(visible, 0.0);
          // NaN propagates: std::max drops it, so the max is taken with an explicit NaN check.
          double mx = -std::numeric_limits<double>::infinity();
          bool nan = false;
          for (int64_t key = 0; key < visible; ++key) {
            const scalar_t* kr = kg + key * a.k_token_stride;
            double dot = 0.0;
            for (int64_t d = 0; d < s.head_dim; ++d) dot += qd[d] * static_cast<double>(static_cast<float>(kr[d]));
            logits[key] = dot * a.softmax_scale;
            nan = nan || std::isnan(logits[key]);
            mx = std::max(mx, logits[key]);
          }
          if (nan) mx = std::numeric_limits<double>::quiet_NaN();
          double sum = 0.0;
          for (int64_t key = 0; key < visible; ++key) sum += std::exp(logits[key] - mx);
          for (int64_t key = 0; key < visible; ++key) acc[key / kBlockSize] += std::exp(logits[key] - mx) / sum;
        }
      }
      float* out = a.scores + w * s.num_k_blocks;
      const double inv = 1.0 / static_cast<double>(group * a.rows);
      for (int64_t c = 0; c < s.num_k_blocks; ++c) out[c] = static_cast<float>(acc[c] * inv);
    }
  });
}

}  // namespace sketchwalk
