// score_blocks' CUDA launch from checked tensors (check_score_blocks_args): params filled from
// either tensor type, so the ATen wrapper (csrc/cuda/score_blocks.cpp) and the stable-ABI one
// (csrc/stable/score_blocks_cuda.cpp) launch the same way. The caller holds the device guard.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

// out [batch, rows, cols] float32 contiguous; col_counts: num_kv_blocks on the device or nullptr.
template <typename T>
void launch_score_blocks(const T& q_sketch, const T& k_sketch, const T& out, const int* col_counts,
                         double logit_scale, cudaStream_t stream) {
  ScoreBlocksParams p{};
  p.q_sketch = q_sketch.template const_data_ptr<float>();
  p.k_sketch = k_sketch.template const_data_ptr<float>();
  p.out = out.template mutable_data_ptr<float>();
  copy_strides(q_sketch, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  copy_strides(k_sketch, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  p.batch = static_cast<int>(q_sketch.size(0));
  p.num_q_heads = static_cast<int>(q_sketch.size(1));
  p.num_kv_heads = static_cast<int>(k_sketch.size(1));
  p.rows = static_cast<int>(q_sketch.size(2));
  p.cols = static_cast<int>(k_sketch.size(2));
  p.sketch_dim = static_cast<int>(q_sketch.size(3));
  p.logit_scale = static_cast<float>(logit_scale);
  p.col_counts = col_counts;
  check_launch(run_score_blocks(p, stream), "score_blocks");
}

}  // namespace sketchwalk
