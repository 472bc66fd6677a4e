// Argument checks of quantize_keys4_: k, the 4-bit key cache (dense or paged) and seq_lens; with
// validate (and no graph capture) also the lengths in seq_lens and the live page ids. All before
// the cache is written.
#include "checks.h"

namespace sketchwalk {

Keys4CacheShape check_quantize_keys4_args(const at::Tensor& codes, const at::Tensor& scales,
                                          const at::Tensor& k,
                                          const std::optional<at::Tensor>& seq_lens,
                                          bool validate,
                                          const std::optional<at::Tensor>& page_table) {
  constexpr const char* op = "quantize_keys4_";
  check_tensor(k, op, "k", 4, "[batch, num_kv_heads, tokens, head_dim]",
               {at::kHalf, at::kBFloat16, at::kFloat});
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
  if (seq_lens.has_value() && read_values(validate, k)) {
    check_seq_lens_values(op, *seq_lens, tokens, s.capacity,
                          "the tokens of 'k' land at [seq_lens - tokens, seq_lens) of the cache");
  }
  check_keys4_page_ids(op, s, page_table, seq_lens, k, validate);
  return s;
}

}  // namespace sketchwalk
