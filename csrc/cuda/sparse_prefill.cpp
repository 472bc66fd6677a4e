// sparse_prefill, CUDA host wrapper (ATen): checks (csrc/checks/sparse_prefill.h, with the row
// alignment of csrc/cuda/attention_launch.h between its two steps), params
// (csrc/params_fill.h), launch (csrc/cuda/attention_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/sparse_prefill.h"
#include "cuda/attention_launch.h"
#include "cuda/host.h"
#include "ops.h"
#include "params_fill.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_prefill_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, std::optional<double> softmax_scale, bool validate) {
  constexpr const char* op = "sparse_prefill";
  // softmax_scale first on CUDA (check_sparse_prefill_args checks it again, after the tensors).
  check_softmax_scale(softmax_scale, op);
  const c10::cuda::CUDAGuard guard(q.device());
  check_cuda(q, op, "q");
  const AttentionShape s =
      check_sparse_prefill_args(q, k, v, block_index, num_selected, softmax_scale);
  check_rows_aligned(op, q, k, v);
  check_attention_grid(op, s);
  check_sparse_prefill_index(q, block_index, num_selected, s, validate);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  const auto p =
      fill_attention_params(q, k, v, block_index, num_selected, out, lse, s, softmax_scale);
  check_launch(run_sparse_attention(p, q.scalar_type(), c10::cuda::getCurrentCUDAStream()), op);
  return {out, lse};
}

}  // namespace sketchwalk
