// select_decode_blocks_, CUDA: the same steps as the device-generic composition in
// decode_plan.cpp (which defines the semantics and serves the CPU), issued as eight kernel
// launches and five allocations with no ATen compute op in between. At batch 1 a decode step
// is bound by host issue time, not by the GPU, so the launch count is the cost:
//   1. sketch the new query straight into its window slot;
//   2. sketch the new key and fold it into its key block's running mean in the same pass;
//   3. refresh the cached window logits (the new row, the open block's column);
//   4-5. r from the cached logits (row logsumexp, column sums);
//   6. blend r into A (row and column of the open block, row renormalization);
//   7. the walk over A (one launch per degree + one to finish), deterministic;
//   8. the quantile selection.
// Every host-side check of the composed ops is repeated here before anything is launched.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/launch.h"
#include "cuda_host.h"
#include "ops.h"

namespace sketchwalk {

namespace {

void check_state_buffer(const at::Tensor& t, const at::Tensor& ref, const char* op,
                        const char* arg) {
  check_dtype(t, op, arg, {at::kFloat});
  check_last_dim_contiguous(t, op, arg);
  check_same_device(t, ref, op, arg, "q");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_decode_blocks_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  constexpr const char* op = "select_decode_blocks_";
  check_cuda(q, op, "q");
  const int64_t n = check_select_decode_blocks_args(q, k, key_blocks, query_window, window_logits,
                                                    transition, window_fill, pushes, block_size);
  const int64_t num_keys = k.size(2);
  check_same_device(k, q, op, "k", "q");
  const auto k_new = k.narrow(2, num_keys - 1, 1);
  const SketchShape sq = check_hadamard_sketch_args(q, signs, coords, 1, false);
  const SketchShape sk = check_hadamard_sketch_args(k_new, signs, coords, 1, false);
  check_state_buffer(key_blocks, q, op, "key_blocks");
  check_state_buffer(query_window, q, op, "query_window");
  check_state_buffer(window_logits, q, op, "window_logits");
  check_state_buffer(transition, q, op, "transition");
  SW_CHECK_ARG(query_window.size(0) == sq.batch && query_window.size(1) == sq.heads &&
                   query_window.size(3) == sq.sketch_dim,
               op, "query_window", "must be [batch=", sq.batch, ", num_q_heads=", sq.heads,
               ", W, sketch_dim=", sq.sketch_dim, "], got ", query_window.sizes());
  SW_CHECK_ARG(key_blocks.size(0) == sk.batch && key_blocks.size(1) == sk.heads &&
                   key_blocks.size(3) == sk.sketch_dim,
               op, "key_blocks", "must be [batch=", sk.batch, ", num_kv_heads=", sk.heads,
               ", capacity, sketch_dim=", sk.sketch_dim, "], got ", key_blocks.sizes());
  SW_CHECK_ARG(transition.size(0) == sq.batch, op, "transition", "must have batch=", sq.batch,
               ", got ", transition.sizes());
  SW_CHECK_ARG(degree >= 0, op, "degree", "must be >= 0, got ", degree);
  SW_CHECK_ARG(damping >= 0.0 && damping <= 1.0, op, "damping", "must lie in [0, 1], got ", damping);
  SW_CHECK_ARG(sq.batch <= 65535, op, "q", "must have batch <= 65535 on CUDA, got ", sq.batch);
  const int64_t slot = pushes % query_window.size(2);
  check_update_window_logits_args(window_logits, query_window, key_blocks, n, slot);
  const auto a = transition.narrow(1, 0, n).narrow(2, 0, n);

  const c10::cuda::CUDAGuard guard(q.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const auto signs_c = signs.contiguous();
  const auto coords_c = coords.contiguous();
  const auto into_row = [](const at::Tensor& buf, int64_t row) {
    return buf.data_ptr<float>() + row * buf.stride(2);
  };
  launch_hadamard_sketch(q, sq, signs_c, coords_c, into_row(query_window, slot),
                         query_window.stride(0), query_window.stride(1), query_window.stride(2),
                         0, stream, op);
  const int64_t key_block = (num_keys - 1) / block_size;
  launch_hadamard_sketch(k_new, sk, signs_c, coords_c, into_row(key_blocks, key_block),
                         key_blocks.stride(0), key_blocks.stride(1), key_blocks.stride(2),
                         static_cast<int>((num_keys - 1) % block_size), stream, op);
  update_window_logits_cuda(window_logits, query_window, key_blocks, n, slot, logit_scale);
  const auto r = window_block_scores_cuda(window_logits, window_fill, n);  // [B, n]
  update_block_matrix_cuda(a, r, num_keys, block_size);

  const int batch = static_cast<int>(sq.batch);
  auto walked = at::empty({sq.batch, 1, n}, r.options());
  auto workspace = at::empty(
      {static_cast<int64_t>(decode_walk_workspace_floats(batch, static_cast<int>(n)))},
      r.options());
  check_launch(run_decode_walk(r.data_ptr<float>(), a.data_ptr<float>(), a.stride(0), a.stride(1),
                               batch, static_cast<int>(n), static_cast<int>(degree),
                               static_cast<float>(damping), workspace.data_ptr<float>(),
                               walked.data_ptr<float>(), stream),
               op);
  return select_blocks_cuda(walked, 1, num_keys, block_size, keep_frac, window_tokens,
                            exclude_sink_tokens, attend_sink_tokens, 0);
}

}  // namespace sketchwalk
