// Argument checks of hadamard_sketch and hadamard_sketch_varlen: x, signs, coords and
// block_size (and the packed sequences' cu_seqlens and max_blocks); with validate (and no graph
// capture) also the values of signs and coords, check_sketch_transform_values, which
// select_decode_blocks_ runs too, and of cu_seqlens. Templates over the tensor type: the ATen
// ops (csrc/cpu/hadamard_sketch.cpp, csrc/cuda/hadamard_sketch.cpp) and the stable-ABI ones
// (csrc/stable/hadamard_sketch{,_cuda}.cpp) run the same checks with the same messages.
#pragma once

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "checks/keys4_cache.h"
#include "sketchwalk/common.h"
#include "tensor_checks.h"

namespace sketchwalk {

struct SketchShape {
  int64_t batch, heads, tokens, head_dim, block_size, num_blocks, sketch_pow2, sketch_dim;
};

// coords in [0, sketch_pow2) and distinct, signs all +-1 (reads memory: one copy to the host
// each on CUDA).
template <typename T>
void check_sketch_transform_values(const char* op, const T& signs, const T& coords,
                                   int64_t sketch_pow2) {
  if (coords.numel() > 0) {
    const T c_host = host_contiguous(tensor_world{}, coords);
    const int64_t* c = c_host.template const_data_ptr<int64_t>();
    std::vector<int64_t> sorted(c, c + coords.numel());
    std::sort(sorted.begin(), sorted.end());
    SW_CHECK_ARG(sorted.front() >= 0 && sorted.back() < sketch_pow2, op, "coords",
                 "must hold coordinates in [0, n = ", sketch_pow2, "), got values in [",
                 sorted.front(), ", ", sorted.back(), "]");
    SW_CHECK_ARG(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(), op, "coords",
                 "must hold distinct coordinates (a random permutation's first sketch_dim entries)");
  }
  if (signs.numel() > 0) {
    const T s_host = host_contiguous(tensor_world{}, signs);
    const float* s = s_host.template const_data_ptr<float>();
    SW_CHECK_ARG(std::all_of(s, s + signs.numel(), [](float v) { return v == 1.0f || v == -1.0f; }),
                 op, "signs", "must hold only +1 and -1");
  }
}

// Packed-sequence offsets (int32 [num_seqs + 1]): 0 first, `total` last, non-decreasing, and
// every sequence at most `max_blocks` blocks of block_size (reads memory: one sync on CUDA;
// callers run it only when read_values). `max_arg` names the argument that gave max_blocks.
template <typename T>
void check_cu_seqlens_values(const char* op, const char* arg, const T& cu_seqlens, int64_t total,
                             int64_t block_size, int64_t max_blocks, const char* max_arg) {
  const std::vector<int32_t> c = host_int32(tensor_world{}, cu_seqlens);
  const int64_t n = static_cast<int64_t>(c.size()) - 1;
  SW_CHECK_ARG(c[0] == 0 && c[n] == total, op, arg, "must start at 0 and end at ", total,
               " (the packed tokens), got ", c[0], " and ", c[n]);
  for (int64_t b = 0; b < n; ++b) {
    const int64_t len = static_cast<int64_t>(c[b + 1]) - c[b];
    SW_CHECK_ARG(len >= 0, op, arg, "must be non-decreasing, got ", c[b], " then ", c[b + 1],
                 " at sequence ", b);
    SW_CHECK_ARG((len + block_size - 1) / block_size <= max_blocks, op, max_arg, "is ",
                 max_blocks, ", fewer than the ", (len + block_size - 1) / block_size,
                 " blocks of sequence ", b, " (", len, " tokens)");
  }
}

namespace detail {

// signs, coords and block_size against head_dim (s.head_dim set); fills the sketch sizes.
template <typename T>
void check_sketch_transform_args(const char* op, const T& x, const T& signs, const T& coords,
                                 int64_t block_size, SketchShape& s) {
  using ScalarType = scalar_type_of<T>;
  check_rank(signs, op, "signs", 1, "[n], n = next_pow2(head_dim)");
  check_dtype(signs, op, "signs", {ScalarType::Float});
  check_rank(coords, op, "coords", 1, "[sketch_dim]");
  check_dtype(coords, op, "coords", {ScalarType::Long});
  check_same_device(signs, x, op, "signs", "x");
  check_same_device(coords, x, op, "coords", "x");
  check_last_dim_contiguous(signs, op, "signs");
  check_last_dim_contiguous(coords, op, "coords");
  SW_CHECK_ARG(s.head_dim >= 1 && s.head_dim <= kMaxSketchHeadDim, op, "x", "has head_dim ",
               s.head_dim, "; supported: 1 <= head_dim <= ", kMaxSketchHeadDim);
  check_int32(block_size, op, "block_size", 1);
  s.block_size = block_size;
  s.sketch_pow2 = next_pow2(static_cast<int>(s.head_dim));
  SW_CHECK_ARG(signs.size(0) == s.sketch_pow2, op, "signs",
               "must have n = next_pow2(head_dim) = ", s.sketch_pow2, " entries, got ",
               signs.size(0));
  s.sketch_dim = coords.size(0);
  SW_CHECK_ARG(s.sketch_dim >= 1 && s.sketch_dim <= s.sketch_pow2, op, "coords",
               "must have 1 <= sketch_dim <= n = ", s.sketch_pow2, " entries, got ", s.sketch_dim);
}

}  // namespace detail

template <typename T>
SketchShape check_hadamard_sketch_args(const T& x, const T& signs, const T& coords,
                                       int64_t block_size, bool validate) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "hadamard_sketch";
  check_tensor(x, op, "x", 4, "[batch, heads, tokens, head_dim]",
               {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  SketchShape s{};
  s.batch = x.size(0);
  s.heads = x.size(1);
  s.tokens = x.size(2);
  s.head_dim = x.size(3);
  detail::check_sketch_transform_args(op, x, signs, coords, block_size, s);
  SW_CHECK_ARG(s.tokens <= INT32_MAX && s.batch <= INT32_MAX && s.heads <= INT32_MAX, op, "x",
               "must have batch, heads and tokens <= ", INT32_MAX, ", got shape ", x.sizes());
  s.num_blocks = (s.tokens + block_size - 1) / block_size;
  // Value checks read memory (one sync on CUDA); skipped while a CUDA graph is captured.
  if (read_values(tensor_world{}, validate, x)) {
    check_sketch_transform_values(op, signs, coords, s.sketch_pow2);
  }
  return s;
}

// batch = num_seqs, tokens = total tokens, num_blocks = max_blocks.
template <typename T>
SketchShape check_hadamard_sketch_varlen_args(const T& x, const T& signs, const T& coords,
                                              int64_t block_size, const T& cu_seqlens,
                                              int64_t max_blocks, bool validate) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "hadamard_sketch_varlen";
  check_tensor(x, op, "x", 3, "[total_tokens, heads, head_dim] (packed tokens, NHD)",
               {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  check_tensor(cu_seqlens, op, "cu_seqlens", 1, "[num_seqs + 1]", {ScalarType::Int});
  check_same_device(cu_seqlens, x, op, "cu_seqlens", "x");
  check_last_dim_contiguous(cu_seqlens, op, "cu_seqlens");
  SW_CHECK_ARG(cu_seqlens.size(0) >= 1, op, "cu_seqlens",
               "must have num_seqs + 1 >= 1 entries, got 0");
  SketchShape s{};
  s.batch = cu_seqlens.size(0) - 1;
  s.heads = x.size(1);
  s.tokens = x.size(0);
  s.head_dim = x.size(2);
  detail::check_sketch_transform_args(op, x, signs, coords, block_size, s);
  SW_CHECK_ARG(s.tokens <= INT32_MAX && s.heads <= INT32_MAX, op, "x",
               "must have tokens and heads <= ", INT32_MAX, ", got shape ", x.sizes());
  check_int32(max_blocks, op, "max_blocks", 0);
  s.num_blocks = max_blocks;
  if (read_values(tensor_world{}, validate, x)) {
    check_sketch_transform_values(op, signs, coords, s.sketch_pow2);
    check_cu_seqlens_values(op, "cu_seqlens", cu_seqlens, s.tokens, block_size, max_blocks,
                            "max_blocks");
  }
  return s;
}

}  // namespace sketchwalk
