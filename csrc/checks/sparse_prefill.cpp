// Argument checks of sparse_prefill, in two steps so that the CUDA wrapper can check what its
// kernels alone need in between (csrc/cuda/sparse_prefill.cpp): check_sparse_prefill_args,
// q, k, v and the block index shapes (check_attention_args, shared with sparse_decode) and
// softmax_scale; then check_sparse_prefill_index, with validate (and no graph capture) the
// block index contents (validate_block_index). The CPU version always passes validate = true.
#include "checks.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

AttentionShape check_sparse_prefill_args(const at::Tensor& q, const at::Tensor& k,
                                         const at::Tensor& v, const at::Tensor& block_index,
                                         const at::Tensor& num_selected,
                                         std::optional<double> softmax_scale) {
  constexpr const char* op = "sparse_prefill";
  const AttentionShape s =
      check_attention_args(op, q, k, v, block_index, num_selected, kIndexBlockSize);
  check_softmax_scale(softmax_scale, op);
  return s;
}

void check_sparse_prefill_index(const at::Tensor& q, const at::Tensor& block_index,
                                const at::Tensor& num_selected, const AttentionShape& s,
                                bool validate) {
  constexpr const char* op = "sparse_prefill";
  if (read_values(validate, q)) validate_block_index(op, block_index, num_selected, s);
}

}  // namespace sketchwalk
