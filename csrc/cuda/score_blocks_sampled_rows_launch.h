// score_blocks_sampled_rows' CUDA params from checked tensors
// (check_score_blocks_sampled_rows_args and _cuda_limits gave `s`), for either tensor type: the
// ATen wrapper (csrc/cuda/score_blocks_sampled_rows.cpp) and the stable-ABI one
// (csrc/stable/score_blocks_sampled_rows_cuda.cpp) fill them the same way, then call
// run_score_sampled_rows.
#pragma once

#include <cstdint>
#include <optional>

#include "checks/score_blocks_sampled_rows.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"
#include "tensor_checks.h"

namespace sketchwalk {

// q, k: 16-byte aligned (sampled_rows_aligned); scores [batch, num_kv_heads, num_q_blocks,
// num_k_blocks] float32 contiguous.
template <typename T>
SampledRowsParams sampled_rows_params(const T& q, const T& k, const T& scores, int64_t rows,
                                      const SampledRowsShape& s,
                                      std::optional<double> softmax_scale) {
  SampledRowsParams p{};
  p.q = q.const_data_ptr();
  p.k = k.const_data_ptr();
  p.scores = scores.template mutable_data_ptr<float>();
  copy_strides(q, p.q_batch_stride, p.q_head_stride, p.q_token_stride);
  copy_strides(k, p.k_batch_stride, p.k_head_stride, p.k_token_stride);
  p.batch = static_cast<int>(s.batch);
  p.num_q_heads = static_cast<int>(s.num_q_heads);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.head_dim = static_cast<int>(s.head_dim);
  p.num_queries = static_cast<int>(s.num_queries);
  p.num_keys = static_cast<int>(s.num_keys);
  p.rows = static_cast<int>(rows);
  p.num_q_blocks = static_cast<int>(s.num_q_blocks);
  p.num_k_blocks = static_cast<int>(s.num_k_blocks);
  p.softmax_scale = static_cast<float>(softmax_scale_or_default(softmax_scale, s.head_dim));
  return p;
}

}  // namespace sketchwalk
