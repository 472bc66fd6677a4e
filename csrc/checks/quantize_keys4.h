// Argument checks of quantize_keys4_: k, the 4-bit key cache (dense or paged) and seq_lens; with
// validate (and no graph capture) also the lengths in seq_lens and the live page ids. All before
// the cache is written. A template over the tensor type, shared by the ATen ops
// (csrc/cpu/quantize_keys4.cpp, csrc/cuda/quantize_keys4.cpp) and the stable-ABI one
// (csrc/stable/quantize_keys4.cpp).
#pragma once

#include <cstdint>
#include <optional>

#include "checks/keys4_cache.h"

namespace sketchwalk {

template <typename T>
Keys4CacheShape check_quantize_keys4_args(const T& codes, const T& scales, const T& k,
                                          const std::optional<T>& seq_lens, bool validate,
                                          const std::optional<T>& page_table) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "quantize_keys4_";
  check_tensor(k, op, "k", 4, "[batch, num_kv_heads, tokens, head_dim]",
               {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  const Keys4CacheShape s =
      check_keys4_cache_maybe_paged(op, codes, scales, page_table, seq_lens, k, "k");
  SW_CHECK_ARG(k.size(0) == s.batch && k.size(1) == s.num_kv_heads && k.size(3) == s.head_dim, op,
               "k", "must be [batch=", s.batch, ", num_kv_heads=", s.num_kv_heads,
               ", tokens, head_dim=", s.head_dim, "] to match 'codes' ", codes.sizes(), ", got ",
               k.sizes());
  const int64_t tokens = k.size(2);
  SW_CHECK_ARG(tokens <= s.capacity, op, "k", "has ", tokens,
               " tokens, more than the cache capacity ", s.capacity);
  check_seq_lens_tensor(op, seq_lens, s.batch, k, "k");
  if (seq_lens.has_value() && read_values(tensor_world{}, validate, k)) {
    check_seq_lens_values(op, *seq_lens, tokens, s.capacity,
                          "the tokens of 'k' land at [seq_lens - tokens, seq_lens) of the cache");
  }
  check_keys4_page_ids(op, s, page_table, seq_lens, k, validate);
  return s;
}

}  // namespace sketchwalk
