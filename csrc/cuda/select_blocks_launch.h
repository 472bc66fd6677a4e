// select_blocks' and select_blocks_varlen's CUDA launch from checked tensors, for either tensor
// type: the ATen wrappers (csrc/cuda/select_blocks.cpp) and the stable-ABI ones
// (csrc/stable/select_blocks_cuda.cpp). The caller holds the device guard and allocated the
// outputs; set_rule fills each op's own fields (its scalars, or seq_args).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <optional>

#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

// block_index [rows, 1, nq, nk] and num_selected [rows, 1, nq] int32 contiguous; rows * nq > 0;
// dense_rows checked (check_dense_rows) or empty.
template <typename T, typename SetRule>
void launch_select_blocks(const char* op, const T& scores, const T& block_index,
                          const T& num_selected, int64_t block_size, double keep_frac,
                          int64_t dense_last_q_blocks, const std::optional<T>& dense_rows,
                          bool dense_rows_in_budget, SetRule set_rule, cudaStream_t stream) {
  SelectBlocksParams p{};
  p.scores = scores.template const_data_ptr<float>();
  copy_strides(scores, p.scores_batch_stride, p.scores_row_stride);
  p.block_index = block_index.template mutable_data_ptr<int>();
  p.num_selected = num_selected.template mutable_data_ptr<int>();
  p.batch = static_cast<int>(scores.size(0));
  p.block_size = static_cast<int>(block_size);
  p.num_q_blocks = static_cast<int>(scores.size(1));
  p.num_kv_blocks = static_cast<int>(scores.size(2));
  p.keep_frac = keep_frac;
  p.dense_last_q_blocks = static_cast<int>(dense_last_q_blocks);
  if (dense_rows.has_value()) {
    p.dense_rows = dense_rows->template const_data_ptr<bool>();
    p.dense_rows_stride = dense_rows->stride(0);
    p.dense_rows_in_budget = dense_rows_in_budget;
  }
  set_rule(p);
  check_launch(run_select_blocks(p, stream), op);
}

// The fields of select_blocks' scalars.
inline auto select_blocks_rule(int64_t num_queries, int64_t num_keys, int64_t window_tokens,
                               int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  return [=](SelectBlocksParams& p) {
    p.num_queries = static_cast<int>(num_queries);
    p.num_keys = static_cast<int>(num_keys);
    p.window_tokens = static_cast<int>(window_tokens);
    p.exclude_sink_tokens = static_cast<int>(exclude_sink_tokens);
    p.attend_sink_tokens = static_cast<int>(attend_sink_tokens);
  };
}

// select_blocks_varlen's: the scalars stand for the padded maxima; every row reads its own from
// seq_args (int32 [rows, kSelectSeqArgs] contiguous on the device).
inline auto select_blocks_varlen_rule(const int* seq_args) {
  return [=](SelectBlocksParams& p) {
    p.num_queries = p.num_keys = p.num_kv_blocks * p.block_size;
    p.window_tokens = 1;
    p.seq_args = seq_args;
  };
}

}  // namespace sketchwalk
