// select_blocks and select_blocks_varlen on PyTorch's stable ABI, CPU: the ATen ops' checks
// (csrc/checks/select_blocks.h) and kernel (csrc/cpu/select_blocks_rows.h), allocated and
// parallelized through the stable C shim.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <tuple>

#include "checks/select_blocks.h"
#include "cpu/select_blocks_rows.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/params.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

// Rows of `scores` [rows, nq, nk] -> block_index [rows, 1, nq, nk], num_selected [rows, 1, nq].
template <typename Rule>
std::tuple<Tensor, Tensor> select_rows(const Tensor& scores, int64_t block_size, double keep_frac,
                                       int64_t dense_last_q_blocks,
                                       const std::optional<Tensor>& dense_rows,
                                       bool dense_rows_in_budget, Rule rule) {
  const int64_t rows = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  const int64_t index_shape[] = {rows, 1, nq, nk};
  const int64_t count_shape[] = {rows, 1, nq};
  using torch::headeronly::ScalarType;
  Tensor block_index = torch::stable::full(index_shape, kBlockIndexPad, ScalarType::Int,
                                           std::nullopt, scores.device());
  Tensor num_selected = torch::stable::new_zeros(scores, count_shape, ScalarType::Int);
  if (rows * nq == 0) return {block_index, num_selected};
  const SelectBlocksCpuArgs a = select_blocks_cpu_args(scores, block_index, num_selected,
                                                       block_size, keep_frac, dense_last_q_blocks,
                                                       dense_rows, dense_rows_in_budget);
  select_blocks_cpu_rows(a, rule, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
  return {block_index, num_selected};
}

std::tuple<Tensor, Tensor> select_blocks_cpu(Tensor scores, int64_t num_queries, int64_t num_keys,
                                             int64_t block_size, double keep_frac,
                                             int64_t window_tokens, int64_t exclude_sink_tokens,
                                             int64_t attend_sink_tokens,
                                             int64_t dense_last_q_blocks,
                                             std::optional<Tensor> dense_rows,
                                             bool dense_rows_in_budget) {
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks,
                           dense_rows, dense_rows_in_budget);
  const SeqRule rule{num_queries, num_keys, window_tokens, exclude_sink_tokens,
                     attend_sink_tokens};
  return select_rows(scores, block_size, keep_frac, dense_last_q_blocks, dense_rows,
                     dense_rows_in_budget, [&](int64_t) { return rule; });
}

std::tuple<Tensor, Tensor> select_blocks_varlen_cpu(Tensor scores, Tensor seq_args,
                                                    int64_t block_size, double keep_frac,
                                                    int64_t dense_last_q_blocks, bool validate,
                                                    std::optional<Tensor> dense_rows,
                                                    bool dense_rows_in_budget) {
  (void)validate;  // always validated on the CPU
  check_select_blocks_varlen_args(scores, seq_args, block_size, keep_frac, dense_last_q_blocks,
                                  true, dense_rows, dense_rows_in_budget);
  const int* a = seq_args.const_data_ptr<int>();  // contiguous [rows, kSelectSeqArgs] (checked)
  const auto rule = [&](int64_t r) {
    const int* row = a + r * kSelectSeqArgs;
    return SeqRule{row[0], row[1], row[2], row[3], row[4]};
  };
  return select_rows(scores, block_size, keep_frac, dense_last_q_blocks, dense_rows,
                     dense_rows_in_budget, rule);
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("select_blocks", TORCH_BOX(&sketchwalk::stable::select_blocks_cpu));
  m.impl("select_blocks_varlen", TORCH_BOX(&sketchwalk::stable::select_blocks_varlen_cpu));
}
