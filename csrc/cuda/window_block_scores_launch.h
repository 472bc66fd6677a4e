// window_block_scores' CUDA launch from checked tensors (check_window_block_scores_args and the
// CUDA batch limit), for either tensor type: the ATen wrapper (csrc/cuda/window_block_scores.cpp)
// and the stable-ABI one (csrc/stable/window_block_scores_cuda.cpp). The caller holds the device
// guard and allocated r [batch, num_blocks] and the scratch row_offset [batch * heads *
// window_fill] (one logsumexp per row), both float32 contiguous.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

template <typename T>
void launch_window_block_scores(const T& window_logits, int64_t window_fill, int64_t num_blocks,
                                const T& r, const T& row_offset, cudaStream_t stream) {
  WindowScoresParams p{};
  p.logits = window_logits.template const_data_ptr<float>();
  p.row_offset = row_offset.template mutable_data_ptr<float>();
  p.r = r.template mutable_data_ptr<float>();
  copy_strides(window_logits, p.l_batch_stride, p.l_head_stride, p.l_row_stride);
  p.batch = static_cast<int>(window_logits.size(0));
  p.num_q_heads = static_cast<int>(window_logits.size(1));
  p.window_fill = static_cast<int>(window_fill);
  p.num_blocks = static_cast<int>(num_blocks);
  check_launch(run_window_block_scores(p, stream), "window_block_scores");
}

}  // namespace sketchwalk
