// sparse_decode on PyTorch's stable ABI, CPU: the ATen op's checks
// (csrc/checks/sparse_decode.h) and kernel (csrc/cpu/sparse_attention_rows.h, through
// csrc/stable/sparse_attention.h) over each sequence's keys (seq_lens, seq_starts, pages).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/sparse_decode.h"
#include "params_fill.h"
#include "stable/common.h"
#include "stable/sparse_attention.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> sparse_decode_cpu(Tensor q, Tensor k_cache, Tensor v_cache,
                                             Tensor block_index, Tensor num_selected,
                                             std::optional<double> softmax_scale, bool validate,
                                             std::optional<Tensor> seq_lens,
                                             std::optional<Tensor> page_table,
                                             std::optional<Tensor> seq_starts) {
  (void)validate;  // always validated on the CPU (no device sync to save)
  const AttentionShape s = check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected,
                                                    softmax_scale, seq_lens, page_table);
  const int64_t num_pages = page_table.has_value() ? k_cache.size(0) : 0;
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, page_table, num_pages, true);
  check_decode_seq_starts(q, seq_starts, seq_lens, page_table, s, true);
  using torch::headeronly::ScalarType;
  Tensor out = torch::stable::empty(q.sizes(), q.scalar_type(), std::nullopt, q.device());
  const int64_t lse_shape[] = {s.batch, s.num_q_heads, 1};
  Tensor lse = torch::stable::empty(lse_shape, ScalarType::Float, std::nullopt, q.device());
  if (out.numel() == 0) return {out, lse};
  auto p = fill_attention_params(q, k_cache, v_cache, block_index, num_selected, out, lse, s,
                                 softmax_scale);
  std::optional<Tensor> lens, starts;
  fill_decode_layout(p, k_cache, v_cache, seq_lens, page_table, seq_starts, lens, starts);
  run_sparse_attention_cpu(p, q.scalar_type());
  return {out, lse};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("sparse_decode", TORCH_BOX(&sketchwalk::stable::sparse_decode_cpu));
}
