// Argument checks of update_block_matrix_: the block transition matrix, the decode scores r,
// num_keys and block_size. A template over the tensor type, shared by the ATen ops
// (csrc/cpu/update_block_matrix.cpp, csrc/cuda/update_block_matrix.cpp) and the stable-ABI one
// (csrc/stable/update_block_matrix.cpp).
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
void check_update_block_matrix_args(const T& transition, const T& r, int64_t num_keys,
                                    int64_t block_size) {
  using ScalarType = std::decay_t<decltype(std::declval<const T&>().scalar_type())>;
  constexpr const char* op = "update_block_matrix_";
  check_tensor(transition, op, "transition", 3, "[batch, n, n]", {ScalarType::Float});
  check_rank(r, op, "r", 2, "[batch, n]");
  check_dtype(r, op, "r", {ScalarType::Float});
  check_same_device(r, transition, op, "r", "transition");
  SW_CHECK_ARG(block_size >= 1, op, "block_size", "must be >= 1, got ", block_size);
  SW_CHECK_ARG(num_keys >= 1, op, "num_keys", "must be >= 1, got ", num_keys);
  const int64_t n = (num_keys + block_size - 1) / block_size;
  SW_CHECK_ARG(transition.size(1) == n && transition.size(2) == n, op, "transition",
               "must be [batch, n, n] with n = ceil(num_keys / block_size) = ", n, ", got ",
               transition.sizes());
  SW_CHECK_ARG(r.size(0) == transition.size(0) && r.size(1) == n, op, "r", "must be [batch=",
               transition.size(0), ", n=", n, "], got ", r.sizes());
}

}  // namespace sketchwalk
