// select_blocks and select_blocks_varlen, CUDA host wrappers (ATen): checks
// (csrc/checks/select_blocks.h), launch (csrc/cuda/select_blocks_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/select_blocks.h"
#include "cuda/host.h"
#include "cuda/select_blocks_launch.h"
#include "ops.h"

namespace sketchwalk {

namespace {

// Allocates (block_index, num_selected) for `scores` (checked) and launches.
template <typename SetRule>
std::tuple<at::Tensor, at::Tensor> select(const char* op, const at::Tensor& scores,
                                          int64_t block_size, double keep_frac,
                                          int64_t dense_last_q_blocks,
                                          const std::optional<at::Tensor>& dense_rows,
                                          bool dense_rows_in_budget, SetRule set_rule) {
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t rows = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  auto block_index = at::empty({rows, 1, nq, nk}, scores.options().dtype(at::kInt));
  auto num_selected = at::empty({rows, 1, nq}, scores.options().dtype(at::kInt));
  if (rows * nq == 0) return {block_index, num_selected};
  launch_select_blocks(op, scores, block_index, num_selected, block_size, keep_frac,
                       dense_last_q_blocks, dense_rows, dense_rows_in_budget, set_rule,
                       c10::cuda::getCurrentCUDAStream());
  return {block_index, num_selected};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_blocks_cuda(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks,
    const std::optional<at::Tensor>& dense_rows, bool dense_rows_in_budget) {
  check_cuda(scores, "select_blocks", "scores");
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks,
                           dense_rows, dense_rows_in_budget);
  return select("select_blocks", scores, block_size, keep_frac, dense_last_q_blocks, dense_rows,
                dense_rows_in_budget,
                select_blocks_rule(num_queries, num_keys, window_tokens, exclude_sink_tokens,
                                   attend_sink_tokens));
}

std::tuple<at::Tensor, at::Tensor> select_blocks_varlen_cuda(
    const at::Tensor& scores, const at::Tensor& seq_args, int64_t block_size, double keep_frac,
    int64_t dense_last_q_blocks, bool validate, const std::optional<at::Tensor>& dense_rows,
    bool dense_rows_in_budget) {
  check_cuda(scores, "select_blocks_varlen", "scores");
  check_select_blocks_varlen_args(scores, seq_args, block_size, keep_frac, dense_last_q_blocks,
                                  validate, dense_rows, dense_rows_in_budget);
  return select("select_blocks_varlen", scores, block_size, keep_frac, dense_last_q_blocks,
                dense_rows, dense_rows_in_budget,
                select_blocks_varlen_rule(seq_args.data_ptr<int>()));
}

}  // namespace sketchwalk
