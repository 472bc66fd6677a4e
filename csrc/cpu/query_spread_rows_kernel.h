// The CPU query_spread_rows kernel on raw pointers (docs/ops.md op 4c), shared by the ATen op
// (csrc/cpu/query_spread_rows.cpp) and the stable-ABI one (csrc/stable/query_spread_rows.cpp):
// each query block's spread (sketchwalk/query_spread.h) accumulated in float64 and stored as
// float32, then per row the ranked blocks' flags. Same rule, same ties, as the CUDA kernel.
#pragma once

#include <algorithm>
#include <cstdint>

#include "sketchwalk/params.h"
#include "sketchwalk/query_spread.h"

namespace sketchwalk {

// Element type E: float, or a type with a float conversion (c10::Half / BFloat16, or the
// stable ABI's).
template <typename E, typename ParallelFor>
void compute_query_spread_rows(const QuerySpreadParams& p, ParallelFor&& parallel_for) {
  const int64_t b = p.block_size, width = p.width;
  parallel_for(int64_t{0}, int64_t{p.rows} * width, int64_t{8}, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / width, i = task % width;
      const SpreadRowExtent row = spread_row_extent(p, r);
      if (i >= row.ranked) continue;  // a block the choice never reads
      const int64_t t0 = i * b;
      const int64_t n = std::min(b, row.len - t0);
      const E* base = static_cast<const E*>(p.q) +
                      (p.cu_seqlens != nullptr ? 0 : r) * p.q_batch_stride +
                      (row.start + t0) * p.q_token_stride;
      double total = 0.0;
      for (int64_t h = 0; h < p.heads; ++h) {
        // Row by row (contiguous along head_dim), the column sums in a local array (head_dim <=
        // kMaxSpreadHeadDim: checks/query_spread_rows.h rejects more, validate or not).
        double col[kMaxSpreadHeadDim] = {};
        double sq = 0.0, mean_norm = 0.0;
        for (int64_t t = 0; t < n; ++t) {
          const E* x_row = base + h * p.q_head_stride + t * p.q_token_stride;
          for (int64_t d = 0; d < p.head_dim; ++d) {
            const double x = static_cast<float>(x_row[d]);
            col[d] += x;
            sq += x * x;
          }
        }
        for (int64_t d = 0; d < p.head_dim; ++d) {
          const double m = col[d] / static_cast<double>(n);
          mean_norm += m * m;
        }
        total += head_spread(sq / static_cast<double>(n), mean_norm);
      }
      p.spread[r * width + i] = static_cast<float>(total / static_cast<double>(p.heads));
    }
  });
  parallel_for(int64_t{0}, int64_t{p.rows}, int64_t{1}, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int ranked = static_cast<int>(spread_row_extent(p, r).ranked);
      const int want = spread_rows_wanted(p.frac, ranked);
      const float* s = p.spread + r * width;
      const auto key = [s](int j) { return spread_rank_key(s[j]); };
      bool* out = p.dense_rows + r * width;
      for (int i = 0; i < p.width; ++i) {
        out[i] = spread_block_dense(key, i, ranked, p.dense_last_q_blocks, want);
      }
    }
  });
}

}  // namespace sketchwalk
