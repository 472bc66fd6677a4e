// sparse_prefill_varlen on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/sparse_prefill_varlen.h), params (csrc/params_fill.h) and launch
// (csrc/cuda/attention_launch.h), with the device guard, allocation and stream from the stable
// C shim (csrc/stable/cuda.h). No host synchronization with validate=False.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/sparse_prefill_varlen.h"
#include "cuda/attention_launch.h"
#include "params_fill.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> sparse_prefill_varlen_cuda(
    Tensor q, Tensor k, Tensor v, Tensor block_index, Tensor num_selected, Tensor cu_seqlens_q,
    std::optional<Tensor> cu_seqlens_k, std::optional<Tensor> seq_lens_k,
    std::optional<Tensor> page_table, std::optional<double> softmax_scale, bool validate) {
  constexpr const char* op = "sparse_prefill_varlen";
  check_softmax_scale(softmax_scale, op);
  check_cuda(q, op, "q");
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  const VarlenAttentionShape vs = check_sparse_prefill_varlen_args(
      q, k, v, block_index, num_selected, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table,
      softmax_scale);
  const AttentionShape& s = vs.shape;
  check_rows_aligned(op, q, k, v);
  SW_CHECK_ARG(s.batch <= kMaxGridYZ, op, "cu_seqlens_q", "must describe at most ", kMaxGridYZ,
               " sequences on CUDA (the grid's third dimension), got ", s.batch);
  check_attention_grid(op, s);
  check_sparse_prefill_varlen_values(vs, q, block_index, num_selected, cu_seqlens_q, cu_seqlens_k,
                                     seq_lens_k, page_table, validate);
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(q.sizes(), q.scalar_type(), std::nullopt, q.device());
  const int64_t lse_shape[] = {s.num_q_heads, s.num_queries};
  Tensor lse = torch::stable::empty(lse_shape, ScalarType::Float, std::nullopt, q.device());
  if (out.numel() == 0 || s.batch == 0 || s.num_q_blocks == 0) return {out, lse};
  const auto p = fill_varlen_params(vs, q, k, v, block_index, num_selected, out, lse,
                                    cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table,
                                    softmax_scale);
  check_launch(run_sparse_attention(p, q.scalar_type(), current_cuda_stream(q)), op);
  return {out, lse};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("sparse_prefill_varlen", TORCH_BOX(&sketchwalk::stable::sparse_prefill_varlen_cuda));
}
