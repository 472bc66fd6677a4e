// sparse_decode, CUDA host wrapper: checks (csrc/checks/sparse_decode.cpp, with the row
// alignment of csrc/cuda/attention_host.h between its two steps), params, workspace, launch
// (csrc/cuda/sparse_decode.cu); float32 inputs take the ATen path
// (csrc/composite/masked_attention.cpp).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "checks.h"
#include "cuda/attention_host.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_decode_cuda(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens,
    const std::optional<at::Tensor>& page_table, const std::optional<at::Tensor>& seq_starts) {
  constexpr const char* op = "sparse_decode";
  // softmax_scale first on CUDA (check_sparse_decode_args checks it again, after the tensors).
  check_softmax_scale(softmax_scale, op);
  const c10::cuda::CUDAGuard guard(q.device());
  check_cuda(q, op, "q");
  const AttentionShape s = check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected,
                                                    softmax_scale, seq_lens, page_table);
  check_rows_aligned(op, q, k_cache, v_cache);
  const int64_t num_pages = page_table.has_value() ? k_cache.size(0) : 0;
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, page_table, num_pages,
                            validate);
  check_decode_seq_starts(q, seq_starts, seq_lens, page_table, s, validate);
  SW_CHECK_ARG(!seq_starts.has_value() || q.scalar_type() != at::kFloat, op, "q",
               "must be float16 or bfloat16 with seq_starts on CUDA, got float32");
  SW_CHECK_ARG(!page_table.has_value() || q.scalar_type() != at::kFloat, op, "q",
               "must be float16 or bfloat16 with a paged cache on CUDA, got float32");
  if (q.scalar_type() == at::kFloat) {  // the tensor-core kernels take fp16/bf16
    return masked_attention_aten(q, k_cache, v_cache, block_index, num_selected, s,
                                 softmax_scale_or_default(softmax_scale, s.head_dim), seq_lens);
  }
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  auto p =
      fill_attention_params(q, k_cache, v_cache, block_index, num_selected, out, lse, s, softmax_scale);
  std::optional<at::Tensor> lens;
  p.seq_lens = seq_lens_ptr(seq_lens, lens);
  at::Tensor starts;
  if (seq_starts.has_value()) {  // a left-padded cache: SeqInfo::make offsets each row's keys
    starts = seq_starts->contiguous();
    p.k_starts = starts.data_ptr<int>();
  }
  if (page_table.has_value()) fill_paged_kv(p, k_cache, v_cache, *page_table);
  const size_t ws_floats = sparse_decode_workspace_floats(p);
  auto workspace = at::empty({static_cast<int64_t>(std::max<size_t>(ws_floats, 1))},
                             q.options().dtype(at::kFloat));
  check_launch(run_sparse_decode(p, to_dtype(q.scalar_type()), workspace.data_ptr<float>(),
                                 c10::cuda::getCurrentCUDAStream()),
               op);
  return {out, lse};
}

}  // namespace sketchwalk
