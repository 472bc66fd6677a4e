// select_blocks and select_blocks_varlen on the CPU (ATen): the checks of
// csrc/checks/select_blocks.h and the kernel of csrc/cpu/select_blocks_rows.h; varlen runs the
// same rule per row of a padded ragged batch, each row with its own lengths and token knobs
// (seq_args).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/select_blocks.h"
#include "cpu/select_blocks_rows.h"
#include "ops.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

namespace {

// Rows of `scores` [rows, nq, nk] -> block_index [rows, 1, nq, nk], num_selected [rows, 1, nq].
template <typename Rule>
std::tuple<at::Tensor, at::Tensor> select_rows(const at::Tensor& scores, int64_t block_size,
                                               double keep_frac, int64_t dense_last_q_blocks,
                                               const std::optional<at::Tensor>& dense_rows,
                                               bool dense_rows_in_budget, Rule rule) {
  const int64_t rows = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  auto block_index = at::full({rows, 1, nq, nk}, kBlockIndexPad, scores.options().dtype(at::kInt));
  auto num_selected = at::zeros({rows, 1, nq}, scores.options().dtype(at::kInt));
  if (rows * nq == 0) return {block_index, num_selected};
  const SelectBlocksCpuArgs a = select_blocks_cpu_args(scores, block_index, num_selected,
                                                       block_size, keep_frac, dense_last_q_blocks,
                                                       dense_rows, dense_rows_in_budget);
  select_blocks_cpu_rows(a, rule, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  });
  return {block_index, num_selected};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_blocks_cpu(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks,
    const std::optional<at::Tensor>& dense_rows, bool dense_rows_in_budget) {
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks,
                           dense_rows, dense_rows_in_budget);
  const SeqRule rule{num_queries, num_keys, window_tokens, exclude_sink_tokens,
                     attend_sink_tokens};
  return select_rows(scores, block_size, keep_frac, dense_last_q_blocks, dense_rows,
                     dense_rows_in_budget, [&](int64_t) { return rule; });
}

std::tuple<at::Tensor, at::Tensor> select_blocks_varlen_cpu(
    const at::Tensor& scores, const at::Tensor& seq_args, int64_t block_size, double keep_frac,
    int64_t dense_last_q_blocks, bool validate, const std::optional<at::Tensor>& dense_rows,
    bool dense_rows_in_budget) {
  (void)validate;  // always validated on the CPU
  check_select_blocks_varlen_args(scores, seq_args, block_size, keep_frac, dense_last_q_blocks,
                                  true, dense_rows, dense_rows_in_budget);
  const int* a = seq_args.data_ptr<int>();  // contiguous [rows, kSelectSeqArgs] (checked)
  const auto rule = [&](int64_t r) {
    const int* row = a + r * kSelectSeqArgs;
    return SeqRule{row[0], row[1], row[2], row[3], row[4]};
  };
  return select_rows(scores, block_size, keep_frac, dense_last_q_blocks, dense_rows,
                     dense_rows_in_budget, rule);
}

}  // namespace sketchwalk
