// Argument checks of the keys4 decode ops (quantize_keys4_, score_blocks_keys4,
// select_blocks_keys4) and of sparse_decode's seq_lens, shared by their CPU and CUDA versions.
// Everything is checked before any output is written, so a failing call leaves the cache as it
// was. Value checks (lengths) read memory: one sync on CUDA, skipped while a graph is captured
// and when validate is false (the documented trusted path). Messages name op and argument.
#include <ATen/ATen.h>

#include <climits>

#include "checks.h"
#include "ops.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

namespace {

// codes [batch, num_kv_heads, capacity, head_dim / 2] uint8 and scales [batch, num_kv_heads,
// capacity] float32 (token stride 1), on `device`.
Keys4CacheShape check_keys4_cache(const char* op, const at::Tensor& codes,
                                  const at::Tensor& scales, const at::Tensor& ref,
                                  const char* ref_arg) {
  check_rank(codes, op, "codes", 4, "[batch, num_kv_heads, capacity, head_dim / 2]");
  check_dtype(codes, op, "codes", {at::kByte});
  check_last_dim_contiguous(codes, op, "codes");
  check_rank(scales, op, "scales", 3, "[batch, num_kv_heads, capacity]");
  check_dtype(scales, op, "scales", {at::kFloat});
  check_last_dim_contiguous(scales, op, "scales");
  check_same_device(codes, ref, op, "codes", ref_arg);
  check_same_device(scales, ref, op, "scales", ref_arg);
  Keys4CacheShape s{};
  s.batch = codes.size(0);
  s.num_kv_heads = codes.size(1);
  s.capacity = codes.size(2);
  s.head_dim = 2 * codes.size(3);
  SW_CHECK_ARG(scales.sizes() == codes.sizes().slice(0, 3), op, "scales", "must have shape ",
               codes.sizes().slice(0, 3), " (the first 3 dims of 'codes'), got ", scales.sizes());
  SW_CHECK_ARG(s.head_dim >= 2 && s.head_dim <= kKeys4MaxHeadDim, op, "codes",
               "must have head_dim / 2 bytes per token with 2 <= head_dim <= ", kKeys4MaxHeadDim,
               ", got shape ", codes.sizes());
  SW_CHECK_ARG(s.capacity <= INT_MAX, op, "codes", "must have capacity <= ", INT_MAX,
               " tokens, got ", s.capacity);
  return s;
}

void check_seq_lens_tensor(const char* op, const std::optional<at::Tensor>& seq_lens,
                           int64_t batch, const at::Tensor& ref, const char* ref_arg) {
  if (!seq_lens.has_value()) return;
  check_rank(*seq_lens, op, "seq_lens", 1, "[batch]");
  check_dtype(*seq_lens, op, "seq_lens", {at::kInt});
  check_same_device(*seq_lens, ref, op, "seq_lens", ref_arg);
  check_size(*seq_lens, op, "seq_lens", 0, batch, "batch");
}

// lo <= seq_lens[b] <= hi for every b (reads memory; callers skip it when told or capturing).
void check_seq_lens_values(const char* op, const at::Tensor& seq_lens, int64_t lo, int64_t hi,
                           const char* what) {
  if (seq_lens.numel() == 0) return;
  auto [mn, mx] = at::aminmax(seq_lens);
  const int64_t mn_v = mn.item<int64_t>(), mx_v = mx.item<int64_t>();
  SW_CHECK_ARG(mn_v >= lo && mx_v <= hi, op, "seq_lens", "must hold lengths in [", lo, ", ", hi,
               "] (", what, "), got values in [", mn_v, ", ", mx_v, "]");
}

bool read_values(bool validate, const at::Tensor& t) {
  return validate && !current_stream_is_capturing(t);
}

}  // namespace

Keys4CacheShape check_quantize_keys4_args(const at::Tensor& codes, const at::Tensor& scales,
                                          const at::Tensor& k,
                                          const std::optional<at::Tensor>& seq_lens,
                                          bool validate) {
  constexpr const char* op = "quantize_keys4_";
  check_rank(k, op, "k", 4, "[batch, num_kv_heads, tokens, head_dim]");
  check_dtype(k, op, "k", {at::kHalf, at::kBFloat16, at::kFloat});
  check_last_dim_contiguous(k, op, "k");
  const Keys4CacheShape s = check_keys4_cache(op, codes, scales, k, "k");
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
  return s;
}

Keys4CacheShape check_score_blocks_keys4_args(const at::Tensor& q, const at::Tensor& codes,
                                              const at::Tensor& scales,
                                              const std::optional<at::Tensor>& seq_lens,
                                              std::optional<double> softmax_scale,
                                              bool validate) {
  constexpr const char* op = "score_blocks_keys4";
  check_rank(q, op, "q", 4, "[batch, num_q_heads, 1, head_dim]");
  check_dtype(q, op, "q", {at::kHalf, at::kBFloat16, at::kFloat});
  check_last_dim_contiguous(q, op, "q");
  const Keys4CacheShape s = check_keys4_cache(op, codes, scales, q, "q");
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
  return s;
}

void check_select_blocks_keys4_args(const at::Tensor& mass,
                                    const std::optional<at::Tensor>& seq_lens, double keep_frac,
                                    double window_frac, double sink_frac, bool validate) {
  constexpr const char* op = "select_blocks_keys4";
  check_rank(mass, op, "mass", 3, "[batch, num_kv_heads, num_blocks]");
  check_dtype(mass, op, "mass", {at::kFloat});
  SW_CHECK_ARG(mass.is_contiguous(), op, "mass", "must be contiguous, got strides ",
               mass.strides());
  SW_CHECK_ARG(mass.size(2) <= INT_MAX / kIndexBlockSize, op, "mass", "has ", mass.size(2),
               " blocks, more than ", INT_MAX / kIndexBlockSize, " (lengths are int32)");
  for (auto [value, name] : {std::pair{keep_frac, "keep_frac"}, {window_frac, "window_frac"},
                             {sink_frac, "sink_frac"}}) {
    SW_CHECK_ARG(value >= 0.0 && value <= 1.0, op, name, "must lie in [0, 1], got ", value);
  }
  check_seq_lens_tensor(op, seq_lens, mass.size(0), mass, "mass");
  if (seq_lens.has_value() && read_values(validate, mass)) {
    check_seq_lens_values(op, *seq_lens, 1, mass.size(2) * kIndexBlockSize,
                          "1 <= length <= 64 * num_blocks of 'mass'");
  }
}

void check_decode_seq_lens(const char* op, const std::optional<at::Tensor>& seq_lens,
                           const at::Tensor& q, const at::Tensor& block_index,
                           const at::Tensor& num_selected, const AttentionShape& s,
                           bool validate) {
  if (!seq_lens.has_value()) return;
  check_seq_lens_tensor(op, seq_lens, s.batch, q, "q");
  if (!read_values(validate, q)) return;
  check_seq_lens_values(op, *seq_lens, 1, s.num_keys, "1 <= length <= num_keys of 'k_cache'");
  if (block_index.numel() == 0) return;
  // Each used entry of batch row b must be a live block of that sequence: <= (L_b - 1) / 64.
  const auto slot = at::arange(s.max_selected, block_index.options());
  const auto used = at::lt(slot.view({1, 1, 1, -1}), num_selected.unsqueeze(-1));
  const auto limit = (*seq_lens - 1).div(s.block_size, "floor").view({-1, 1, 1, 1});
  SW_CHECK_ARG(at::all(at::logical_or(used.logical_not(), block_index <= limit)).item<bool>(), op,
               "block_index", "holds a key block at or past a sequence's length: each used entry "
               "of batch row b must be <= (seq_lens[b] - 1) / ", s.block_size);
}

}  // namespace sketchwalk
