// The CPU score_blocks_keys4 kernel on raw pointers (docs/spec.md section 7, docs/ops.md section
// 9): each query head's softmax over the dequantized keys (include/sketchwalk/keys4.h) in
// float64, summed per key block and kv group. Shared by the ATen op
// (csrc/cpu/score_blocks_keys4.cpp) and the stable-ABI one (csrc/stable/score_blocks_keys4.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "checks/keys4_cache.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

template <typename scalar_t>
struct ScoreBlocksKeys4CpuArgs {
  const scalar_t* q;  // [batch, num_q_heads, 1, head_dim], last dim contiguous
  int64_t q_batch_stride, q_head_stride, num_q_heads;
  const uint8_t* codes;  // the dense or paged cache (Keys4CacheShape), strides below
  int64_t codes_outer_stride, codes_head_stride, codes_token_stride;
  const float* scales;
  int64_t scales_outer_stride, scales_head_stride;
  const int* seq_lens;    // [batch] or nullptr (every row holds the capacity)
  const int* page_table;  // [batch, max_pages] or nullptr (a dense cache)
  int64_t page_table_stride;
  float* mass;  // [batch, num_kv_heads, width] contiguous, zero-filled
  int64_t width;
  double softmax_scale;
};

// The kernel's arguments from the op's tensors (at::Tensor or torch::stable::Tensor); seq_lens
// contiguous or nullptr, page_table or nullptr with its row stride.
template <typename scalar_t, typename T>
ScoreBlocksKeys4CpuArgs<scalar_t> score_blocks_keys4_cpu_args(
    const T& q, const T& codes, const T& scales, const T& mass, const int* seq_lens,
    const int* page_table, int64_t page_table_stride, double softmax_scale) {
  ScoreBlocksKeys4CpuArgs<scalar_t> a{};
  a.q = q.template const_data_ptr<scalar_t>();
  a.q_batch_stride = q.stride(0), a.q_head_stride = q.stride(1), a.num_q_heads = q.size(1);
  a.codes = codes.template const_data_ptr<uint8_t>();
  a.codes_outer_stride = codes.stride(0), a.codes_head_stride = codes.stride(1);
  a.codes_token_stride = codes.stride(2);
  a.scales = scales.template const_data_ptr<float>();
  a.scales_outer_stride = scales.stride(0), a.scales_head_stride = scales.stride(1);
  a.seq_lens = seq_lens;
  a.page_table = page_table;
  a.page_table_stride = page_table_stride;
  a.mass = mass.template mutable_data_ptr<float>();
  a.width = mass.size(2);
  a.softmax_scale = softmax_scale;
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename scalar_t, typename ParallelFor>
void score_blocks_keys4_cpu_rows(const ScoreBlocksKeys4CpuArgs<scalar_t>& a,
                                 const Keys4CacheShape& s, ParallelFor&& parallel_for) {
  constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h
  const int64_t group = a.num_q_heads / s.num_kv_heads;
  parallel_for(int64_t{0}, s.batch * s.num_kv_heads, int64_t{1}, [&](int64_t begin, int64_t end) {
    std::vector<double> logits, qd(s.head_dim), acc(a.width);
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.num_kv_heads, g = bg % s.num_kv_heads;
      const int64_t len = a.seq_lens != nullptr ? a.seq_lens[b] : s.capacity;
      // Token t of this (sequence, kv head): its batch row, or its page (keys4_slot).
      auto slot = [&](int64_t t) {
        return keys4_slot(a.page_table, a.page_table_stride, static_cast<int>(b),
                          static_cast<int>(t));
      };
      std::fill(acc.begin(), acc.end(), 0.0);
      logits.assign(len, 0.0);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const scalar_t* qh = a.q + b * a.q_batch_stride + h * a.q_head_stride;
        for (int64_t d = 0; d < s.head_dim; ++d) {
          qd[d] = static_cast<double>(static_cast<float>(qh[d]));
        }
        double mx = -std::numeric_limits<double>::infinity();
        bool nan = false;
        for (int64_t t = 0; t < len; ++t) {
          const Keys4Slot at = slot(t);
          const uint8_t* row = a.codes + at.outer * a.codes_outer_stride +
                               g * a.codes_head_stride + at.slot * a.codes_token_stride;
          double dot = 0.0;
          for (int64_t i = 0; i < s.head_dim / 2; ++i) {
            dot += qd[2 * i] * static_cast<double>(static_cast<int>(row[i] & 15) - kKeys4Offset);
            dot += qd[2 * i + 1] *
                   static_cast<double>(static_cast<int>(row[i] >> 4) - kKeys4Offset);
          }
          const float row_scale =
              a.scales[at.outer * a.scales_outer_stride + g * a.scales_head_stride + at.slot];
          logits[t] = a.softmax_scale * static_cast<double>(row_scale) * dot;
          nan |= std::isnan(logits[t]);
          mx = std::fmax(mx, logits[t]);
        }
        if (nan) {  // one documented behaviour: a NaN logit makes the group's masses NaN
          std::fill(acc.begin(), acc.begin() + (len + kBlockSize - 1) / kBlockSize,
                    std::numeric_limits<double>::quiet_NaN());
          continue;
        }
        double total = 0.0;
        for (int64_t t = 0; t < len; ++t) total += std::exp(logits[t] - mx);
        for (int64_t t = 0; t < len; ++t) acc[t / kBlockSize] += std::exp(logits[t] - mx) / total;
      }
      float* out = a.mass + bg * a.width;
      for (int64_t j = 0; j < a.width; ++j) out[j] = static_cast<float>(acc[j]);
    }
  });
}

}  // namespace sketchwalk
