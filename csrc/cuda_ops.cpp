// CUDA host wrappers: validate (shared checks), fill the params structs of
// include/sketchwalk/params.h from tensors, launch on the current stream through
// csrc/cuda/launch.h, and turn a launch failure into an error naming the op.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cmath>

#include "checks.h"
#include "cuda/launch.h"
#include "cuda_host.h"
#include "ops.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h

}  // namespace

bool current_stream_is_capturing(const at::Tensor& t) {
  if (!t.is_cuda()) return false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  const auto stream = c10::cuda::getCurrentCUDAStream(t.device().index());
  if (cudaStreamIsCapturing(stream.stream(), &status) != cudaSuccess) return false;
  return status != cudaStreamCaptureStatusNone;
}

void launch_hadamard_sketch(const at::Tensor& x, const SketchShape& s, const at::Tensor& signs,
                            const at::Tensor& coords, float* out, int64_t out_batch_stride,
                            int64_t out_head_stride, int64_t out_block_stride, int blend_count,
                            cudaStream_t stream, const char* op) {
  HadamardSketchParams p{};
  p.x = x.data_ptr();
  p.signs = signs.data_ptr<float>();
  p.coords = coords.data_ptr<int64_t>();
  p.out = out;
  p.x_batch_stride = x.stride(0);
  p.x_head_stride = x.stride(1);
  p.x_token_stride = x.stride(2);
  p.out_batch_stride = out_batch_stride;
  p.out_head_stride = out_head_stride;
  p.out_block_stride = out_block_stride;
  p.blend_count = blend_count;
  p.batch = static_cast<int>(s.batch);
  p.heads = static_cast<int>(s.heads);
  p.tokens = static_cast<int>(s.tokens);
  p.head_dim = static_cast<int>(s.head_dim);
  p.block_size = static_cast<int>(s.block_size);
  p.num_blocks = static_cast<int>(s.num_blocks);
  p.sketch_pow2 = static_cast<int>(s.sketch_pow2);
  p.sketch_dim = static_cast<int>(s.sketch_dim);
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.sketch_dim));
  check_launch(run_hadamard_sketch(p, to_dtype(x.scalar_type()), stream), op);
}

at::Tensor hadamard_sketch_cuda(const at::Tensor& x, const at::Tensor& signs,
                                const at::Tensor& coords, int64_t block_size, bool validate) {
  check_cuda(x, "hadamard_sketch", "x");
  const SketchShape s = check_hadamard_sketch_args(x, signs, coords, block_size, validate);
  const c10::cuda::CUDAGuard guard(x.device());
  auto out = at::empty({s.batch, s.heads, s.num_blocks, s.sketch_dim}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  launch_hadamard_sketch(x, s, signs.contiguous(), coords.contiguous(), out.data_ptr<float>(),
                         out.stride(0), out.stride(1), out.stride(2), 0,
                         c10::cuda::getCurrentCUDAStream(), "hadamard_sketch");
  return out;
}

at::Tensor score_blocks_cuda(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                             double logit_scale) {
  check_cuda(q_sketch, "score_blocks", "q_sketch");
  check_score_blocks_args(q_sketch, k_sketch, logit_scale);
  const c10::cuda::CUDAGuard guard(q_sketch.device());
  auto out = at::empty({q_sketch.size(0), q_sketch.size(2), k_sketch.size(2)}, q_sketch.options());
  if (out.numel() == 0) return out;
  ScoreBlocksParams p{};
  p.q_sketch = q_sketch.data_ptr<float>();
  p.k_sketch = k_sketch.data_ptr<float>();
  p.out = out.data_ptr<float>();
  p.q_batch_stride = q_sketch.stride(0);
  p.q_head_stride = q_sketch.stride(1);
  p.q_row_stride = q_sketch.stride(2);
  p.k_batch_stride = k_sketch.stride(0);
  p.k_head_stride = k_sketch.stride(1);
  p.k_row_stride = k_sketch.stride(2);
  p.batch = static_cast<int>(q_sketch.size(0));
  p.num_q_heads = static_cast<int>(q_sketch.size(1));
  p.num_kv_heads = static_cast<int>(k_sketch.size(1));
  p.rows = static_cast<int>(q_sketch.size(2));
  p.cols = static_cast<int>(k_sketch.size(2));
  p.sketch_dim = static_cast<int>(q_sketch.size(3));
  p.logit_scale = static_cast<float>(logit_scale);
  check_launch(run_score_blocks(p, c10::cuda::getCurrentCUDAStream()), "score_blocks");
  return out;
}

std::tuple<at::Tensor, at::Tensor> select_blocks_cuda(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks) {
  check_cuda(scores, "select_blocks", "scores");
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks);
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t batch = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  auto block_index = at::empty({batch, 1, nq, nk}, scores.options().dtype(at::kInt));
  auto num_selected = at::empty({batch, 1, nq}, scores.options().dtype(at::kInt));
  if (batch * nq == 0) return {block_index, num_selected};
  SelectBlocksParams p{};
  p.scores = scores.data_ptr<float>();
  p.scores_batch_stride = scores.stride(0);
  p.scores_row_stride = scores.stride(1);
  p.block_index = block_index.data_ptr<int>();
  p.num_selected = num_selected.data_ptr<int>();
  p.batch = static_cast<int>(batch);
  p.num_queries = static_cast<int>(num_queries);
  p.num_keys = static_cast<int>(num_keys);
  p.block_size = static_cast<int>(block_size);
  p.num_q_blocks = static_cast<int>(nq);
  p.num_kv_blocks = static_cast<int>(nk);
  p.keep_frac = keep_frac;
  p.window_tokens = static_cast<int>(window_tokens);
  p.exclude_sink_tokens = static_cast<int>(exclude_sink_tokens);
  p.attend_sink_tokens = static_cast<int>(attend_sink_tokens);
  p.dense_last_q_blocks = static_cast<int>(dense_last_q_blocks);
  check_launch(run_select_blocks(p, c10::cuda::getCurrentCUDAStream()), "select_blocks");
  return {block_index, num_selected};
}

namespace {

double default_scale(const AttentionShape& s, std::optional<double> softmax_scale) {
  return softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(s.head_dim)));
}

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
  p.q_batch_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.q_token_stride = q.stride(2);
  p.k_batch_stride = k.stride(0);
  p.k_head_stride = k.stride(1);
  p.k_token_stride = k.stride(2);
  p.v_batch_stride = v.stride(0);
  p.v_head_stride = v.stride(1);
  p.v_token_stride = v.stride(2);
  p.out_batch_stride = out.stride(0);
  p.out_head_stride = out.stride(1);
  p.out_token_stride = out.stride(2);
  p.lse_batch_stride = lse.stride(0);
  p.lse_head_stride = lse.stride(1);
  p.block_index = block_index.data_ptr<int>();
  p.num_selected = num_selected.data_ptr<int>();
  p.index_batch_stride = block_index.stride(0);
  p.index_head_stride = block_index.stride(1);
  p.index_row_stride = block_index.stride(2);
  p.count_batch_stride = num_selected.stride(0);
  p.count_head_stride = num_selected.stride(1);
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
  p.softmax_scale = static_cast<float>(default_scale(s, softmax_scale));
  return p;
}

AttentionShape check_cuda_attention(const char* op, const at::Tensor& q, const at::Tensor& k,
                                    const at::Tensor& v, const at::Tensor& block_index,
                                    const at::Tensor& num_selected, bool validate) {
  check_cuda(q, op, "q");
  const AttentionShape s = check_attention_args(op, q, k, v, block_index, num_selected, kBlockSize);
  if (validate && !current_stream_is_capturing(q)) {
    validate_block_index(op, block_index, num_selected, s);
  }
  return s;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> sparse_prefill_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, std::optional<double> softmax_scale, bool validate) {
  constexpr const char* op = "sparse_prefill";
  if (softmax_scale.has_value()) check_finite(*softmax_scale, op, "softmax_scale");
  const c10::cuda::CUDAGuard guard(q.device());
  const AttentionShape s = check_cuda_attention(op, q, k, v, block_index, num_selected, validate);
  if (q.scalar_type() == at::kFloat) {  // the tensor-core kernels take fp16/bf16
    return masked_attention_aten(q, k, v, block_index, num_selected, s, default_scale(s, softmax_scale),
                                 std::nullopt);
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
  if (softmax_scale.has_value()) check_finite(*softmax_scale, op, "softmax_scale");
  const c10::cuda::CUDAGuard guard(q.device());
  SW_CHECK_ARG(q.dim() != 4 || q.size(2) == 1, "sparse_decode", "q",
               "must hold one query per sequence [batch, num_q_heads, 1, head_dim], got shape ",
               q.sizes());
  const AttentionShape s =
      check_cuda_attention(op, q, k_cache, v_cache, block_index, num_selected, validate);
  check_decode_seq_lens(op, seq_lens, q, block_index, num_selected, s, validate);
  if (q.scalar_type() == at::kFloat) {  // the tensor-core kernels take fp16/bf16
    return masked_attention_aten(q, k_cache, v_cache, block_index, num_selected, s,
                                 default_scale(s, softmax_scale), seq_lens);
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

void update_block_matrix_cuda(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                              int64_t block_size) {
  constexpr const char* op = "update_block_matrix_";
  check_cuda(transition, op, "transition");
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const c10::cuda::CUDAGuard guard(transition.device());
  const auto r_c = r.contiguous();
  const int64_t n = transition.size(1);
  const float alpha = 1.0f / static_cast<float>((num_keys - 1) % block_size + 1);
  check_launch(run_update_block_matrix(transition.data_ptr<float>(), transition.stride(0),
                                       transition.stride(1), r_c.data_ptr<float>(),
                                       static_cast<int>(transition.size(0)), static_cast<int>(n),
                                       alpha, c10::cuda::getCurrentCUDAStream()),
               op);
}

void update_window_logits_cuda(const at::Tensor& window_logits, const at::Tensor& query_window,
                               const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                               double logit_scale) {
  constexpr const char* op = "update_window_logits_";
  check_cuda(window_logits, op, "window_logits");
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const c10::cuda::CUDAGuard guard(window_logits.device());
  WindowLogitsParams p{};
  p.logits = window_logits.data_ptr<float>();
  p.query_window = query_window.data_ptr<float>();
  p.key_blocks = key_blocks.data_ptr<float>();
  p.l_batch_stride = window_logits.stride(0);
  p.l_head_stride = window_logits.stride(1);
  p.l_row_stride = window_logits.stride(2);
  p.q_batch_stride = query_window.stride(0);
  p.q_head_stride = query_window.stride(1);
  p.q_row_stride = query_window.stride(2);
  p.k_batch_stride = key_blocks.stride(0);
  p.k_head_stride = key_blocks.stride(1);
  p.k_row_stride = key_blocks.stride(2);
  p.batch = static_cast<int>(window_logits.size(0));
  p.num_q_heads = static_cast<int>(window_logits.size(1));
  p.num_kv_heads = static_cast<int>(key_blocks.size(1));
  p.window = static_cast<int>(window_logits.size(2));
  p.num_blocks = static_cast<int>(num_blocks);
  p.sketch_dim = static_cast<int>(query_window.size(3));
  p.row_begin = slot < 0 ? 0 : static_cast<int>(slot);
  p.row_end = slot < 0 ? p.window : p.row_begin + 1;
  p.refresh_last_column = slot >= 0;
  p.logit_scale = static_cast<float>(logit_scale);
  check_launch(run_update_window_logits(p, c10::cuda::getCurrentCUDAStream()), op);
}

at::Tensor window_block_scores_cuda(const at::Tensor& window_logits, int64_t window_fill,
                                    int64_t num_blocks) {
  constexpr const char* op = "window_block_scores";
  check_cuda(window_logits, op, "window_logits");
  check_window_block_scores_args(window_logits, window_fill, num_blocks);
  SW_CHECK_ARG(window_logits.size(0) <= 65535, op, "window_logits",
               "must have batch <= 65535 on CUDA, got ", window_logits.size(0));
  const c10::cuda::CUDAGuard guard(window_logits.device());
  const int64_t batch = window_logits.size(0), heads = window_logits.size(1);
  auto r = at::empty({batch, num_blocks}, window_logits.options());
  // Scratch: one logsumexp per (batch, head, slot).
  auto row_offset = at::empty({batch * heads * window_fill}, window_logits.options());
  WindowScoresParams p{};
  p.logits = window_logits.data_ptr<float>();
  p.row_offset = row_offset.data_ptr<float>();
  p.r = r.data_ptr<float>();
  p.l_batch_stride = window_logits.stride(0);
  p.l_head_stride = window_logits.stride(1);
  p.l_row_stride = window_logits.stride(2);
  p.batch = static_cast<int>(batch);
  p.num_q_heads = static_cast<int>(heads);
  p.window_fill = static_cast<int>(window_fill);
  p.num_blocks = static_cast<int>(num_blocks);
  check_launch(run_window_block_scores(p, c10::cuda::getCurrentCUDAStream()), op);
  return r;
}

}  // namespace sketchwalk
