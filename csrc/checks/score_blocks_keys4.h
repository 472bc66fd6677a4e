// Argument checks of score_blocks_keys4: q, the 4-bit key cache, seq_lens and softmax_scale;
// with validate (and no graph capture) also the lengths in seq_lens. Plus the limits the CUDA
// kernel adds (16-bit q, the attention head dims, the grid, aligned code rows). Templates over
// the tensor type: the ATen ops (csrc/cpu/score_blocks_keys4.cpp, csrc/cuda/score_blocks_keys4.cpp)
// and the stable-ABI ones (csrc/stable/score_blocks_keys4{,_cuda}.cpp) run the same checks.
#pragma once

#include <cstdint>
#include <optional>

#include "checks/keys4_cache.h"
#include "sketchwalk/common.h"
#include "tensor_checks.h"

namespace sketchwalk {

template <typename T>
Keys4CacheShape check_score_blocks_keys4_args(const T& q, const T& codes, const T& scales,
                                              const std::optional<T>& seq_lens,
                                              std::optional<double> softmax_scale, bool validate,
                                              const std::optional<T>& page_table) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "score_blocks_keys4";
  check_tensor(q, op, "q", 4, "[batch, num_q_heads, 1, head_dim]",
               {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  const Keys4CacheShape s =
      check_keys4_cache_maybe_paged(op, codes, scales, page_table, seq_lens, q, "q");
  SW_CHECK_ARG(q.size(2) == 1, op, "q",
               "must hold one query per sequence [batch, num_q_heads, 1, head_dim], got shape ",
               q.sizes());
  SW_CHECK_ARG(q.size(0) == s.batch && q.size(3) == s.head_dim, op, "q", "must be [batch=",
               s.batch, ", num_q_heads, 1, head_dim=", s.head_dim, "] to match 'codes' ",
               codes.sizes(), ", got ", q.sizes());
  SW_CHECK_ARG(s.num_kv_heads >= 1 && q.size(1) % s.num_kv_heads == 0, op, "codes", "has ",
               s.num_kv_heads, " kv heads, which must divide the ", q.size(1),
               " heads of 'q' (GQA)");
  check_softmax_scale(softmax_scale, op);
  check_seq_lens_tensor(op, seq_lens, s.batch, q, "q");
  if (seq_lens.has_value() && read_values(tensor_world{}, validate, q)) {
    check_seq_lens_values(op, *seq_lens, 1, s.capacity, "1 <= length <= the cache capacity");
  }
  check_keys4_page_ids(op, s, page_table, seq_lens, q, validate);
  return s;
}

// What the CUDA scorer adds: it runs on tensor cores (16-bit q), for the attention head dims,
// one block per (batch, kv head) on the grid's y and z, and each lane reads head_dim / 8
// contiguous bytes of a code row (rows aligned to that).
template <typename T>
void check_score_blocks_keys4_cuda_limits(const T& q, const T& codes, const Keys4CacheShape& s) {
  constexpr const char* op = "score_blocks_keys4";
  check_tensor_core_input(q, op, "q", s.head_dim);
  SW_CHECK_ARG(s.batch <= kMaxGridYZ && s.num_kv_heads <= kMaxGridYZ, op, "codes",
               "must have batch and num_kv_heads <= ", kMaxGridYZ, " on CUDA, got batch ", s.batch,
               " and shape ", codes.sizes());
  const int64_t row_align = s.head_dim / 8;
  SW_CHECK_ARG(reinterpret_cast<uintptr_t>(codes.const_data_ptr()) % 16 == 0 &&
                   codes.stride(2) % row_align == 0 && codes.stride(1) % row_align == 0 &&
                   codes.stride(0) % row_align == 0,
               op, "codes", "must start 16-byte aligned with strides that are multiples of ",
               row_align, " bytes, got strides ", codes.strides());
}

}  // namespace sketchwalk
