// sparse_prefill_varlen, CUDA host wrapper: checks (csrc/checks/sparse_prefill_varlen.cpp; the
// values only with validate and outside a graph capture), params for a ragged batch (packed
// tokens: batch strides 0 and cu_seqlens; a paged cache: the page stride in the batch stride and
// the page table), one launch of run_sparse_prefill (csrc/cuda/sparse_prefill.cu), which takes
// the sm90 kernel for packed keys and the sm80 kernel for a paged cache. Nothing here reads
// device memory on the trusted path (validate=False): no host synchronization.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/attention_host.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

namespace {

constexpr const char* kOp = "sparse_prefill_varlen";

// The tensor-core kernels copy 16-byte chunks of rows: base and every stride but the last.
void check_rows_aligned_nd(const at::Tensor& t, const char* name) {
  const int64_t elems = 16 / static_cast<int64_t>(t.element_size());
  bool ok = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) ok = ok && t.stride(d) % elems == 0;
  SW_CHECK_ARG(ok, kOp, name, "must start 16-byte aligned with strides (but the last) that are "
               "multiples of 16 bytes on CUDA, got strides ", t.strides());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> sparse_prefill_varlen_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const at::Tensor& cu_seqlens_q,
    const std::optional<at::Tensor>& cu_seqlens_k, const std::optional<at::Tensor>& seq_lens_k,
    const std::optional<at::Tensor>& page_table, std::optional<double> softmax_scale,
    bool validate) {
  check_softmax_scale(softmax_scale, kOp);
  const c10::cuda::CUDAGuard guard(q.device());
  check_cuda(q, kOp, "q");
  const VarlenAttentionShape vs = check_sparse_prefill_varlen_args(
      q, k, v, block_index, num_selected, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table,
      softmax_scale);
  const AttentionShape& s = vs.shape;
  SW_CHECK_ARG(q.scalar_type() != at::kFloat, kOp, "q",
               "must be float16 or bfloat16 on CUDA (the tensor-core kernels), got float32");
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) check_rows_aligned_nd(*t, name);
  SW_CHECK_ARG(s.batch <= kMaxGridYZ, kOp, "cu_seqlens_q", "must describe at most ", kMaxGridYZ,
               " sequences on CUDA (the grid's third dimension), got ", s.batch);
  check_sparse_prefill_varlen_values(vs, q, block_index, num_selected, cu_seqlens_q, cu_seqlens_k,
                                     seq_lens_k, page_table, validate);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0 || s.batch == 0 || s.num_q_blocks == 0) return {out, lse};

  SparseAttentionParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  p.q_batch_stride = 0, p.q_head_stride = q.stride(1), p.q_token_stride = q.stride(0);
  p.out_batch_stride = 0, p.out_head_stride = out.stride(1), p.out_token_stride = out.stride(0);
  p.lse_batch_stride = 0, p.lse_head_stride = lse.stride(0);
  if (vs.paged) {
    fill_paged_kv(p, k, v, *page_table);
    p.seq_lens = seq_lens_k->data_ptr<int>();
  } else {
    p.k_batch_stride = 0, p.k_token_stride = k.stride(0), p.k_head_stride = k.stride(1);
    p.v_batch_stride = 0, p.v_token_stride = v.stride(0), p.v_head_stride = v.stride(1);
    p.cu_seqlens_k = cu_seqlens_k->data_ptr<int>();
  }
  p.cu_seqlens_q = cu_seqlens_q.data_ptr<int>();
  fill_index_and_sizes(p, block_index, num_selected, s, softmax_scale);
  check_launch(run_sparse_prefill(p, to_dtype(q.scalar_type()), c10::cuda::getCurrentCUDAStream()),
               kOp);
  return {out, lse};
}

}  // namespace sketchwalk
