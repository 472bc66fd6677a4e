// select_blocks and select_blocks_varlen on PyTorch's stable ABI, CUDA: the ATen wrappers'
// checks (csrc/checks/select_blocks.h) and launch (csrc/cuda/select_blocks_launch.h), with the
// device guard, allocation and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <tuple>

#include "checks/select_blocks.h"
#include "cuda/select_blocks_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

// Allocates (block_index, num_selected) for `scores` (checked) and launches.
template <typename SetRule>
std::tuple<Tensor, Tensor> select(const char* op, const Tensor& scores, int64_t block_size,
                                  double keep_frac, int64_t dense_last_q_blocks,
                                  const std::optional<Tensor>& dense_rows,
                                  bool dense_rows_in_budget, SetRule set_rule) {
  const torch::stable::accelerator::DeviceGuard guard(scores.get_device_index());
  const int64_t rows = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  const int64_t index_shape[] = {rows, 1, nq, nk};
  const int64_t count_shape[] = {rows, 1, nq};
  using torch::headeronly::ScalarType;
  Tensor block_index =
      torch::stable::empty(index_shape, ScalarType::Int, std::nullopt, scores.device());
  Tensor num_selected =
      torch::stable::empty(count_shape, ScalarType::Int, std::nullopt, scores.device());
  if (rows * nq == 0) return {block_index, num_selected};
  launch_select_blocks(op, scores, block_index, num_selected, block_size, keep_frac,
                       dense_last_q_blocks, dense_rows, dense_rows_in_budget, set_rule,
                       current_cuda_stream(scores));
  return {block_index, num_selected};
}

std::tuple<Tensor, Tensor> select_blocks_cuda(Tensor scores, int64_t num_queries,
                                              int64_t num_keys, int64_t block_size,
                                              double keep_frac, int64_t window_tokens,
                                              int64_t exclude_sink_tokens,
                                              int64_t attend_sink_tokens,
                                              int64_t dense_last_q_blocks,
                                              std::optional<Tensor> dense_rows,
                                              bool dense_rows_in_budget) {
  check_cuda(scores, "select_blocks", "scores");
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks,
                           dense_rows, dense_rows_in_budget);
  return select("select_blocks", scores, block_size, keep_frac, dense_last_q_blocks, dense_rows,
                dense_rows_in_budget,
                select_blocks_rule(num_queries, num_keys, window_tokens, exclude_sink_tokens,
                                   attend_sink_tokens));
}

std::tuple<Tensor, Tensor> select_blocks_varlen_cuda(Tensor scores, Tensor seq_args,
                                                     int64_t block_size, double keep_frac,
                                                     int64_t dense_last_q_blocks, bool validate,
                                                     std::optional<Tensor> dense_rows,
                                                     bool dense_rows_in_budget) {
  check_cuda(scores, "select_blocks_varlen", "scores");
  check_select_blocks_varlen_args(scores, seq_args, block_size, keep_frac, dense_last_q_blocks,
                                  validate, dense_rows, dense_rows_in_budget);
  return select("select_blocks_varlen", scores, block_size, keep_frac, dense_last_q_blocks,
                dense_rows, dense_rows_in_budget,
                select_blocks_varlen_rule(seq_args.const_data_ptr<int>()));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("select_blocks", TORCH_BOX(&sketchwalk::stable::select_blocks_cuda));
  m.impl("select_blocks_varlen", TORCH_BOX(&sketchwalk::stable::select_blocks_varlen_cuda));
}
