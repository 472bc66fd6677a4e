// update_window_logits_'s CUDA launch from checked tensors (check_update_window_logits_args), for
// either tensor type: the ATen wrapper (csrc/cuda/update_window_logits.cpp) and the stable-ABI one
// (csrc/stable/update_window_logits_cuda.cpp). The caller holds the device guard.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

template <typename T>
void launch_update_window_logits(const T& window_logits, const T& query_window,
                                 const T& key_blocks, int64_t num_blocks, int64_t slot,
                                 double logit_scale, cudaStream_t stream) {
  WindowLogitsParams p{};
  p.logits = window_logits.template mutable_data_ptr<float>();
  p.query_window = query_window.template const_data_ptr<float>();
  p.key_blocks = key_blocks.template const_data_ptr<float>();
  copy_strides(window_logits, p.l_batch_stride, p.l_head_stride, p.l_row_stride);
  copy_strides(query_window, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  copy_strides(key_blocks, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  p.batch = static_cast<int>(window_logits.size(0));
  p.num_q_heads = static_cast<int>(window_logits.size(1));
  p.num_kv_heads = static_cast<int>(key_blocks.size(1));
  p.window = static_cast<int>(window_logits.size(2));
  p.num_blocks = static_cast<int>(num_blocks);
  p.sketch_dim = static_cast<int>(query_window.size(3));
  p.row_begin = slot < 0 ? 0 : static_cast<int>(slot);
  p.row_end = slot < 0 ? p.window : p.row_begin + 1;
  p.refresh_last_column = slot >= 0;
  p.logit_scale = static_cast<float>(logit_scale);
  check_launch(run_update_window_logits(p, stream), "update_window_logits_");
}

}  // namespace sketchwalk
