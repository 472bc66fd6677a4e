// score_blocks_sampled_rows on PyTorch's stable ABI, CUDA: the ATen wrapper's checks and CUDA
// limits (csrc/checks/score_blocks_sampled_rows.h) and params
// (csrc/cuda/score_blocks_sampled_rows_launch.h), with the device guard, allocations and stream
// from the stable C shim (csrc/stable/cuda.h). Reads no device memory on the host.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "checks/score_blocks_sampled_rows.h"
#include "cuda/score_blocks_sampled_rows_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor score_blocks_sampled_rows_cuda(Tensor q, Tensor k, int64_t rows,
                                      std::optional<double> softmax_scale) {
  constexpr const char* op = "score_blocks_sampled_rows";
  check_cuda(q, op, "q");
  const SampledRowsShape s = check_score_blocks_sampled_rows_args(q, k, rows, softmax_scale);
  check_score_blocks_sampled_rows_cuda_limits(q, s, rows, softmax_scale);
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  const int64_t shape[] = {s.batch, s.num_kv_heads, s.num_q_blocks, s.num_k_blocks};
  using torch::headeronly::ScalarType;
  Tensor scores = torch::stable::empty(shape, ScalarType::Float, std::nullopt, q.device());
  if (scores.numel() == 0) return scores;
  // A view with unaligned rows is copied (the kernel reads 16-byte chunks).
  const Tensor qc = sampled_rows_aligned(q) ? q : torch::stable::contiguous(torch::stable::clone(q));
  const Tensor kc = sampled_rows_aligned(k) ? k : torch::stable::contiguous(torch::stable::clone(k));
  const SampledRowsParams p = sampled_rows_params(qc, kc, scores, rows, s, softmax_scale);
  check_launch(run_score_sampled_rows(p, to_dtype(q.scalar_type()), current_cuda_stream(q)), op);
  return scores;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("score_blocks_sampled_rows", TORCH_BOX(&sketchwalk::stable::score_blocks_sampled_rows_cuda));
}
