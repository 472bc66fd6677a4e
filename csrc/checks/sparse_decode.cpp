// Argument checks of sparse_decode, in two steps so that the CUDA wrapper can check what its
// kernels alone need in between (csrc/cuda/sparse_decode.cpp): check_sparse_decode_args,
// one query per sequence, then q, k_cache, v_cache and the block index shapes
// (check_attention_args, shared with sparse_prefill) and softmax_scale; then
// check_sparse_decode_index, with validate (and no graph capture) the block index contents,
// and seq_lens (its values too with validate), which bounds each row's blocks. The CPU version
// always passes validate = true.
#include <ATen/ATen.h>

#include "checks.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

// seq_lens: shape and device; with validate (and no graph capture) also
// 1 <= seq_lens[b] <= num_keys and every used index entry of row b <= (seq_lens[b] - 1) / 64.
void check_decode_seq_lens(const char* op, const std::optional<at::Tensor>& seq_lens,
                           const at::Tensor& q, const at::Tensor& block_index,
                           const at::Tensor& num_selected, const AttentionShape& s,
                           bool validate) {
  if (!seq_lens.has_value()) return;
  check_seq_lens_tensor(op, seq_lens, s.batch, q, "q");
  if (!read_values(validate, q)) return;
  check_seq_lens_values(op, *seq_lens, 1, s.num_keys, "1 <= length <= num_keys of 'k_cache'");
  if (block_index.numel() == 0) return;
  // Each used entry of batch row b must be a live block of that sequence: <= (L_b - 1) / 64.
  const auto slot = at::arange(s.max_selected, block_index.options());
  const auto used = at::lt(slot.view({1, 1, 1, -1}), num_selected.unsqueeze(-1));
  const auto limit = (*seq_lens - 1).div(s.block_size, "floor").view({-1, 1, 1, 1});
  SW_CHECK_ARG(at::all(at::logical_or(used.logical_not(), block_index <= limit)).item<bool>(), op,
               "block_index", "holds a key block at or past a sequence's length: each used entry "
               "of batch row b must be <= (seq_lens[b] - 1) / ", s.block_size);
}

}  // namespace

AttentionShape check_sparse_decode_args(const at::Tensor& q, const at::Tensor& k_cache,
                                        const at::Tensor& v_cache, const at::Tensor& block_index,
                                        const at::Tensor& num_selected,
                                        std::optional<double> softmax_scale) {
  constexpr const char* op = "sparse_decode";
  SW_CHECK_ARG(q.dim() != 4 || q.size(2) == 1, op, "q",
               "must hold one query per sequence [batch, num_q_heads, 1, head_dim], got shape ",
               q.sizes());
  const AttentionShape s =
      check_attention_args(op, q, k_cache, v_cache, block_index, num_selected, kIndexBlockSize);
  check_softmax_scale(softmax_scale, op);
  return s;
}

void check_sparse_decode_index(const at::Tensor& q, const at::Tensor& block_index,
                               const at::Tensor& num_selected, const AttentionShape& s,
                               const std::optional<at::Tensor>& seq_lens, bool validate) {
  constexpr const char* op = "sparse_decode";
  if (read_values(validate, q)) validate_block_index(op, block_index, num_selected, s);
  check_decode_seq_lens(op, seq_lens, q, block_index, num_selected, s, validate);
}

}  // namespace sketchwalk
