// sparse_prefill_varlen, CUDA host wrapper (ATen): checks (csrc/checks/sparse_prefill_varlen.h;
// the values only with validate and outside a graph capture), params for a ragged batch
// (csrc/params_fill.h: packed tokens with batch strides 0 and cu_seqlens, or a paged cache), one
// launch (csrc/cuda/attention_launch.h): run_sparse_prefill takes the sm90 kernel for packed
// keys and the sm80 kernel for a paged cache; float32 the scalar kernel. Nothing here reads
// device memory on the trusted path (validate=False): no host synchronization.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/sparse_prefill_varlen.h"
#include "cuda/attention_launch.h"
#include "cuda/host.h"
#include "ops.h"
#include "params_fill.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_prefill_varlen_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const at::Tensor& cu_seqlens_q,
    const std::optional<at::Tensor>& cu_seqlens_k, const std::optional<at::Tensor>& seq_lens_k,
    const std::optional<at::Tensor>& page_table, std::optional<double> softmax_scale,
    bool validate) {
  constexpr const char* op = "sparse_prefill_varlen";
  check_softmax_scale(softmax_scale, op);
  const c10::cuda::CUDAGuard guard(q.device());
  check_cuda(q, op, "q");
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
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0 || s.batch == 0 || s.num_q_blocks == 0) return {out, lse};
  const auto p = fill_varlen_params(vs, q, k, v, block_index, num_selected, out, lse,
                                    cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table,
                                    softmax_scale);
  check_launch(run_sparse_attention(p, q.scalar_type(), c10::cuda::getCurrentCUDAStream()), op);
  return {out, lse};
}

}  // namespace sketchwalk
