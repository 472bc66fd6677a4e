// sparse_decode on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/sparse_decode.h), params (csrc/params_fill.h) and launch with its workspace
// (csrc/cuda/attention_launch.h), with the device guard, allocation and stream from the stable
// C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/sparse_decode.h"
#include "cuda/attention_launch.h"
#include "params_fill.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> sparse_decode_cuda(Tensor q, Tensor k_cache, Tensor v_cache,
                                              Tensor block_index, Tensor num_selected,
                                              std::optional<double> softmax_scale, bool validate,
                                              std::optional<Tensor> seq_lens,
                                              std::optional<Tensor> page_table,
                                              std::optional<Tensor> seq_starts) {
  constexpr const char* op = "sparse_decode";
  // softmax_scale first on CUDA (check_sparse_decode_args checks it again, after the tensors).
  check_softmax_scale(softmax_scale, op);
  check_cuda(q, op, "q");
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  const AttentionShape s = check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected,
                                                    softmax_scale, seq_lens, page_table);
  check_rows_aligned(op, q, k_cache, v_cache, "k_cache", "v_cache");
  check_attention_grid(op, s);
  const int64_t num_pages = page_table.has_value() ? k_cache.size(0) : 0;
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, page_table, num_pages,
                            validate);
  check_decode_seq_starts(q, seq_starts, seq_lens, page_table, s, validate);
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(q.sizes(), q.scalar_type(), std::nullopt, q.device());
  const int64_t lse_shape[] = {s.batch, s.num_q_heads, s.num_queries};
  Tensor lse = torch::stable::empty(lse_shape, ScalarType::Float, std::nullopt, q.device());
  if (out.numel() == 0) return {out, lse};
  auto p = fill_attention_params(q, k_cache, v_cache, block_index, num_selected, out, lse, s,
                                 softmax_scale);
  std::optional<Tensor> lens, starts;
  fill_decode_layout(p, k_cache, v_cache, seq_lens, page_table, seq_starts, lens, starts);
  launch_sparse_decode(p, q, current_cuda_stream(q));
  return {out, lse};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("sparse_decode", TORCH_BOX(&sketchwalk::stable::sparse_decode_cuda));
}
