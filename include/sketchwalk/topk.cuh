// Order statistics for the select_blocks and select_blocks_keys4 ops, computed by one warp or
// one CTA per row over the order-preserving uint32 image of the floats: the k-th smallest
// candidate score by a radix select (a CTA over keys staged in shared memory: four 8-bit
// histogram passes) or a bitwise binary search (<= 33 count passes, each a per-thread count
// plus a group reduction), and the quantile with linear interpolation exactly as
// torch.quantile computes it. Torch-free.
//
// TIE RULE: selection is by threshold, never by count. A block is kept by the quantile rule
// only when its score is STRICTLY greater than the threshold th (compared in float64), so
// every block whose score equals th is dropped, whatever its index, and equal scores are
// always kept or dropped together: no index-based tie-break exists or is needed. The order
// statistics themselves are values, so ties among candidates do not affect th.
// A NaN among the candidates makes th NaN (as torch.quantile), and so does an empty
// candidate set; a NaN th keeps nothing by this rule.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"

namespace sketchwalk {
namespace thread {

/// \brief Order-preserving map float -> uint32: a < b (as floats, no NaN) iff key(a) < key(b).
/// -0.0 maps below +0.0; the two compare equal as floats but both sit on the same side of any
/// threshold other than zero itself, and the threshold is a value built from the keys.
SW_DEVICE uint32_t float_to_ordered_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

SW_DEVICE float ordered_key_to_float(uint32_t key) {
  const uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
  return __uint_as_float(u);
}

/// \brief torch.lerp's float64 formula (the one torch.quantile applies to its two order
/// statistics): w < 0.5 ? a + w (b - a) : b - (b - a)(1 - w).
SW_DEVICE double lerp_like_torch(double a, double b, double w) {
  // Explicit roundings: no fma contraction, so the threshold matches the plain formula.
  const double diff = __dsub_rn(b, a);
  return w < 0.5 ? __dadd_rn(a, __dmul_rn(w, diff))
                 : __dsub_rn(b, __dmul_rn(diff, __dsub_rn(1.0, w)));
}

}  // namespace thread

namespace warp {
/// \brief Inclusive prefix sum over the 32 lanes of a warp: lane i gets v_0 + ... + v_i.
template <typename T>
SW_DEVICE T inclusive_sum(T v, int lane) {
#pragma unroll
  for (int off = 1; off < 32; off *= 2) {
    const T up = __shfl_up_sync(0xffffffffu, v, off);
    if (lane >= off) v += up;
  }
  return v;
}
}  // namespace warp

namespace group {

/// \brief The threads that select one row: one warp (kWarps == 1; several rows per CTA) or
/// the whole CTA (kWarps > 1; one row per CTA, for launches with few rows such as decode,
/// where a lone warp is latency-bound). Reductions give every thread the group's total.
template <int kWarps>
struct RowGroup {
  static constexpr int kThreads = 32 * kWarps;
  int tid;                 // thread index within the group
  uint32_t* scratch;       // kWarps words of shared memory (unused when kWarps == 1)

  SW_DEVICE int warp_idx() const { return tid >> 5; }
  SW_DEVICE void sync() const {
    if constexpr (kWarps == 1) {
      __syncwarp();
    } else {
      __syncthreads();
    }
  }
  template <typename Op>
  SW_DEVICE uint32_t across_warps(uint32_t warp_value, Op op) const {
    if constexpr (kWarps == 1) {
      return warp_value;
    } else {
      if ((tid & 31) == 0) scratch[warp_idx()] = warp_value;
      __syncthreads();
      uint32_t v = scratch[0];
#pragma unroll
      for (int w = 1; w < kWarps; ++w) v = op(v, scratch[w]);
      __syncthreads();  // scratch is reused by the next reduction
      return v;
    }
  }
  SW_DEVICE int sum(int v) const {
    const uint32_t w = __reduce_add_sync(0xffffffffu, static_cast<uint32_t>(v));
    return static_cast<int>(across_warps(w, [](uint32_t a, uint32_t b) { return a + b; }));
  }
  SW_DEVICE uint32_t min(uint32_t v) const {
    return across_warps(__reduce_min_sync(0xffffffffu, v),
                        [](uint32_t a, uint32_t b) { return a < b ? a : b; });
  }
  SW_DEVICE uint32_t max(uint32_t v) const {
    return across_warps(__reduce_max_sync(0xffffffffu, v),
                        [](uint32_t a, uint32_t b) { return a > b ? a : b; });
  }
};

/// \brief Candidate keys staged in shared memory (4-byte aligned; the first up to 3 keys are
/// read singly, then 4 keys per lds.128 with 4 loads in flight per thread). The counts must
/// have independent loads: a scalar one-warp loop spent ~30 cycles per key per pass.
struct SharedKeys {
  const uint32_t* keys;
  SW_DEVICE uint32_t operator()(int j) const { return keys[j]; }
  template <typename Group>
  SW_DEVICE int count_less(int n, uint32_t bound, const Group& g) const {
    const int misaligned = static_cast<int>((reinterpret_cast<uintptr_t>(keys) >> 2) & 3);
    const int head = min(n, (4 - misaligned) & 3);
    int count = (g.tid < head && keys[g.tid] < bound) ? 1 : 0;
    const uint4* keys4 = reinterpret_cast<const uint4*>(keys + head);
    const int n4 = (n - head) >> 2;
#pragma unroll 4
    for (int j = g.tid; j < n4; j += Group::kThreads) {
      const uint4 v = keys4[j];
      count += (v.x < bound) + (v.y < bound) + (v.z < bound) + (v.w < bound);
    }
    for (int j = head + (n4 << 2) + g.tid; j < n; j += Group::kThreads)
      count += keys[j] < bound ? 1 : 0;
    return g.sum(count);
  }
};

/// \brief Candidate keys read from global float scores in every pass (rows too long to stage).
struct GlobalKeys {
  const float* scores;
  SW_DEVICE uint32_t operator()(int j) const {
    return thread::float_to_ordered_key(__ldg(scores + j));
  }
  template <typename Group>
  SW_DEVICE int count_less(int n, uint32_t bound, const Group& g) const {
    int count = 0;
#pragma unroll 8
    for (int j = g.tid; j < n; j += Group::kThreads) count += (*this)(j) < bound ? 1 : 0;
    return g.sum(count);
  }
};

/// \brief The k-th smallest key (0 <= k < n) of keys staged in shared memory, for a group of
/// several warps: a radix select over four 8-bit digits, most significant first. Each pass
/// builds a 256-bin histogram of the keys that match the digits found so far (warp-aggregated
/// shared-memory atomics: a row's keys mostly share their top byte), then warp 0 finds the bin
/// holding rank k. Four passes instead of bitwise_select_kth_key's ~30; the result is the same
/// key (an order statistic is a value).
template <int kWarps>
SW_DEVICE uint32_t radix_select_kth_key(const SharedKeys& key_at, int n, int k,
                                        const RowGroup<kWarps>& g) {
  static_assert(kWarps > 1, "the radix select uses the whole CTA");
  __shared__ uint32_t hist[256];
  __shared__ int found[2];  // digit, keys below it among the matching keys
  const int lane = g.tid & 31;
  uint32_t prefix = 0u, prefix_mask = 0u;
  int rank = k;  // rank of the answer among the keys that match `prefix`
#pragma unroll 1
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = g.tid; i < 256; i += RowGroup<kWarps>::kThreads) hist[i] = 0u;
    __syncthreads();
    for (int j0 = 0; j0 < n; j0 += RowGroup<kWarps>::kThreads) {  // warp-uniform trip count
      const int j = j0 + g.tid;
      const uint32_t key = j < n ? key_at(j) : 0u;
      const bool match = j < n && (key & prefix_mask) == prefix;
      const uint32_t bin = match ? (key >> shift) & 255u : 256u;  // 256: no bin
      const unsigned same = __match_any_sync(0xffffffffu, bin);
      if (match && lane == __ffs(same) - 1) atomicAdd(&hist[bin], __popc(same));
    }
    __syncthreads();
    if (g.tid < 32) {  // warp 0: lane l owns bins [8l, 8l + 8)
      uint32_t c[8], total = 0u;
#pragma unroll
      for (int b = 0; b < 8; ++b) total += (c[b] = hist[8 * lane + b]);
      const uint32_t inclusive = warp::inclusive_sum(total, lane);
      uint32_t below = inclusive - total;
      const uint32_t r = static_cast<uint32_t>(rank);
      if (below <= r && r < inclusive) {  // exactly one lane: 0 <= rank < #matching keys
#pragma unroll
        for (int b = 0; b < 8; ++b) {
          if (r < below + c[b]) {
            found[0] = 8 * lane + b;
            found[1] = static_cast<int>(below);
            break;
          }
          below += c[b];
        }
      }
    }
    __syncthreads();
    prefix |= static_cast<uint32_t>(found[0]) << shift;
    prefix_mask |= 255u << shift;
    rank -= found[1];
    // The next pass rewrites hist and found only after its first __syncthreads, which every
    // thread reaches after reading them here.
  }
  return prefix;
}

/// \brief The k-th smallest key (0-based, 0 <= k < n) among keys[0, n): the largest value v
/// with #(key < v) <= k, built bit by bit below the keys' common prefix (<= 33 passes).
/// `KeyAt` is SharedKeys or GlobalKeys: operator()(j) gives key j, count_less(n, bound, g)
/// the group total of keys < bound.
template <typename KeyAt, typename Group>
SW_DEVICE uint32_t bitwise_select_kth_key(const KeyAt& key_at, int n, int k, const Group& g) {
  // One min/max pass first: the answer lies in [lo, hi], so it shares their common bit prefix
  // and the search starts below it (scores of one row usually share sign and top exponent
  // bits: a few passes fewer).
  uint32_t lo = 0xffffffffu, hi = 0u;
#pragma unroll 8
  for (int j = g.tid; j < n; j += Group::kThreads) {
    const uint32_t key = key_at(j);
    lo = lo < key ? lo : key;
    hi = hi > key ? hi : key;
  }
  lo = g.min(lo);
  hi = g.max(hi);
  if (lo == hi) return lo;
  const int top_bit = 31 - __clz(lo ^ hi);
  uint32_t answer = lo & ~((2u << top_bit) - 1u);  // common prefix (2u << 31 wraps to 0)
#pragma unroll 1
  for (int bit = top_bit; bit >= 0; --bit) {
    const uint32_t trial = answer | (1u << bit);
    if (key_at.count_less(n, trial, g) <= k) answer = trial;
  }
  return answer;
}

/// \brief The k-th smallest key (0-based, 0 <= k < n) among keys[0, n): by the radix select
/// for staged keys and a multi-warp group, else by the bitwise search (a lone warp, or keys
/// read from global memory in every pass). Both return the same key.
template <typename KeyAt, typename Group>
SW_DEVICE uint32_t select_kth_key(const KeyAt& key_at, int n, int k, const Group& g) {
  if constexpr (std::is_same_v<KeyAt, SharedKeys> && (Group::kThreads > 32)) {
    return radix_select_kth_key(key_at, n, k, g);
  } else {
    return bitwise_select_kth_key(key_at, n, k, g);
  }
}

/// \brief The (k+1)-th smallest key given kth = the k-th smallest (k + 1 < n): kth itself when
/// more than k + 1 keys are <= kth, else the smallest key above kth. One pass.
template <typename KeyAt, typename Group>
SW_DEVICE uint32_t select_next_key(const KeyAt& key_at, int n, int k, uint32_t kth,
                                   const Group& g) {
  int at_most = 0;
  uint32_t above = 0xffffffffu;
#pragma unroll 8
  for (int j = g.tid; j < n; j += Group::kThreads) {
    const uint32_t key = key_at(j);
    at_most += key <= kth ? 1 : 0;
    if (key > kth) above = above < key ? above : key;
  }
  at_most = g.sum(at_most);
  above = g.min(above);
  return at_most > k + 1 ? kth : above;
}

/// \brief torch.quantile(values, q, interpolation="linear") in float64 over n >= 1 float32
/// values given as ordered keys (no NaN): pos = q (n - 1), lerp between the order statistics
/// at floor(pos) and ceil(pos) with weight pos - floor(pos).
template <typename KeyAt, typename Group>
SW_DEVICE double quantile_linear(const KeyAt& key_at, int n, double q, const Group& g) {
  // Explicit roundings (no fma): the level q is any float64 (1 - keep' of
  // sketchwalk/dense_rows_budget.h too), so a fused pos or weight could move a threshold that
  // sits exactly on an order statistic.
  const double pos = __dmul_rn(q, static_cast<double>(n - 1));
  int below = static_cast<int>(pos);  // pos >= 0: truncation is floor, as torch's toType(kLong)
  below = below < 0 ? 0 : (below > n - 1 ? n - 1 : below);
  int above = static_cast<int>(ceil(pos));
  above = above < below ? below : (above > n - 1 ? n - 1 : above);
  const double weight = __dsub_rn(pos, static_cast<double>(below));
  const uint32_t key_below = select_kth_key(key_at, n, below, g);
  const uint32_t key_above =
      above == below ? key_below : select_next_key(key_at, n, below, key_below, g);
  return thread::lerp_like_torch(static_cast<double>(thread::ordered_key_to_float(key_below)),
                                 static_cast<double>(thread::ordered_key_to_float(key_above)),
                                 weight);
}

/// \brief The keep rule's threshold over n candidate keys: NaN (the rule keeps nothing) when
/// n == 0 or a candidate is NaN, as torch.quantile; else quantile_linear at level q.
template <typename KeyAt, typename Group>
SW_DEVICE double candidate_threshold(const KeyAt& key_at, int n, double q, const Group& g) {
  const double nan = __longlong_as_double(0x7ff8000000000000LL);
  if (n <= 0) return nan;  // group-uniform
  int has_nan = 0;
#pragma unroll 4
  for (int j = g.tid; j < n; j += Group::kThreads) {
    const float v = thread::ordered_key_to_float(key_at(j));
    has_nan |= v != v;
  }
  if (g.sum(has_nan) != 0) return nan;
  return quantile_linear(key_at, n, q, g);
}

/// \brief keys[j] = ordered key of scores[j], j < n, by one group, then a group barrier. A
/// lone warp (or a whole CTA with few keys each) waits one memory round trip per batch of
/// loads in flight, so: 16-byte loads, 8 per thread in flight, when the row
/// start is 16-byte aligned (keys must be), else scalar loads 16 per thread in flight.
template <typename Group>
SW_DEVICE void stage_row_keys(const float* __restrict__ scores, int n, uint32_t* keys,
                              const Group& g) {
  if ((reinterpret_cast<uintptr_t>(scores) & 15) == 0) {
    const float4* scores4 = reinterpret_cast<const float4*>(scores);
    uint4* keys4 = reinterpret_cast<uint4*>(keys);
    const int n4 = n >> 2;
#pragma unroll 8
    for (int j = g.tid; j < n4; j += Group::kThreads) {
      const float4 v = __ldg(scores4 + j);
      keys4[j] = make_uint4(thread::float_to_ordered_key(v.x), thread::float_to_ordered_key(v.y),
                            thread::float_to_ordered_key(v.z), thread::float_to_ordered_key(v.w));
    }
    for (int j = (n4 << 2) + g.tid; j < n; j += Group::kThreads)
      keys[j] = thread::float_to_ordered_key(__ldg(scores + j));
  } else {
#pragma unroll 16
    for (int j = g.tid; j < n; j += Group::kThreads)
      keys[j] = thread::float_to_ordered_key(__ldg(scores + j));
  }
  g.sync();
}

/// \brief Writes every j in [0, n) with keep(j) to out[0, count) in ascending order, pads
/// out[count, width) with kBlockIndexPad and returns count (group-uniform). keep(j) is called
/// once per j < n. Each thread owns a contiguous run of up to 32 indices per round (one bit
/// each), so a row of up to 32 * kThreads indices takes one round: one exclusive scan of the
/// threads' counts (warp shuffles, then the warp totals through shared memory) instead of a
/// ballot and two barriers per kThreads indices (measured on an H200 at 2048 blocks per row:
/// the eight barrier-separated rounds of global loads dominated select_blocks_keys4).
template <int kWarps, typename Keep>
SW_DEVICE int compact_ascending(int n, int width, Keep keep, int* __restrict__ out,
                                const RowGroup<kWarps>& g) {
  constexpr int kThreads = RowGroup<kWarps>::kThreads;
  constexpr int kRun = 32;  // bits of a uint32
  const int lane = g.tid & 31;
  int count = 0;
  for (int j0 = 0; j0 < n; j0 += kThreads * kRun) {  // group-uniform trip count
    const int left = n - j0;
    const int per = left >= kThreads * kRun ? kRun : (left + kThreads - 1) / kThreads;
    const int first = j0 + g.tid * per;
    uint32_t bits = 0u;
#pragma unroll 8
    for (int i = 0; i < per; ++i) {
      const int j = first + i;
      if (j < n && keep(j)) bits |= 1u << i;
    }
    const int mine = __popc(bits);
    const int inclusive = warp::inclusive_sum(mine, lane);
    int offset = inclusive - mine;
    int total = __shfl_sync(0xffffffffu, inclusive, 31);
    if constexpr (kWarps > 1) {
      __shared__ int warp_counts[kWarps];
      if (lane == 31) warp_counts[g.warp_idx()] = inclusive;
      __syncthreads();
      total = 0;
#pragma unroll
      for (int wi = 0; wi < kWarps; ++wi) {
        const int c = warp_counts[wi];
        offset += wi < g.warp_idx() ? c : 0;
        total += c;
      }
      __syncthreads();  // warp_counts is rewritten by the next round
    }
    int at = count + offset;
    while (bits != 0u) {
      out[at++] = first + __ffs(bits) - 1;
      bits &= bits - 1u;
    }
    count += total;
  }
  for (int j = count + g.tid; j < width; j += kThreads) out[j] = kBlockIndexPad;
  return count;
}

}  // namespace group
}  // namespace sketchwalk
