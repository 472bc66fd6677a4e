// select_blocks and select_blocks_varlen, CUDA host wrappers: checks
// (csrc/checks/select_blocks.cpp), params, launch (csrc/cuda/select_blocks.cu).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

namespace {

// Allocates (block_index, num_selected) for `scores` (checked) and launches the kernel with the
// fields both ops share; set_rule fills each op's own (its scalars, or seq_args).
template <typename SetRule>
std::tuple<at::Tensor, at::Tensor> launch_select(const char* op, const at::Tensor& scores,
                                                 int64_t block_size, double keep_frac,
                                                 int64_t dense_last_q_blocks, SetRule set_rule) {
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t batch = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  auto block_index = at::empty({batch, 1, nq, nk}, scores.options().dtype(at::kInt));
  auto num_selected = at::empty({batch, 1, nq}, scores.options().dtype(at::kInt));
  if (batch * nq == 0) return {block_index, num_selected};
  SelectBlocksParams p{};
  p.scores = scores.data_ptr<float>();
  copy_strides(scores, p.scores_batch_stride, p.scores_row_stride);
  p.block_index = block_index.data_ptr<int>();
  p.num_selected = num_selected.data_ptr<int>();
  p.batch = static_cast<int>(batch);
  p.block_size = static_cast<int>(block_size);
  p.num_q_blocks = static_cast<int>(nq);
  p.num_kv_blocks = static_cast<int>(nk);
  p.keep_frac = keep_frac;
  p.dense_last_q_blocks = static_cast<int>(dense_last_q_blocks);
  set_rule(p);
  check_launch(run_select_blocks(p, c10::cuda::getCurrentCUDAStream()), op);
  return {block_index, num_selected};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_blocks_cuda(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks) {
  check_cuda(scores, "select_blocks", "scores");
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks);
  return launch_select("select_blocks", scores, block_size, keep_frac, dense_last_q_blocks,
                       [&](SelectBlocksParams& p) {
                         p.num_queries = static_cast<int>(num_queries);
                         p.num_keys = static_cast<int>(num_keys);
                         p.window_tokens = static_cast<int>(window_tokens);
                         p.exclude_sink_tokens = static_cast<int>(exclude_sink_tokens);
                         p.attend_sink_tokens = static_cast<int>(attend_sink_tokens);
                       });
}

std::tuple<at::Tensor, at::Tensor> select_blocks_varlen_cuda(
    const at::Tensor& scores, const at::Tensor& seq_args, int64_t block_size, double keep_frac,
    int64_t dense_last_q_blocks, bool validate) {
  check_cuda(scores, "select_blocks_varlen", "scores");
  check_select_blocks_varlen_args(scores, seq_args, block_size, keep_frac, dense_last_q_blocks,
                                  validate);
  return launch_select("select_blocks_varlen", scores, block_size, keep_frac,
                       dense_last_q_blocks, [&](SelectBlocksParams& p) {
                         // The scalars stand for the padded maxima; every row reads its own
                         // from seq_args.
                         p.num_queries = p.num_keys = p.num_kv_blocks * p.block_size;
                         p.window_tokens = 1;
                         p.seq_args = seq_args.data_ptr<int>();
                       });
}

}  // namespace sketchwalk
