// select_decode_blocks_, CUDA: the same steps as the device-generic composition in
// csrc/composite/select_decode_blocks.cpp (which defines the semantics and serves the CPU),
// issued as eight kernel launches and five allocations with no ATen compute op in between. At
// batch 1 a decode step is bound by host issue time, not by the GPU, so the launch count is
// the cost:
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
#include "checks/hadamard_sketch.h"
#include "checks/update_window_logits.h"
#include "cuda/hadamard_sketch_launch.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> select_decode_blocks_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  constexpr const char* op = "select_decode_blocks_";
  check_cuda(q, op, "q");
  const int64_t n = check_select_decode_blocks_args(
      q, k, key_blocks, query_window, window_logits, transition, signs, coords, window_fill,
      pushes, block_size, degree, damping, logit_scale, keep_frac, window_tokens,
      exclude_sink_tokens, attend_sink_tokens);
  const int64_t num_keys = k.size(2);
  const auto k_new = k.narrow(2, num_keys - 1, 1);
  // Sizes for the sketch launches (the shared check above already named any bad argument).
  const SketchShape sq = check_hadamard_sketch_args(q, signs, coords, 1, false);
  const SketchShape sk = check_hadamard_sketch_args(k_new, signs, coords, 1, false);
  SW_CHECK_ARG(sq.batch <= kMaxGridYZ, op, "q", "must have batch <= ", kMaxGridYZ, " on CUDA, got ",
               sq.batch);
  const int64_t slot = pushes % query_window.size(2);
  check_update_window_logits_args(window_logits, query_window, key_blocks, n, slot, logit_scale);
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
