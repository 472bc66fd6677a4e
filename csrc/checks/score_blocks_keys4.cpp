// Argument checks of score_blocks_keys4: q, the 4-bit key cache, seq_lens and softmax_scale;
// with validate (and no graph capture) also the lengths in seq_lens.
#include "checks.h"

namespace sketchwalk {

Keys4CacheShape check_score_blocks_keys4_args(const at::Tensor& q, const at::Tensor& codes,
                                              const at::Tensor& scales,
                                              const std::optional<at::Tensor>& seq_lens,
                                              std::optional<double> softmax_scale,
                                              bool validate,
                                              const std::optional<at::Tensor>& page_table) {
  constexpr const char* op = "score_blocks_keys4";
  check_tensor(q, op, "q", 4, "[batch, num_q_heads, 1, head_dim]",
               {at::kHalf, at::kBFloat16, at::kFloat});
  const Keys4CacheShape s =
      check_keys4_cache_maybe_paged(op, codes, scales, page_table, seq_lens, q, "q");
  SW_CHECK_ARG(q.size(2) == 1, op, "q", "must hold one query per sequence [batch, num_q_heads, 1, "
               "head_dim], got shape ", q.sizes());
  SW_CHECK_ARG(q.size(0) == s.batch && q.size(3) == s.head_dim, op, "q", "must be [batch=",
               s.batch, ", num_q_heads, 1, head_dim=", s.head_dim, "] to match 'codes' ",
               codes.sizes(), ", got ", q.sizes());
  SW_CHECK_ARG(s.num_kv_heads >= 1 && q.size(1) % s.num_kv_heads == 0, op, "codes", "has ",
               s.num_kv_heads, " kv heads, which must divide the ", q.size(1),
               " heads of 'q' (GQA)");
  check_softmax_scale(softmax_scale, op);
  check_seq_lens_tensor(op, seq_lens, s.batch, q, "q");
  if (seq_lens.has_value() && read_values(validate, q)) {
    check_seq_lens_values(op, *seq_lens, 1, s.capacity, "1 <= length <= the cache capacity");
  }
  check_keys4_page_ids(op, s, page_table, seq_lens, q, validate);
  return s;
}

}  // namespace sketchwalk
