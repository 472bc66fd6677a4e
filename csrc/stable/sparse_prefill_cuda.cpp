// sparse_prefill on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/sparse_prefill.h), params (csrc/params_fill.h) and launch
// (csrc/cuda/attention_launch.h), with the device guard, allocation and stream from the stable
// C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/sparse_prefill.h"
#include "cuda/attention_launch.h"
#include "params_fill.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> sparse_prefill_cuda(Tensor q, Tensor k, Tensor v, Tensor block_index,
                                               Tensor num_selected,
                                               std::optional<double> softmax_scale,
                                               bool validate) {
  constexpr const char* op = "sparse_prefill";
  // softmax_scale first on CUDA (check_sparse_prefill_args checks it again, after the tensors).
  check_softmax_scale(softmax_scale, op);
  check_cuda(q, op, "q");
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  const AttentionShape s =
      check_sparse_prefill_args(q, k, v, block_index, num_selected, softmax_scale);
  check_rows_aligned(op, q, k, v);
  check_attention_grid(op, s);
  check_sparse_prefill_index(q, block_index, num_selected, s, validate);
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(q.sizes(), q.scalar_type(), std::nullopt, q.device());
  const int64_t lse_shape[] = {s.batch, s.num_q_heads, s.num_queries};
  Tensor lse = torch::stable::empty(lse_shape, ScalarType::Float, std::nullopt, q.device());
  if (out.numel() == 0) return {out, lse};
  const auto p =
      fill_attention_params(q, k, v, block_index, num_selected, out, lse, s, softmax_scale);
  check_launch(run_sparse_attention(p, q.scalar_type(), current_cuda_stream(q)), op);
  return {out, lse};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("sparse_prefill", TORCH_BOX(&sketchwalk::stable::sparse_prefill_cuda));
}
