// select_decode_blocks_: the whole selection half of one decode step (docs/spec.md section 6,
// steps 1-4; step 1 incrementally, from cached window logits) in one op, so a decode step
// costs two op calls from Python instead of ~10.
// It chains the project's own ops through the dispatcher (each runs its CPU or CUDA
// kernel), so it is device-generic and adds no numerics of its own.
// Checks: csrc/checks/select_decode_blocks.h. The CUDA version, fused:
// csrc/cuda/select_decode_blocks.cpp.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "checks.h"
#include "checks/select_decode_blocks.h"
#include "ops.h"

namespace sketchwalk {

namespace {

template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_decode_blocks_(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes, int64_t block_size,
    int64_t degree, double damping, double logit_scale, double keep_frac, int64_t window_tokens,
    int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  static const auto sketch = find_op<at::Tensor(const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, int64_t, bool)>(
      "sketchwalk::hadamard_sketch");
  static const auto update_sketch =
      find_op<void(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>(
          "sketchwalk::update_block_sketch_");
  static const auto push_window =
      find_op<void(const at::Tensor&, const at::Tensor&, int64_t)>("sketchwalk::push_query_window_");
  static const auto update_logits =
      find_op<void(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                   double)>("sketchwalk::update_window_logits_");
  static const auto window_scores = find_op<at::Tensor(const at::Tensor&, int64_t, int64_t)>(
      "sketchwalk::window_block_scores");
  static const auto update_matrix =
      find_op<void(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>(
          "sketchwalk::update_block_matrix_");
  static const auto walk = find_op<at::Tensor(const at::Tensor&, const at::Tensor&,
                                              const std::optional<at::Tensor>&, int64_t, double)>(
      "sketchwalk::walk_blocks");
  static const auto select =
      find_op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, int64_t, int64_t, int64_t,
                                                 double, int64_t, int64_t, int64_t, int64_t,
                                                 const std::optional<at::Tensor>&, bool)>(
          "sketchwalk::select_blocks");

  const int64_t n = check_select_decode_blocks_args(
      q, k, key_blocks, query_window, window_logits, transition, signs, coords, window_fill,
      pushes, block_size, degree, damping, logit_scale, keep_frac, window_tokens,
      exclude_sink_tokens, attend_sink_tokens);
  const int64_t num_keys = k.size(2);

  const auto q_token = sketch.call(q, signs, coords, 1, false);  // [B, Hq, 1, m]
  const auto k_token = sketch.call(k.narrow(2, num_keys - 1, 1), signs, coords, 1, false);
  update_sketch.call(key_blocks, k_token, num_keys - 1, block_size);
  push_window.call(query_window, q_token, pushes);
  // r: softmax over key blocks for each window query and head, summed and normalized, from
  // the cached logits. Only two parts of them change per step: the new query's row (its slot)
  // and the column of the block the new key fell in (its mean moved, or it just opened);
  // every other block is complete, so its column is final.
  update_logits.call(window_logits, query_window, key_blocks, n, pushes % query_window.size(2),
                     logit_scale);
  const auto r = window_scores.call(window_logits, window_fill, n);
  const auto a = transition.narrow(1, 0, n).narrow(2, 0, n);
  update_matrix.call(a, r, num_keys, block_size);
  const auto walked = walk.call(r.unsqueeze(1), a, std::nullopt, degree, damping);
  return select.call(walked, 1, num_keys, block_size, keep_frac, window_tokens,
                     exclude_sink_tokens, attend_sink_tokens, 0, std::nullopt, false);
}

}  // namespace sketchwalk
