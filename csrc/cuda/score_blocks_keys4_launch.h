// score_blocks_keys4's CUDA params from checked tensors (check_score_blocks_keys4_args and
// check_score_blocks_keys4_cuda_limits gave `s`), for either tensor type: the ATen wrapper
// (csrc/cuda/score_blocks_keys4.cpp) and the stable-ABI one
// (csrc/stable/score_blocks_keys4_cuda.cpp) fill them the same way, then allocate the workspace
// (score_keys4_workspace_floats) and call run_score_keys4.
#pragma once

#include <cstdint>
#include <optional>

#include "checks/keys4_cache.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"
#include "tensor_checks.h"

namespace sketchwalk {

// Whether the kernel may read q as is: it reads 16 bytes at a time, so the data and the batch
// and head strides must be 16-byte aligned (else the caller passes an aligned copy).
template <typename T>
bool score_blocks_keys4_q_aligned(const T& q) {
  return reinterpret_cast<uintptr_t>(q.const_data_ptr()) % 16 == 0 && q.stride(0) % 8 == 0 &&
         q.stride(1) % 8 == 0;
}

// q: aligned (score_blocks_keys4_q_aligned); mass [batch, num_kv_heads, width] float32
// contiguous; seq_lens: the contiguous int32 lengths on the device, or nullptr.
template <typename T>
ScoreKeys4Params score_blocks_keys4_params(const T& q, const T& codes, const T& scales,
                                           const T& mass, const int* seq_lens,
                                           const std::optional<T>& page_table,
                                           const Keys4CacheShape& s,
                                           std::optional<double> softmax_scale) {
  ScoreKeys4Params p{};
  p.q = q.const_data_ptr();
  p.codes = codes.template const_data_ptr<uint8_t>();
  p.scales = scales.template const_data_ptr<float>();
  p.seq_lens = seq_lens;
  p.mass = mass.template mutable_data_ptr<float>();
  copy_strides(q, p.q_batch_stride, p.q_head_stride);
  copy_strides(codes, p.codes_batch_stride, p.codes_head_stride, p.codes_token_stride);
  copy_strides(scales, p.scales_batch_stride, p.scales_head_stride);
  p.batch = static_cast<int>(s.batch);
  p.num_q_heads = static_cast<int>(q.size(1));
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.head_dim = static_cast<int>(s.head_dim);
  p.capacity = static_cast<int>(s.capacity);
  p.num_blocks = static_cast<int>(mass.size(2));
  p.softmax_scale = static_cast<float>(softmax_scale_or_default(softmax_scale, s.head_dim));
  if (page_table.has_value()) {  // pools [pages, heads, 64, ...]: the batch strides step pages
    p.page_table = page_table->template const_data_ptr<int>();
    p.page_table_stride = page_table->stride(0);
  }
  return p;
}

}  // namespace sketchwalk
