// CPU select_blocks: for each (batch, query-block row) the quantile threshold over the
// candidate blocks (float64, linear interpolation as torch.quantile), the strict `> th`
// keep rule over causal blocks, then the attend-sink, window and dense-row rules
// (docs/ops.md op 4; NaN among the candidates keeps nothing by the rule, cpu/quantile.h).
// Writes ascending block ids padded with -1. select_blocks_varlen: the same per row of a padded
// ragged batch, each row with its own lengths and token knobs (seq_args).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "ops.h"
#include "quantile.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

namespace {

// One row's sequence: its lengths and token knobs (the scalars, or its row of seq_args).
struct SeqRule {
  int64_t num_queries, num_keys, window_tokens, exclude_sink_tokens, attend_sink_tokens;
};

// Rows of `scores` [rows, nq, nk] -> block_index [rows, 1, nq, nk], num_selected [rows, 1, nq];
// rule(r) gives row r's sequence. Rows past a sequence's query blocks select nothing.
template <typename Rule>
std::tuple<at::Tensor, at::Tensor> select_rows(const at::Tensor& scores, int64_t block_size,
                                               double keep_frac, int64_t dense_last_q_blocks,
                                               Rule rule) {
  const int64_t batch = scores.size(0), nq = scores.size(1), nk = scores.size(2);
  auto block_index = at::full({batch, 1, nq, nk}, kBlockIndexPad, scores.options().dtype(at::kInt));
  auto num_selected = at::zeros({batch, 1, nq}, scores.options().dtype(at::kInt));
  if (batch * nq == 0) return {block_index, num_selected};
  const float* sp = scores.data_ptr<float>();
  const int64_t s_b = scores.stride(0), s_r = scores.stride(1);
  int* bi = block_index.data_ptr<int>();
  int* ns = num_selected.data_ptr<int>();
  const int64_t b = block_size;
  const double q = 1.0 - keep_frac;
  at::parallel_for(0, batch * nq, 16, [&](int64_t begin, int64_t end) {
    std::vector<double> cand;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bb = task / nq, i = task % nq;
      const SeqRule r = rule(bb);
      const int64_t seq_q_blocks = (r.num_queries + b - 1) / b;
      const int64_t seq_kv_blocks = (r.num_keys + b - 1) / b;
      if (i >= seq_q_blocks) continue;  // stays empty
      const int64_t w = r.window_tokens;
      const int64_t wb = std::max<int64_t>(1, (w + b - 1) / b);
      const int64_t sb = std::min<int64_t>(
          seq_kv_blocks, std::max<int64_t>(1, (r.exclude_sink_tokens + b - 1) / b));
      const int64_t attend_sink_blocks = (r.attend_sink_tokens + b - 1) / b;
      const float* row = sp + bb * s_b + i * s_r;
      const int64_t lim = causal_limit_block(static_cast<int>(i), static_cast<int>(r.num_queries),
                                             static_cast<int>(r.num_keys), static_cast<int>(b));
      const int64_t q_lo = r.num_keys - r.num_queries + i * b;
      const int64_t window_lo = std::max<int64_t>(0, (q_lo - w + 1) >= 0 ? (q_lo - w + 1) / b : 0);
      cand.clear();
      for (int64_t j = 0; j <= lim; ++j) {
        if (j < sb || j >= lim - wb + 1) continue;
        cand.push_back(static_cast<double>(row[j]));
      }
      const double th = cpu::candidate_threshold(cand, q);  // NaN: the rule keeps nothing
      const bool dense_row = i >= seq_q_blocks - dense_last_q_blocks;
      int* dst = bi + task * nk;
      int count = 0;
      for (int64_t j = 0; j <= lim; ++j) {
        const bool keep = dense_row || j < attend_sink_blocks || j >= window_lo ||
                          static_cast<double>(row[j]) > th;  // false when th is NaN
        if (keep) dst[count++] = static_cast<int>(j);
      }
      ns[task] = count;
    }
  });
  return {block_index, num_selected};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_blocks_cpu(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks) {
  check_select_blocks_args(scores, num_queries, num_keys, block_size, keep_frac, window_tokens,
                           exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks);
  const SeqRule rule{num_queries, num_keys, window_tokens, exclude_sink_tokens,
                     attend_sink_tokens};
  return select_rows(scores, block_size, keep_frac, dense_last_q_blocks,
                     [&](int64_t) { return rule; });
}

std::tuple<at::Tensor, at::Tensor> select_blocks_varlen_cpu(
    const at::Tensor& scores, const at::Tensor& seq_args, int64_t block_size, double keep_frac,
    int64_t dense_last_q_blocks, bool validate) {
  (void)validate;  // always validated on the CPU
  check_select_blocks_varlen_args(scores, seq_args, block_size, keep_frac, dense_last_q_blocks,
                                  true);
  const int* a = seq_args.data_ptr<int>();  // contiguous [rows, kSelectSeqArgs] (checked)
  return select_rows(scores, block_size, keep_frac, dense_last_q_blocks, [&](int64_t r) {
    const int* row = a + r * kSelectSeqArgs;
    return SeqRule{row[0], row[1], row[2], row[3], row[4]};
  });
}

}  // namespace sketchwalk
