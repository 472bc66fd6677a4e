// Argument checks of hadamard_sketch and hadamard_sketch_varlen: x, signs, coords and
// block_size (and the packed sequences' cu_seqlens and max_blocks); with validate (and no graph
// capture) also the values of signs and coords, check_sketch_transform_values, which
// select_decode_blocks_ runs too, and of cu_seqlens.
#include <ATen/ATen.h>

#include <climits>

#include "checks.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

namespace {

// signs, coords and block_size against head_dim (s.head_dim set); fills the sketch sizes.
void check_sketch_transform_args(const char* op, const at::Tensor& x, const at::Tensor& signs,
                                 const at::Tensor& coords, int64_t block_size, SketchShape& s) {
  check_rank(signs, op, "signs", 1, "[n], n = next_pow2(head_dim)");
  check_dtype(signs, op, "signs", {at::kFloat});
  check_rank(coords, op, "coords", 1, "[sketch_dim]");
  check_dtype(coords, op, "coords", {at::kLong});
  check_same_device(signs, x, op, "signs", "x");
  check_same_device(coords, x, op, "coords", "x");
  check_last_dim_contiguous(signs, op, "signs");
  check_last_dim_contiguous(coords, op, "coords");
  SW_CHECK_ARG(s.head_dim >= 1 && s.head_dim <= kMaxSketchHeadDim, op, "x", "has head_dim ",
               s.head_dim, "; supported: 1 <= head_dim <= ", kMaxSketchHeadDim);
  check_int32(block_size, op, "block_size", 1);
  s.block_size = block_size;
  s.sketch_pow2 = next_pow2(static_cast<int>(s.head_dim));
  SW_CHECK_ARG(signs.size(0) == s.sketch_pow2, op, "signs", "must have n = next_pow2(head_dim) = ",
               s.sketch_pow2, " entries, got ", signs.size(0));
  s.sketch_dim = coords.size(0);
  SW_CHECK_ARG(s.sketch_dim >= 1 && s.sketch_dim <= s.sketch_pow2, op, "coords",
               "must have 1 <= sketch_dim <= n = ", s.sketch_pow2, " entries, got ", s.sketch_dim);
}

}  // namespace

SketchShape check_hadamard_sketch_args(const at::Tensor& x, const at::Tensor& signs,
                                       const at::Tensor& coords, int64_t block_size,
                                       bool validate) {
  constexpr const char* op = "hadamard_sketch";
  check_tensor(x, op, "x", 4, "[batch, heads, tokens, head_dim]",
               {at::kHalf, at::kBFloat16, at::kFloat});
  SketchShape s{};
  s.batch = x.size(0);
  s.heads = x.size(1);
  s.tokens = x.size(2);
  s.head_dim = x.size(3);
  check_sketch_transform_args(op, x, signs, coords, block_size, s);
  SW_CHECK_ARG(s.tokens <= INT32_MAX && s.batch <= INT32_MAX && s.heads <= INT32_MAX, op, "x",
               "must have batch, heads and tokens <= ", INT32_MAX, ", got shape ", x.sizes());
  s.num_blocks = (s.tokens + block_size - 1) / block_size;
  // Value checks read memory (one sync on CUDA); skipped while a CUDA graph is captured.
  if (read_values(validate, x)) check_sketch_transform_values(op, signs, coords, s.sketch_pow2);
  return s;
}

SketchShape check_hadamard_sketch_varlen_args(const at::Tensor& x, const at::Tensor& signs,
                                              const at::Tensor& coords, int64_t block_size,
                                              const at::Tensor& cu_seqlens, int64_t max_blocks,
                                              bool validate) {
  constexpr const char* op = "hadamard_sketch_varlen";
  check_tensor(x, op, "x", 3, "[total_tokens, heads, head_dim] (packed tokens, NHD)",
               {at::kHalf, at::kBFloat16, at::kFloat});
  check_tensor(cu_seqlens, op, "cu_seqlens", 1, "[num_seqs + 1]", {at::kInt});
  check_same_device(cu_seqlens, x, op, "cu_seqlens", "x");
  check_last_dim_contiguous(cu_seqlens, op, "cu_seqlens");
  SW_CHECK_ARG(cu_seqlens.size(0) >= 1, op, "cu_seqlens",
               "must have num_seqs + 1 >= 1 entries, got 0");
  SketchShape s{};
  s.batch = cu_seqlens.size(0) - 1;
  s.heads = x.size(1);
  s.tokens = x.size(0);
  s.head_dim = x.size(2);
  check_sketch_transform_args(op, x, signs, coords, block_size, s);
  SW_CHECK_ARG(s.tokens <= INT32_MAX && s.heads <= INT32_MAX, op, "x",
               "must have tokens and heads <= ", INT32_MAX, ", got shape ", x.sizes());
  check_int32(max_blocks, op, "max_blocks", 0);
  s.num_blocks = max_blocks;
  if (read_values(validate, x)) {
    check_sketch_transform_values(op, signs, coords, s.sketch_pow2);
    check_cu_seqlens_values(op, "cu_seqlens", cu_seqlens, s.tokens, block_size, max_blocks,
                            "max_blocks");
  }
  return s;
}

void check_sketch_transform_values(const char* op, const at::Tensor& signs,
                                   const at::Tensor& coords, int64_t sketch_pow2) {
  auto [lo, hi] = at::aminmax(coords);
  SW_CHECK_ARG(lo.item<int64_t>() >= 0 && hi.item<int64_t>() < sketch_pow2, op, "coords",
               "must hold coordinates in [0, n = ", sketch_pow2, "), got values in [",
               lo.item<int64_t>(), ", ", hi.item<int64_t>(), "]");
  if (coords.numel() > 1) {
    const auto sorted = std::get<0>(at::sort(coords));
    SW_CHECK_ARG(!at::any(sorted.slice(0, 1) == sorted.slice(0, 0, -1)).item<bool>(), op, "coords",
                 "must hold distinct coordinates (a random permutation's first sketch_dim entries)");
  }
  SW_CHECK_ARG(at::all(at::logical_or(signs == 1, signs == -1)).item<bool>(), op, "signs",
               "must hold only +1 and -1");
}

}  // namespace sketchwalk
