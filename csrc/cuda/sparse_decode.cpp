// sparse_decode, CUDA host wrapper (ATen): checks (csrc/checks/sparse_decode.h, with the row
// alignment of csrc/cuda/attention_launch.h between its two steps), params
// (csrc/params_fill.h), launch with its workspace (launch_sparse_decode).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/sparse_decode.h"
#include "cuda/attention_launch.h"
#include "cuda/host.h"
#include "ops.h"
#include "params_fill.h"

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
  check_rows_aligned(op, q, k_cache, v_cache, "k_cache", "v_cache");
  check_attention_grid(op, s);
  const int64_t num_pages = page_table.has_value() ? k_cache.size(0) : 0;
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, page_table, num_pages,
                            validate);
  check_decode_seq_starts(q, seq_starts, seq_lens, page_table, s, validate);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  auto p = fill_attention_params(q, k_cache, v_cache, block_index, num_selected, out, lse, s,
                                 softmax_scale);
  std::optional<at::Tensor> lens, starts;
  fill_decode_layout(p, k_cache, v_cache, seq_lens, page_table, seq_starts, lens, starts);
  launch_sparse_decode(p, q, c10::cuda::getCurrentCUDAStream());
  return {out, lse};
}

}  // namespace sketchwalk
