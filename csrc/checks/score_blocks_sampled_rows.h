// Argument checks of score_blocks_sampled_rows (docs/spec.md section 11): q and k, rows and
// softmax_scale; plus what the CUDA kernel adds (16-bit inputs, the attention head dims, at most
// kMaxSampledRowsPerGroup rows per KV group, the grid, 16-byte aligned rows). Templates over the
// tensor type: the ATen ops (csrc/cpu/score_blocks_sampled_rows.cpp,
// csrc/cuda/score_blocks_sampled_rows.cpp) and the stable-ABI ones
// (csrc/stable/score_blocks_sampled_rows{,_cuda}.cpp) run the same checks.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>
#include <optional>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/sampled_rows.h"
#include "tensor_checks.h"

namespace sketchwalk {

struct SampledRowsShape {
  int64_t batch, num_q_heads, num_kv_heads, num_queries, num_keys, head_dim;
  int64_t num_q_blocks, num_k_blocks;
};

template <typename T>
SampledRowsShape check_score_blocks_sampled_rows_args(const T& q, const T& k, int64_t rows,
                                                      std::optional<double> softmax_scale) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "score_blocks_sampled_rows";
  check_tensor(q, op, "q", 4, "[batch, num_q_heads, num_queries, head_dim]",
               {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  check_rank(k, op, "k", 4, "[batch, num_kv_heads, num_keys, head_dim]");
  SW_CHECK_ARG(k.scalar_type() == q.scalar_type(), op, "k", "must have the dtype of 'q' (",
               toString(q.scalar_type()), "), got ", toString(k.scalar_type()));
  check_last_dim_contiguous(k, op, "k");
  check_same_device(k, q, op, "k", "q");
  SampledRowsShape s{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), 0, 0};
  SW_CHECK_ARG(k.size(0) == s.batch && k.size(3) == s.head_dim, op, "k", "must be [batch=", s.batch,
               ", num_kv_heads, num_keys, head_dim=", s.head_dim, "] to match 'q' ", q.sizes(),
               ", got ", k.sizes());
  SW_CHECK_ARG(s.num_q_heads >= 1, op, "q", "must have at least one head, got shape ", q.sizes());
  SW_CHECK_ARG(s.num_kv_heads >= 1 && s.num_q_heads % s.num_kv_heads == 0, op, "k", "has ",
               s.num_kv_heads, " kv heads, which must divide the ", s.num_q_heads,
               " heads of 'q' (GQA)");
  SW_CHECK_ARG(s.num_queries <= s.num_keys, op, "q", "holds ", s.num_queries,
               " queries, more than the ", s.num_keys,
               " keys of 'k' (queries end at the last key)");
  SW_CHECK_ARG(s.num_keys <= INT32_MAX, op, "k", "holds ", s.num_keys,
               " keys, more than the kernels index (", INT32_MAX, ")");
  SW_CHECK_ARG(rows >= 1 && rows <= kMaxSampledRows, op, "rows", "must lie in [1, ",
               kMaxSampledRows, "] (sampled rows of a 64-query block), got ", rows);
  check_softmax_scale(softmax_scale, op);
  s.num_q_blocks = ceil_div<int64_t>(s.num_queries, kIndexBlockSize);
  s.num_k_blocks = ceil_div<int64_t>(s.num_keys, kIndexBlockSize);
  return s;
}

// Whether the CUDA kernel may read t as is: it copies 16-byte chunks of each row, so the data
// and the batch, head and token strides it steps must be 16-byte aligned (else the caller
// copies). A dim of size 1 is never stepped (a [None] view of packed tokens keeps any stride).
template <typename T>
bool sampled_rows_aligned(const T& t) {
  auto stepped_aligned = [&](int dim) { return t.size(dim) <= 1 || t.stride(dim) % 8 == 0; };
  return reinterpret_cast<uintptr_t>(t.const_data_ptr()) % 16 == 0 && stepped_aligned(0) &&
         stepped_aligned(1) && stepped_aligned(2);
}

template <typename T>
void check_score_blocks_sampled_rows_cuda_limits(const T& q, const SampledRowsShape& s,
                                                 int64_t rows, std::optional<double> softmax_scale) {
  constexpr const char* op = "score_blocks_sampled_rows";
  check_tensor_core_input(q, op, "q", s.head_dim);
  // The kernel scales logits in float32: a scale that rounds to 0 or to inf there would turn
  // every probability into NaN.
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  SW_CHECK_ARG(std::isnormal(static_cast<float>(scale) * kLog2e), op, "softmax_scale",
               "must be a normal float32 on CUDA (times log2(e)), got ", scale);
  SW_CHECK_ARG((s.num_q_heads / s.num_kv_heads) * rows <= kMaxSampledRowsPerGroup, op, "rows",
               "times the ", s.num_q_heads / s.num_kv_heads,
               " query heads of a KV group must be at most ", kMaxSampledRowsPerGroup,
               " on CUDA, got rows ", rows);
  SW_CHECK_ARG(s.batch <= kMaxGridYZ && s.num_kv_heads <= kMaxGridYZ, op, "k",
               "must have batch and num_kv_heads <= ", kMaxGridYZ, " on CUDA, got shape ",
               q.sizes());
  SW_CHECK_ARG(s.num_q_blocks <= INT32_MAX, op, "q", "has too many query blocks for the grid");
}

}  // namespace sketchwalk
