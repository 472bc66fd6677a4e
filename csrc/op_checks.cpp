// Argument checks of the selection-side ops, shared by their CPU and CUDA versions.
// Messages name the op, the argument and what was expected (checks.h).
#include <ATen/ATen.h>

#include <climits>

#include "checks.h"
#include "ops.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

SketchShape check_hadamard_sketch_args(const at::Tensor& x, const at::Tensor& signs,
                                       const at::Tensor& coords, int64_t block_size,
                                       bool validate) {
  constexpr const char* op = "hadamard_sketch";
  check_rank(x, op, "x", 4, "[batch, heads, tokens, head_dim]");
  check_dtype(x, op, "x", {at::kHalf, at::kBFloat16, at::kFloat});
  check_last_dim_contiguous(x, op, "x");
  check_rank(signs, op, "signs", 1, "[n], n = next_pow2(head_dim)");
  check_dtype(signs, op, "signs", {at::kFloat});
  check_rank(coords, op, "coords", 1, "[sketch_dim]");
  check_dtype(coords, op, "coords", {at::kLong});
  check_same_device(signs, x, op, "signs", "x");
  check_same_device(coords, x, op, "coords", "x");
  check_last_dim_contiguous(signs, op, "signs");
  check_last_dim_contiguous(coords, op, "coords");
  SketchShape s{};
  s.batch = x.size(0);
  s.heads = x.size(1);
  s.tokens = x.size(2);
  s.head_dim = x.size(3);
  SW_CHECK_ARG(s.head_dim >= 1 && s.head_dim <= kMaxSketchHeadDim, op, "x", "has head_dim ",
               s.head_dim, "; supported: 1 <= head_dim <= ", kMaxSketchHeadDim);
  check_int32(block_size, op, "block_size", 1);
  SW_CHECK_ARG(s.tokens <= INT32_MAX && s.batch <= INT32_MAX && s.heads <= INT32_MAX, op, "x",
               "must have batch, heads and tokens <= ", INT32_MAX, ", got shape ", x.sizes());
  s.block_size = block_size;
  s.num_blocks = (s.tokens + block_size - 1) / block_size;
  s.sketch_pow2 = next_pow2(static_cast<int>(s.head_dim));
  SW_CHECK_ARG(signs.size(0) == s.sketch_pow2, op, "signs", "must have n = next_pow2(head_dim) = ",
               s.sketch_pow2, " entries, got ", signs.size(0));
  s.sketch_dim = coords.size(0);
  SW_CHECK_ARG(s.sketch_dim >= 1 && s.sketch_dim <= s.sketch_pow2, op, "coords",
               "must have 1 <= sketch_dim <= n = ", s.sketch_pow2, " entries, got ", s.sketch_dim);
  // Value checks read memory (one sync on CUDA); skipped while a CUDA graph is captured.
  if (validate && !current_stream_is_capturing(x)) check_sketch_transform_values(op, signs, coords, s.sketch_pow2);
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

void check_score_blocks_args(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                             double logit_scale) {
  constexpr const char* op = "score_blocks";
  check_finite(logit_scale, op, "logit_scale");
  check_rank(q_sketch, op, "q_sketch", 4, "[batch, num_q_heads, rows, sketch_dim]");
  check_rank(k_sketch, op, "k_sketch", 4, "[batch, num_kv_heads, cols, sketch_dim]");
  check_dtype(q_sketch, op, "q_sketch", {at::kFloat});
  check_dtype(k_sketch, op, "k_sketch", {at::kFloat});
  check_same_device(k_sketch, q_sketch, op, "k_sketch", "q_sketch");
  check_last_dim_contiguous(q_sketch, op, "q_sketch");
  check_last_dim_contiguous(k_sketch, op, "k_sketch");
  check_size(k_sketch, op, "k_sketch", 0, q_sketch.size(0), "batch of 'q_sketch'");
  check_size(k_sketch, op, "k_sketch", 3, q_sketch.size(3), "sketch_dim of 'q_sketch'");
  SW_CHECK_ARG(k_sketch.size(1) >= 1 && q_sketch.size(1) % k_sketch.size(1) == 0, op, "k_sketch",
               "has ", k_sketch.size(1), " heads, which must divide the ", q_sketch.size(1),
               " heads of 'q_sketch' (GQA)");
}

void check_select_blocks_args(const at::Tensor& scores, int64_t num_queries, int64_t num_keys,
                              int64_t block_size, double keep_frac, int64_t window_tokens,
                              int64_t exclude_sink_tokens, int64_t attend_sink_tokens,
                              int64_t dense_last_q_blocks) {
  constexpr const char* op = "select_blocks";
  check_rank(scores, op, "scores", 3, "[batch, num_q_blocks, num_kv_blocks]");
  check_dtype(scores, op, "scores", {at::kFloat});
  check_last_dim_contiguous(scores, op, "scores");
  check_int32(block_size, op, "block_size", 1);
  check_int32(num_keys, op, "num_keys", 1);
  check_int32(window_tokens, op, "window_tokens", 1);
  check_int32(exclude_sink_tokens, op, "exclude_sink_tokens", 0);
  check_int32(attend_sink_tokens, op, "attend_sink_tokens", 0);
  check_int32(dense_last_q_blocks, op, "dense_last_q_blocks", 0);
  SW_CHECK_ARG(num_queries >= 1 && num_queries <= num_keys, op, "num_queries",
               "must lie in [1, num_keys=", num_keys, "], got ", num_queries);
  check_size(scores, op, "scores", 1, (num_queries + block_size - 1) / block_size,
             "num_q_blocks = ceil(num_queries / block_size)");
  check_size(scores, op, "scores", 2, (num_keys + block_size - 1) / block_size,
             "num_kv_blocks = ceil(num_keys / block_size)");
  SW_CHECK_ARG(keep_frac >= 0.0 && keep_frac <= 1.0, op, "keep_frac", "must lie in [0, 1], got ",
               keep_frac);
  SW_CHECK_ARG(window_tokens >= 1, op, "window_tokens", "must be >= 1, got ", window_tokens);
  SW_CHECK_ARG(exclude_sink_tokens >= 0, op, "exclude_sink_tokens", "must be >= 0, got ",
               exclude_sink_tokens);
  SW_CHECK_ARG(attend_sink_tokens >= 0, op, "attend_sink_tokens", "must be >= 0, got ",
               attend_sink_tokens);
  SW_CHECK_ARG(dense_last_q_blocks >= 0, op, "dense_last_q_blocks", "must be >= 0, got ",
               dense_last_q_blocks);
}

void check_update_block_matrix_args(const at::Tensor& transition, const at::Tensor& r,
                                    int64_t num_keys, int64_t block_size) {
  constexpr const char* op = "update_block_matrix_";
  check_rank(transition, op, "transition", 3, "[batch, n, n]");
  check_dtype(transition, op, "transition", {at::kFloat});
  check_last_dim_contiguous(transition, op, "transition");
  check_rank(r, op, "r", 2, "[batch, n]");
  check_dtype(r, op, "r", {at::kFloat});
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


void check_update_window_logits_args(const at::Tensor& window_logits,
                                     const at::Tensor& query_window, const at::Tensor& key_blocks,
                                     int64_t num_blocks, int64_t slot, double logit_scale) {
  constexpr const char* op = "update_window_logits_";
  check_finite(logit_scale, op, "logit_scale");
  check_rank(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]");
  check_dtype(window_logits, op, "window_logits", {at::kFloat});
  check_last_dim_contiguous(window_logits, op, "window_logits");
  check_rank(query_window, op, "query_window", 4, "[batch, num_q_heads, W, sketch_dim]");
  check_dtype(query_window, op, "query_window", {at::kFloat});
  check_last_dim_contiguous(query_window, op, "query_window");
  check_same_device(query_window, window_logits, op, "query_window", "window_logits");
  check_rank(key_blocks, op, "key_blocks", 4, "[batch, num_kv_heads, capacity, sketch_dim]");
  check_dtype(key_blocks, op, "key_blocks", {at::kFloat});
  check_last_dim_contiguous(key_blocks, op, "key_blocks");
  check_same_device(key_blocks, window_logits, op, "key_blocks", "window_logits");
  const int64_t batch = window_logits.size(0), heads = window_logits.size(1);
  const int64_t window = window_logits.size(2);
  SW_CHECK_ARG(query_window.size(0) == batch && query_window.size(1) == heads &&
                   query_window.size(2) == window,
               op, "query_window", "must be [batch=", batch, ", num_q_heads=", heads, ", W=", window,
               ", sketch_dim] like 'window_logits', got ", query_window.sizes());
  const int64_t m = query_window.size(3);
  SW_CHECK_ARG(m >= 1 && m <= kMaxSketchHeadDim, op, "query_window",
               "must have sketch_dim in [1, ", kMaxSketchHeadDim, "], got ", m);
  SW_CHECK_ARG(key_blocks.size(0) == batch && key_blocks.size(1) >= 1 &&
                   heads % key_blocks.size(1) == 0 && key_blocks.size(3) == m,
               op, "key_blocks", "must be [batch=", batch, ", num_kv_heads dividing ", heads,
               ", capacity, sketch_dim=", m, "], got ", key_blocks.sizes());
  SW_CHECK_ARG(num_blocks >= 1 && num_blocks <= window_logits.size(3) &&
                   num_blocks <= key_blocks.size(2),
               op, "num_blocks", "must lie in [1, capacity] (window_logits holds ",
               window_logits.size(3), " blocks, key_blocks ", key_blocks.size(2), "), got ",
               num_blocks);
  SW_CHECK_ARG(slot >= -1 && slot < window, op, "slot",
               "must be a window slot in [0, W=", window, ") or -1 (every slot), got ", slot);
}

void check_window_block_scores_args(const at::Tensor& window_logits, int64_t window_fill,
                                    int64_t num_blocks) {
  constexpr const char* op = "window_block_scores";
  check_rank(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]");
  check_dtype(window_logits, op, "window_logits", {at::kFloat});
  check_last_dim_contiguous(window_logits, op, "window_logits");
  SW_CHECK_ARG(window_fill >= 1 && window_fill <= window_logits.size(2), op, "window_fill",
               "must lie in [1, W=", window_logits.size(2), "], got ", window_fill);
  SW_CHECK_ARG(num_blocks >= 1 && num_blocks <= window_logits.size(3), op, "num_blocks",
               "must lie in [1, capacity=", window_logits.size(3), "], got ", num_blocks);
  SW_CHECK_ARG(window_logits.size(1) >= 1, op, "window_logits",
               "must have at least one head, got shape ", window_logits.sizes());
}


int64_t check_select_decode_blocks_args(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  constexpr const char* op = "select_decode_blocks_";
  check_rank(q, op, "q", 4, "[batch, num_q_heads, 1, head_dim]");
  check_rank(k, op, "k", 4, "[batch, num_kv_heads, num_keys, head_dim]");
  check_dtype(q, op, "q", {at::kHalf, at::kBFloat16, at::kFloat});
  check_dtype(k, op, "k", {at::kHalf, at::kBFloat16, at::kFloat});
  check_last_dim_contiguous(q, op, "q");
  check_last_dim_contiguous(k, op, "k");
  SW_CHECK_ARG(q.size(2) == 1, op, "q", "must hold one query per sequence, got shape ", q.sizes());
  SW_CHECK_ARG(k.size(2) >= 1 && k.size(2) <= INT32_MAX, op, "k",
               "must hold between 1 (the new key) and ", INT32_MAX, " keys, got shape ", k.sizes());
  SW_CHECK_ARG(k.size(0) == q.size(0) && k.size(3) == q.size(3) && k.size(1) >= 1 &&
                   q.size(1) % k.size(1) == 0,
               op, "k", "must be [batch=", q.size(0), ", num_kv_heads dividing ", q.size(1),
               ", num_keys, head_dim=", q.size(3), "], got ", k.sizes());
  SW_CHECK_ARG(q.size(3) >= 1 && q.size(3) <= kMaxSketchHeadDim, op, "q", "has head_dim ",
               q.size(3), "; supported: 1 <= head_dim <= ", kMaxSketchHeadDim);
  check_rank(signs, op, "signs", 1, "[n], n = next_pow2(head_dim)");
  check_dtype(signs, op, "signs", {at::kFloat});
  check_rank(coords, op, "coords", 1, "[sketch_dim]");
  check_dtype(coords, op, "coords", {at::kLong});
  const int64_t pow2 = next_pow2(static_cast<int>(q.size(3)));
  SW_CHECK_ARG(signs.size(0) == pow2, op, "signs", "must have n = next_pow2(head_dim) = ", pow2,
               " entries, got ", signs.size(0));
  const int64_t m = coords.size(0);
  SW_CHECK_ARG(m >= 1 && m <= pow2, op, "coords", "must have 1 <= sketch_dim <= n = ", pow2,
               " entries, got ", m);
  for (auto [t, name] : {std::pair{&k, "k"}, {&key_blocks, "key_blocks"},
                         {&query_window, "query_window"}, {&window_logits, "window_logits"},
                         {&transition, "transition"}, {&signs, "signs"}, {&coords, "coords"}}) {
    check_same_device(*t, q, op, name, "q");
  }
  check_rank(query_window, op, "query_window", 4, "[batch, num_q_heads, W, sketch_dim]");
  check_rank(window_logits, op, "window_logits", 4, "[batch, num_q_heads, W, capacity]");
  check_rank(transition, op, "transition", 3, "[batch, capacity, capacity]");
  check_rank(key_blocks, op, "key_blocks", 4, "[batch, num_kv_heads, capacity, sketch_dim]");
  for (auto [t, name] : {std::pair{&key_blocks, "key_blocks"}, {&query_window, "query_window"},
                         {&window_logits, "window_logits"}, {&transition, "transition"}}) {
    check_dtype(*t, op, name, {at::kFloat});
    check_last_dim_contiguous(*t, op, name);
  }
  SW_CHECK_ARG(query_window.size(0) == q.size(0) && query_window.size(1) == q.size(1) &&
                   query_window.size(3) == m,
               op, "query_window", "must be [batch=", q.size(0), ", num_q_heads=", q.size(1),
               ", W, sketch_dim=", m, "], got ", query_window.sizes());
  SW_CHECK_ARG(key_blocks.size(0) == k.size(0) && key_blocks.size(1) == k.size(1) &&
                   key_blocks.size(3) == m,
               op, "key_blocks", "must be [batch=", k.size(0), ", num_kv_heads=", k.size(1),
               ", capacity, sketch_dim=", m, "], got ", key_blocks.sizes());
  SW_CHECK_ARG(window_logits.size(0) == q.size(0) && window_logits.size(1) == q.size(1) &&
                   window_logits.size(2) == query_window.size(2),
               op, "window_logits", "must be [batch=", q.size(0), ", num_q_heads=", q.size(1),
               ", W=", query_window.size(2), ", capacity], got ", window_logits.sizes());
  SW_CHECK_ARG(transition.size(0) == q.size(0), op, "transition", "must have batch=", q.size(0),
               ", got ", transition.sizes());
  check_int32(block_size, op, "block_size", 1);
  const int64_t num_keys = k.size(2);
  const int64_t n = (num_keys + block_size - 1) / block_size;
  SW_CHECK_ARG(transition.size(1) >= n && transition.size(2) >= n && key_blocks.size(2) >= n &&
                   window_logits.size(3) >= n,
               op, "transition", "and 'key_blocks', 'window_logits' need capacity for ", n,
               " blocks, got ", transition.sizes(), ", ", key_blocks.sizes(), " and ",
               window_logits.sizes());
  SW_CHECK_ARG(pushes >= 0, op, "pushes", "must be >= 0, got ", pushes);
  SW_CHECK_ARG(window_fill >= 1 && window_fill <= query_window.size(2), op, "window_fill",
               "must lie in [1, W=", query_window.size(2), "], got ", window_fill);
  SW_CHECK_ARG(degree >= 0 && degree <= kMaxWalkDegree, op, "degree", "must lie in [0, ",
               kMaxWalkDegree, "], got ", degree);
  SW_CHECK_ARG(damping >= 0.0 && damping <= 1.0, op, "damping", "must lie in [0, 1], got ", damping);
  check_finite(logit_scale, op, "logit_scale");
  SW_CHECK_ARG(keep_frac >= 0.0 && keep_frac <= 1.0, op, "keep_frac", "must lie in [0, 1], got ",
               keep_frac);
  check_int32(window_tokens, op, "window_tokens", 1);
  check_int32(exclude_sink_tokens, op, "exclude_sink_tokens", 0);
  check_int32(attend_sink_tokens, op, "attend_sink_tokens", 0);
  // Coordinates and signs read memory: always on the CPU; on CUDA this per-step op trusts them
  // (they come from sketch_transform; hadamard_sketch(validate=True) checks a user's draw).
  if (!q.is_cuda()) check_sketch_transform_values(op, signs, coords, pow2);
  return n;
}

}  // namespace sketchwalk
