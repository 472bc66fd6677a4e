// score_blocks_keys4 on PyTorch's stable ABI, CUDA: the ATen wrapper's checks and CUDA limits
// (csrc/checks/score_blocks_keys4.h) and params (csrc/cuda/score_blocks_keys4_launch.h), with
// the device guard, allocations and stream from the stable C shim (csrc/stable/cuda.h). With
// validate=false, or while a CUDA graph is captured, the lengths in seq_lens are trusted.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "checks/score_blocks_keys4.h"
#include "cuda/score_blocks_keys4_launch.h"
#include "sketchwalk/block_index.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor score_blocks_keys4_cuda(Tensor q, Tensor codes, Tensor scales,
                               std::optional<Tensor> seq_lens, std::optional<double> softmax_scale,
                               bool validate, std::optional<Tensor> page_table) {
  constexpr const char* op = "score_blocks_keys4";
  check_cuda(q, op, "q");
  const Keys4CacheShape s = check_score_blocks_keys4_args(q, codes, scales, seq_lens,
                                                          softmax_scale, validate, page_table);
  check_score_blocks_keys4_cuda_limits(q, codes, s);
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  // A misaligned q view (rare; it is tiny) is copied: clone allocates, contiguous keeps it so.
  const Tensor qc = score_blocks_keys4_q_aligned(q)
                        ? q
                        : torch::stable::contiguous(torch::stable::clone(q));
  const int64_t shape[] = {s.batch, s.num_kv_heads,
                           (s.capacity + kIndexBlockSize - 1) / kIndexBlockSize};
  using torch::headeronly::ScalarType;
  Tensor mass = torch::stable::empty(shape, ScalarType::Float, std::nullopt, q.device());
  if (mass.numel() == 0) return mass;
  std::optional<Tensor> lens;
  const ScoreKeys4Params p = score_blocks_keys4_params(
      qc, codes, scales, mass, seq_lens_ptr(seq_lens, lens), page_table, s, softmax_scale);
  const int64_t workspace_shape[] = {static_cast<int64_t>(score_keys4_workspace_floats(p))};
  Tensor workspace =
      torch::stable::empty(workspace_shape, ScalarType::Float, std::nullopt, q.device());
  check_launch(run_score_keys4(p, to_dtype(q.scalar_type()),
                               workspace.mutable_data_ptr<float>(), current_cuda_stream(q)),
               op);
  return mass;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("score_blocks_keys4", TORCH_BOX(&sketchwalk::stable::score_blocks_keys4_cuda));
}
