// query_spread_rows on PyTorch's stable ABI, CUDA: the ATen wrapper's checks and row limit
// (csrc/checks/query_spread_rows.h) and launch (csrc/cuda/query_spread_rows_launch.h), with the
// device guard, allocations and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "checks/query_spread_rows.h"
#include "cuda/query_spread_rows_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor query_spread_rows_cuda(Tensor q, int64_t block_size, double frac,
                              int64_t dense_last_q_blocks, std::optional<Tensor> cu_seqlens,
                              int64_t max_blocks, std::optional<Tensor> seq_q_blocks,
                              bool validate) {
  check_cuda(q, "query_spread_rows", "q");
  const QuerySpreadShape s = check_query_spread_rows_args(
      q, block_size, frac, dense_last_q_blocks, cu_seqlens, max_blocks, seq_q_blocks, validate);
  check_query_spread_rows_cuda_rows(s);
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  const int64_t shape[] = {s.rows, s.width};
  using torch::headeronly::ScalarType;
  Tensor dense_rows = torch::stable::empty(shape, ScalarType::Bool, std::nullopt, q.device());
  Tensor spread = torch::stable::empty(shape, ScalarType::Float, std::nullopt, q.device());
  launch_query_spread_rows(q, block_size, frac, dense_last_q_blocks, cu_seqlens, seq_q_blocks, s,
                           spread, dense_rows, current_cuda_stream(q));
  return dense_rows;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("query_spread_rows", TORCH_BOX(&sketchwalk::stable::query_spread_rows_cuda));
}
