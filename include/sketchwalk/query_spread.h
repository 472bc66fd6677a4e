// THE query-spread rule (docs/spec.md section 13), one definition for the CPU kernel
// (csrc/cpu/query_spread_rows_kernel.h) and the CUDA one (csrc/cuda/query_spread_rows.cu). Torch-free.
//
//   spread of a query block (its rows t, query heads h):
//     mean_h  max(mean_t ||q_t||^2 - ||m_h||^2, 0) / ||m_h||^2   (+inf when ||m_h||^2 ~ 0)
//   with m_h the block's mean query of head h (what the pooled sketch scores). A NaN stays NaN.
//
//   a sequence row ranking n of its query blocks keeps rint(frac * n) (half to even, as Python's
//   round) of largest spread among blocks 1 .. n - dense_last_q_blocks - 1 dense; NaN ranks as
//   +inf, ties go to the lower block.
#pragma once

#include <cmath>
#include <cstdint>

#include "sketchwalk/common.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

// A block mean query with a squared norm below this counts as zero: the head's term is +inf
// (maximally spread, as the reference's 1 / 0), not a NaN.
constexpr float kSpreadTinyNorm = 1e-30f;
// Largest head_dim the spread kernels take (the CUDA kernel keeps head_dim / 32 column sums per
// lane in registers).
constexpr int kMaxSpreadHeadDim = 256;

// One head's term from the block's mean squared row norm and its mean's squared norm. The
// comparisons (not fmax) keep a NaN input NaN.
template <typename F>
SW_HOST_DEVICE F head_spread(F mean_sq_norm, F mean_norm) {
  if (mean_norm < F(kSpreadTinyNorm)) return F(INFINITY);
  const F excess = mean_sq_norm - mean_norm;
  return (excess < F(0) ? F(0) : excess) / mean_norm;
}

// Dense query blocks wanted of n ranked ones.
SW_HOST_DEVICE int spread_rows_wanted(double frac, int n) {
#if defined(__CUDA_ARCH__)
  return static_cast<int>(rint(frac * static_cast<double>(n)));
#else
  return static_cast<int>(std::rint(frac * static_cast<double>(n)));
#endif
}

// Ranking key: NaN as +inf.
SW_HOST_DEVICE float spread_rank_key(float spread) {
  return spread != spread ? INFINITY : spread;  // x != x: NaN
}

// Whether block a (key ka) ranks before block b (key kb): larger first, then the lower id.
SW_HOST_DEVICE bool spread_ranks_before(float ka, int a, float kb, int b) {
  return ka > kb || (ka == kb && a < b);
}

// Row r of a query_spread_rows call: its first token, its token count (within q's tokens, so
// unchecked cu_seqlens cannot make a read past q) and the query blocks it ranks (<= width).
struct SpreadRowExtent {
  int64_t start, len, ranked;
};

SW_HOST_DEVICE SpreadRowExtent spread_row_extent(const QuerySpreadParams& p, int64_t r) {
  SpreadRowExtent e{0, p.tokens, 0};
  if (p.cu_seqlens != nullptr) {
    e.start = p.cu_seqlens[r] < 0 ? 0 : (p.cu_seqlens[r] > p.tokens ? p.tokens : p.cu_seqlens[r]);
    e.len = p.cu_seqlens[r + 1] - e.start;
    e.len = e.len < 0 ? 0 : (e.len > p.tokens - e.start ? p.tokens - e.start : e.len);
  }
  e.ranked = (e.len + p.block_size - 1) / p.block_size;
  if (e.ranked > p.width) e.ranked = p.width;
  if (p.seq_q_blocks != nullptr) {
    const int64_t n = p.seq_q_blocks[r];
    e.ranked = n < 0 ? 0 : (n < e.ranked ? n : e.ranked);
  }
  return e;
}

// Whether block i of a row ranking `ranked` blocks is dense: a candidate (1 .. ranked -
// dense_last_q_blocks - 1) with fewer than `want` candidates ranking before it. key(j): block
// j's spread_rank_key; the count stops at `want`.
template <typename Key>
SW_HOST_DEVICE bool spread_block_dense(const Key& key, int i, int ranked, int dense_last_q_blocks,
                                       int want) {
  const int lo = 1, hi = ranked - dense_last_q_blocks;  // candidates [lo, hi)
  if (i < lo || i >= hi || want <= 0) return false;
  const float ki = key(i);
  int rank = 0;
  for (int j = lo; j < hi && rank < want; ++j) rank += spread_ranks_before(key(j), j, ki, i);
  return rank < want;
}

}  // namespace sketchwalk
