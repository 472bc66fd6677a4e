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

// Row r's token range [*start, *start + *len) and the query blocks it ranks (<= width), as the
// CUDA kernel bounds them.
inline void spread_row_extent(const QuerySpreadParams& p, int64_t r, int64_t* start,
                              int64_t* len, int64_t* ranked) {
  *start = p.cu_seqlens != nullptr ? std::clamp<int64_t>(p.cu_seqlens[r], 0, p.tokens) : 0;
  *len = p.cu_seqlens != nullptr ? p.cu_seqlens[r + 1] - *start : p.tokens;
  *len = std::clamp<int64_t>(*len, 0, p.tokens - *start);
  *ranked = std::min<int64_t>((*len + p.block_size - 1) / p.block_size, p.width);
  if (p.seq_q_blocks != nullptr) *ranked = std::clamp<int64_t>(p.seq_q_blocks[r], 0, *ranked);
}

// Element type E: float, or a type with a float conversion (c10::Half / BFloat16, or the
// stable ABI's).
template <typename E, typename ParallelFor>
void compute_query_spread_rows(const QuerySpreadParams& p, ParallelFor&& parallel_for) {
  const int64_t b = p.block_size, width = p.width;
  parallel_for(int64_t{0}, int64_t{p.rows} * width, int64_t{8}, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / width, i = task % width;
      int64_t start, len, ranked;
      spread_row_extent(p, r, &start, &len, &ranked);
      if (i >= ranked) continue;  // a block the choice never reads
      const int64_t t0 = i * b;
      const int64_t n = std::min(b, len - t0);
      const E* base = static_cast<const E*>(p.q) +
                      (p.cu_seqlens != nullptr ? 0 : r) * p.q_batch_stride +
                      (start + t0) * p.q_token_stride;
      double total = 0.0;
      for (int64_t h = 0; h < p.heads; ++h) {
        double sq = 0.0, mean_norm = 0.0;
        for (int64_t d = 0; d < p.head_dim; ++d) {
          double col = 0.0;
          for (int64_t t = 0; t < n; ++t) {
            const double x = static_cast<float>(base[h * p.q_head_stride + t * p.q_token_stride + d]);
            col += x;
            sq += x * x;
          }
          const double m = col / static_cast<double>(n);
          mean_norm += m * m;
        }
        total += head_spread(sq / static_cast<double>(n), mean_norm);
      }
      p.spread[r * width + i] = static_cast<float>(total / static_cast<double>(p.heads));
    }
  });
  parallel_for(int64_t{0}, int64_t{p.rows}, int64_t{1}, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      int64_t start, len, ranked;
      spread_row_extent(p, r, &start, &len, &ranked);
      const int want = spread_rows_wanted(p.frac, static_cast<int>(ranked));
      const int64_t lo = 1, hi = ranked - p.dense_last_q_blocks;  // candidates [lo, hi)
      const float* s = p.spread + r * width;
      bool* out = p.dense_rows + r * width;
      for (int64_t i = 0; i < width; ++i) {
        bool dense = false;
        if (i >= lo && i < hi && want > 0) {
          const float key = spread_rank_key(s[i]);
          int64_t rank = 0;
          for (int64_t j = lo; j < hi && rank < want; ++j) {
            rank += spread_ranks_before(spread_rank_key(s[j]), static_cast<int>(j), key,
                                        static_cast<int>(i));
          }
          dense = rank < want;
        }
        out[i] = dense;
      }
    }
  });
}

}  // namespace sketchwalk
