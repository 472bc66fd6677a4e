// The CPU update_window_logits_ kernel on raw pointers (docs/ops.md section 7), shared by the
// ATen op (csrc/cpu/update_window_logits.cpp) and the stable-ABI one
// (csrc/stable/update_window_logits.cpp): the cached sketched logits of the recent queries
// against the key blocks, c * <q[b, h, s], k[b, h / g, j]>, for rows [row_begin, row_end) and
// blocks [0, num_blocks), plus, with refresh_last_column, the open block's column of every slot.
// Dot products in float64, stored as float32 (the CUDA kernel, csrc/cuda/update_window_logits.cu,
// accumulates in float32).
#pragma once

#include <cstdint>

namespace sketchwalk {

struct UpdateWindowLogitsCpuArgs {
  float* logits;  // [batch, num_q_heads, W, capacity], last dim contiguous
  int64_t l_batch_stride, l_head_stride, l_row_stride;
  const float* query_window;  // [batch, num_q_heads, W, m], last dim contiguous
  int64_t q_batch_stride, q_head_stride, q_row_stride;
  const float* key_blocks;  // [batch, num_kv_heads, capacity, m], last dim contiguous
  int64_t k_batch_stride, k_head_stride, k_row_stride;
  int64_t batch, num_q_heads, num_kv_heads, window, num_blocks, sketch_dim;
  int64_t row_begin, row_end;
  bool refresh_last_column;
  double logit_scale;
};

template <typename T>
UpdateWindowLogitsCpuArgs update_window_logits_cpu_args(const T& window_logits,
                                                        const T& query_window,
                                                        const T& key_blocks, int64_t num_blocks,
                                                        int64_t slot, double logit_scale) {
  UpdateWindowLogitsCpuArgs a{};
  a.logits = window_logits.template mutable_data_ptr<float>();
  a.l_batch_stride = window_logits.stride(0), a.l_head_stride = window_logits.stride(1);
  a.l_row_stride = window_logits.stride(2);
  a.query_window = query_window.template const_data_ptr<float>();
  a.q_batch_stride = query_window.stride(0), a.q_head_stride = query_window.stride(1);
  a.q_row_stride = query_window.stride(2);
  a.key_blocks = key_blocks.template const_data_ptr<float>();
  a.k_batch_stride = key_blocks.stride(0), a.k_head_stride = key_blocks.stride(1);
  a.k_row_stride = key_blocks.stride(2);
  a.batch = window_logits.size(0), a.num_q_heads = window_logits.size(1);
  a.num_kv_heads = key_blocks.size(1), a.window = window_logits.size(2);
  a.num_blocks = num_blocks, a.sketch_dim = query_window.size(3);
  a.row_begin = slot < 0 ? 0 : slot;
  a.row_end = slot < 0 ? a.window : slot + 1;
  a.refresh_last_column = slot >= 0;
  a.logit_scale = logit_scale;
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename ParallelFor>
void update_window_logits_cpu_rows(const UpdateWindowLogitsCpuArgs& a,
                                   ParallelFor&& parallel_for) {
  const int64_t group = a.num_q_heads / a.num_kv_heads;
  parallel_for(int64_t{0}, a.batch * a.num_q_heads, int64_t{1}, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / a.num_q_heads, h = bh % a.num_q_heads;
      const float* k = a.key_blocks + b * a.k_batch_stride + (h / group) * a.k_head_stride;
      auto logit = [&](int64_t row, int64_t j) {
        const float* q = a.query_window + b * a.q_batch_stride + h * a.q_head_stride +
                         row * a.q_row_stride;
        const float* kj = k + j * a.k_row_stride;
        double dot = 0.0;
        for (int64_t d = 0; d < a.sketch_dim; ++d) dot += static_cast<double>(q[d]) * kj[d];
        float* out = a.logits + b * a.l_batch_stride + h * a.l_head_stride + row * a.l_row_stride;
        out[j] = static_cast<float>(a.logit_scale * dot);
      };
      for (int64_t row = a.row_begin; row < a.row_end; ++row) {
        for (int64_t j = 0; j < a.num_blocks; ++j) logit(row, j);
      }
      if (a.refresh_last_column) {  // the open block's column, every slot
        for (int64_t row = 0; row < a.window; ++row) logit(row, a.num_blocks - 1);
      }
    }
  });
}

}  // namespace sketchwalk
