// sparse_prefill and sparse_decode, CUDA host wrappers (one file: they share the params fill and
// the row-alignment check): checks (csrc/checks/sparse_prefill.cpp,
// csrc/checks/sparse_decode.cpp), params, launch (csrc/cuda/sparse_prefill*.cu,
// sparse_decode.cu); float32 inputs take the ATen path (csrc/composite/masked_attention.cpp).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

namespace {

SparseAttentionParams fill_attention_params(const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, const at::Tensor& block_index,
                                            const at::Tensor& num_selected, const at::Tensor& out,
                                            const at::Tensor& lse, const AttentionShape& s,
                                            std::optional<double> softmax_scale) {
  SparseAttentionParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.out = out.data_ptr();
  p.lse = lse.data_ptr<float>();
  copy_strides(q, p.q_batch_stride, p.q_head_stride, p.q_token_stride);
  copy_strides(k, p.k_batch_stride, p.k_head_stride, p.k_token_stride);
  copy_strides(v, p.v_batch_stride, p.v_head_stride, p.v_token_stride);
  copy_strides(out, p.out_batch_stride, p.out_head_stride, p.out_token_stride);
  copy_strides(lse, p.lse_batch_stride, p.lse_head_stride);
  p.block_index = block_index.data_ptr<int>();
  p.num_selected = num_selected.data_ptr<int>();
  copy_strides(block_index, p.index_batch_stride, p.index_head_stride, p.index_row_stride);
  copy_strides(num_selected, p.count_batch_stride, p.count_head_stride);
  p.index_heads = static_cast<int>(s.index_heads);
  p.batch = static_cast<int>(s.batch);
  p.num_q_heads = static_cast<int>(s.num_q_heads);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.num_queries = static_cast<int>(s.num_queries);
  p.num_keys = static_cast<int>(s.num_keys);
  p.head_dim = static_cast<int>(s.head_dim);
  p.block_size = static_cast<int>(s.block_size);
  p.num_q_blocks = static_cast<int>(s.num_q_blocks);
  p.max_selected = static_cast<int>(s.max_selected);
  p.softmax_scale = static_cast<float>(softmax_scale_or_default(softmax_scale, s.head_dim));
  return p;
}

// Runs between the two steps of the op's checks (checks.h), after the shapes are known and
// before the block index is read.
void check_rows_aligned(const char* op, const at::Tensor& q, const at::Tensor& k,
                        const at::Tensor& v) {
  if (q.scalar_type() != at::kFloat) {  // the tensor-core kernels copy 16-byte chunks of rows
    for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{q, "q"}, {k, "k"}, {v, "v"}}) {
      const int64_t elems = 16 / static_cast<int64_t>(t.element_size());
      SW_CHECK_ARG(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 && t.stride(0) % elems == 0 &&
                       t.stride(1) % elems == 0 && t.stride(2) % elems == 0,
                   op, name, "must start 16-byte aligned with batch, head and token strides that are "
                   "multiples of 16 bytes on CUDA, got strides ", t.strides());
    }
  }
}

}  // namespace

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
  check_sparse_prefill_index(q, block_index, num_selected, s, validate);
  if (q.scalar_type() == at::kFloat) {  // the tensor-core kernels take fp16/bf16
    return masked_attention_aten(q, k, v, block_index, num_selected, s,
                                 softmax_scale_or_default(softmax_scale, s.head_dim), std::nullopt);
  }
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  const auto p = fill_attention_params(q, k, v, block_index, num_selected, out, lse, s, softmax_scale);
  check_launch(run_sparse_prefill(p, to_dtype(q.scalar_type()), c10::cuda::getCurrentCUDAStream()), op);
  return {out, lse};
}

std::tuple<at::Tensor, at::Tensor> sparse_decode_cuda(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens) {
  constexpr const char* op = "sparse_decode";
  // softmax_scale first on CUDA (check_sparse_decode_args checks it again, after the tensors).
  check_softmax_scale(softmax_scale, op);
  const c10::cuda::CUDAGuard guard(q.device());
  check_cuda(q, op, "q");
  const AttentionShape s =
      check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected, softmax_scale);
  check_rows_aligned(op, q, k_cache, v_cache);
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, validate);
  if (q.scalar_type() == at::kFloat) {  // the tensor-core kernels take fp16/bf16
    return masked_attention_aten(q, k_cache, v_cache, block_index, num_selected, s,
                                 softmax_scale_or_default(softmax_scale, s.head_dim), seq_lens);
  }
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  if (out.numel() == 0) return {out, lse};
  auto p =
      fill_attention_params(q, k_cache, v_cache, block_index, num_selected, out, lse, s, softmax_scale);
  const auto lens = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  p.seq_lens = lens.defined() ? lens.data_ptr<int>() : nullptr;
  const size_t ws_floats = sparse_decode_workspace_floats(p);
  auto workspace = at::empty({static_cast<int64_t>(std::max<size_t>(ws_floats, 1))},
                             q.options().dtype(at::kFloat));
  check_launch(run_sparse_decode(p, to_dtype(q.scalar_type()), workspace.data_ptr<float>(),
                                 c10::cuda::getCurrentCUDAStream()),
               op);
  return {out, lse};
}

}  // namespace sketchwalk
