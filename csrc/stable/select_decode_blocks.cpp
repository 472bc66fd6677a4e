// select_decode_blocks_ on PyTorch's stable ABI, for every device: the composition of
// csrc/composite/select_decode_blocks.cpp (which documents the steps), its ops called through
// the dispatcher (csrc/stable/call_op.h), so each runs its own CPU or CUDA kernel and the
// composition adds no numerics of its own. The CUDA key has the fused version
// (csrc/stable/select_decode_blocks_cuda.cpp).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/select_decode_blocks.h"
#include "stable/call_op.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> select_decode_blocks(
    Tensor q, Tensor k, Tensor key_blocks, Tensor query_window, Tensor window_logits,
    Tensor transition, Tensor signs, Tensor coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  const int64_t n = check_select_decode_blocks_args(
      q, k, key_blocks, query_window, window_logits, transition, signs, coords, window_fill,
      pushes, block_size, degree, damping, logit_scale, keep_frac, window_tokens,
      exclude_sink_tokens, attend_sink_tokens);
  const int64_t num_keys = k.size(2);
  const int64_t one = 1;
  const bool trust = false;
  const Tensor q_token =
      call_op<Tensor>("sketchwalk::hadamard_sketch", "", q, signs, coords, one, trust);
  const Tensor k_new = torch::stable::narrow(k, 2, num_keys - 1, 1);
  const Tensor k_token =
      call_op<Tensor>("sketchwalk::hadamard_sketch", "", k_new, signs, coords, one, trust);
  call_op("sketchwalk::update_block_sketch_", "", key_blocks, k_token, num_keys - 1, block_size);
  call_op("sketchwalk::push_query_window_", "", query_window, q_token, pushes);
  const int64_t slot = pushes % query_window.size(2);
  call_op("sketchwalk::update_window_logits_", "", window_logits, query_window, key_blocks, n,
          slot, logit_scale);
  const Tensor r = call_op<Tensor>("sketchwalk::window_block_scores", "", window_logits,
                                   window_fill, n);
  Tensor rows = torch::stable::narrow(transition, 1, 0, n);
  const Tensor a = torch::stable::narrow(rows, 2, 0, n);
  call_op("sketchwalk::update_block_matrix_", "", a, r, num_keys, block_size);
  const std::optional<Tensor> no_init;
  const Tensor walked = call_op<Tensor>("sketchwalk::walk_blocks", "",
                                        torch::stable::unsqueeze(r, 1), a, no_init, degree,
                                        damping);
  const int64_t dense_last_q_blocks = 0;
  const std::optional<Tensor> no_dense_rows;
  return call_op<Tensor, Tensor>("sketchwalk::select_blocks", "", walked, one, num_keys,
                                 block_size, keep_frac, window_tokens, exclude_sink_tokens,
                                 attend_sink_tokens, dense_last_q_blocks, no_dense_rows,
                                 false);
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CompositeExplicitAutograd, m) {
  m.impl("select_decode_blocks_", TORCH_BOX(&sketchwalk::stable::select_decode_blocks));
}
