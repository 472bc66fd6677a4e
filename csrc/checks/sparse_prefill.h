// Argument checks of sparse_prefill, in two steps so that the CUDA wrapper can check what its
// kernels alone need in between (csrc/cuda/sparse_prefill.cpp): check_sparse_prefill_args,
// q, k, v and the block index shapes (check_attention_args of csrc/checks/attention.h, shared
// with sparse_decode) and softmax_scale; then check_sparse_prefill_index, with validate (and no
// graph capture) the block index contents (validate_block_index). The CPU versions always pass
// validate = true. Templates over the tensor type (ATen and the stable ABI).
#pragma once

#include <optional>

#include "checks/attention.h"
#include "sketchwalk/block_index.h"
#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
AttentionShape check_sparse_prefill_args(const T& q, const T& k, const T& v, const T& block_index,
                                         const T& num_selected,
                                         std::optional<double> softmax_scale) {
  constexpr const char* op = "sparse_prefill";
  const AttentionShape s =
      check_attention_args(op, q, k, v, block_index, num_selected, kIndexBlockSize);
  check_softmax_scale(softmax_scale, op);
  return s;
}

template <typename T>
void check_sparse_prefill_index(const T& q, const T& block_index, const T& num_selected,
                                const AttentionShape& s, bool validate) {
  if (read_values(tensor_world{}, validate, q)) {
    validate_block_index("sparse_prefill", block_index, num_selected, s);
  }
}

}  // namespace sketchwalk
