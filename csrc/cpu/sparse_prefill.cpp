// sparse_prefill on the CPU (docs/ops.md section 5): the op's checks
// (csrc/checks/sparse_prefill.h), then the attention kernel of csrc/cpu/sparse_attention_rows.h.
// The index is always validated here (validate=false only skips the device sync on CUDA).
#include <ATen/ATen.h>

#include "checks.h"
#include "checks/sparse_prefill.h"
#include "cpu/sparse_attention.h"
#include "ops.h"
#include "params_fill.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_prefill_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, std::optional<double> softmax_scale, bool validate) {
  (void)validate;  // always validated on the CPU (no device sync to save)
  const AttentionShape s =
      check_sparse_prefill_args(q, k, v, block_index, num_selected, softmax_scale);
  check_sparse_prefill_index(q, block_index, num_selected, s, true);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  cpu::run_sparse_attention_cpu(
      fill_attention_params(q, k, v, block_index, num_selected, out, lse, s, softmax_scale),
      q.scalar_type());
  return {out, lse};
}

}  // namespace sketchwalk
