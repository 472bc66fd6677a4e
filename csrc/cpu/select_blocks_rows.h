// The CPU select_blocks kernel on raw pointers, shared by the ATen ops (csrc/cpu/select_blocks.cpp)
// and the stable-ABI ones (csrc/stable/select_blocks.cpp): for each (row, query-block) the
// quantile threshold over the candidate blocks (float64, linear interpolation as torch.quantile),
// the strict `> th` keep rule over causal blocks, then the attend-sink, window and dense-row rules
// (the last dense_last_q_blocks of a sequence and the rows flagged in dense_rows, which with
// dense_rows_in_budget the sequence's other rows pay for: sketchwalk/dense_rows_budget.h;
// docs/ops.md op 4; NaN among the candidates keeps nothing by the rule, cpu/quantile.h). Writes
// ascending block ids; the caller pre-fills block_index with kBlockIndexPad and num_selected with
// 0, which rows past a sequence's query blocks keep.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "cpu/quantile.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/dense_rows_budget.h"

namespace sketchwalk {

// One row's sequence: its lengths and token knobs (the scalars, or its row of seq_args).
struct SeqRule {
  int64_t num_queries, num_keys, window_tokens, exclude_sink_tokens, attend_sink_tokens;
};

// A SeqRule in blocks of b: its query blocks, window blocks wb and excluded sink blocks sb (the
// candidates of row i are [sb, lim_i - wb]); one derivation for the budget's pre-pass and the
// rows.
struct SeqBlocks {
  int64_t q_blocks, wb, sb;
};

inline SeqBlocks seq_blocks(const SeqRule& r, int64_t b) {
  const int64_t kv_blocks = (r.num_keys + b - 1) / b;
  return {(r.num_queries + b - 1) / b, std::max<int64_t>(1, (r.window_tokens + b - 1) / b),
          std::min<int64_t>(kv_blocks, std::max<int64_t>(1, (r.exclude_sink_tokens + b - 1) / b))};
}

struct SelectBlocksCpuArgs {
  const float* scores;  // [rows, nq, nk], last dim contiguous
  int64_t scores_row_stride, scores_qblock_stride;
  int64_t rows, nq, nk;
  int* block_index;   // [rows, 1, nq, nk] contiguous, pre-filled with kBlockIndexPad
  int* num_selected;  // [rows, 1, nq] contiguous, pre-filled with 0
  const bool* dense_rows;  // [rows, nq] (row stride dense_rows_stride) or nullptr: none flagged
  int64_t dense_rows_stride;
  bool dense_rows_in_budget;  // the flagged rows' extra blocks come out of the other rows' keep
  int64_t block_size, dense_last_q_blocks;
  double keep_frac;
};

// dense_rows: checked (check_dense_rows), or empty.
template <typename T>
SelectBlocksCpuArgs select_blocks_cpu_args(const T& scores, const T& block_index,
                                           const T& num_selected, int64_t block_size,
                                           double keep_frac, int64_t dense_last_q_blocks,
                                           const std::optional<T>& dense_rows,
                                           bool dense_rows_in_budget) {
  SelectBlocksCpuArgs a{};
  a.scores = scores.template const_data_ptr<float>();
  a.scores_row_stride = scores.stride(0), a.scores_qblock_stride = scores.stride(1);
  a.rows = scores.size(0), a.nq = scores.size(1), a.nk = scores.size(2);
  a.block_index = block_index.template mutable_data_ptr<int>();
  a.num_selected = num_selected.template mutable_data_ptr<int>();
  if (dense_rows.has_value()) {
    a.dense_rows = dense_rows->template const_data_ptr<bool>();
    a.dense_rows_stride = dense_rows->stride(0);
    a.dense_rows_in_budget = dense_rows_in_budget;
  }
  a.block_size = block_size;
  a.dense_last_q_blocks = dense_last_q_blocks;
  a.keep_frac = keep_frac;
  return a;
}

// rule(r) gives row r's SeqRule; parallel_for(begin, end, grain, fn(begin, end)):
// at::parallel_for or torch::stable's.
template <typename Rule, typename ParallelFor>
void select_blocks_cpu_rows(const SelectBlocksCpuArgs& a, Rule rule, ParallelFor&& parallel_for) {
  const int64_t b = a.block_size, nq = a.nq, nk = a.nk;
  // Each sequence's quantile level 1 - keep (its budgeted keep with dense_rows_in_budget).
  std::vector<double> level(static_cast<size_t>(a.rows), 1.0 - a.keep_frac);
  for (int64_t bb = 0; a.dense_rows_in_budget && a.dense_rows != nullptr && bb < a.rows; ++bb) {
    const SeqRule r = rule(bb);
    const SeqBlocks s = seq_blocks(r, b);
    int64_t flagged = 0, unflagged = 0;
    for (int64_t i = 0; i < s.q_blocks - a.dense_last_q_blocks; ++i) {
      const int64_t c = select_candidate_count(
          static_cast<int>(i), static_cast<int>(r.num_queries), static_cast<int>(r.num_keys),
          static_cast<int>(b), static_cast<int>(s.wb), static_cast<int>(s.sb));
      (a.dense_rows[bb * a.dense_rows_stride + i] ? flagged : unflagged) += c;
    }
    level[bb] = 1.0 - budgeted_keep_frac(a.keep_frac, flagged, unflagged);
  }
  parallel_for(int64_t{0}, a.rows * nq, int64_t{16}, [&](int64_t begin, int64_t end) {
    std::vector<double> cand;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bb = task / nq, i = task % nq;
      const SeqRule r = rule(bb);
      const SeqBlocks sq = seq_blocks(r, b);
      const int64_t seq_q_blocks = sq.q_blocks, wb = sq.wb, sb = sq.sb;
      if (i >= seq_q_blocks) continue;  // stays empty
      const int64_t w = r.window_tokens;
      const int64_t attend_sink_blocks = (r.attend_sink_tokens + b - 1) / b;
      const float* row = a.scores + bb * a.scores_row_stride + i * a.scores_qblock_stride;
      const int64_t lim = causal_limit_block(static_cast<int>(i), static_cast<int>(r.num_queries),
                                             static_cast<int>(r.num_keys), static_cast<int>(b));
      const int64_t q_lo = r.num_keys - r.num_queries + i * b;
      const int64_t window_lo = std::max<int64_t>(0, (q_lo - w + 1) >= 0 ? (q_lo - w + 1) / b : 0);
      const bool dense_row =
          i >= seq_q_blocks - a.dense_last_q_blocks ||
          (a.dense_rows != nullptr && a.dense_rows[bb * a.dense_rows_stride + i]);
      cand.clear();
      for (int64_t j = 0; j <= lim && !dense_row; ++j) {  // a dense row needs no threshold
        if (j < sb || j >= lim - wb + 1) continue;
        cand.push_back(static_cast<double>(row[j]));
      }
      const double th = cpu::candidate_threshold(cand, level[bb]);  // NaN: keeps nothing
      int* dst = a.block_index + task * nk;
      int count = 0;
      for (int64_t j = 0; j <= lim; ++j) {
        const bool keep = dense_row || j < attend_sink_blocks || j >= window_lo ||
                          static_cast<double>(row[j]) > th;  // false when th is NaN
        if (keep) dst[count++] = static_cast<int>(j);
      }
      a.num_selected[task] = count;
    }
  });
}

}  // namespace sketchwalk
