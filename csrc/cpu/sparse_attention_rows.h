// The CPU kernel of the three attention ops (sparse_prefill, sparse_decode,
// sparse_prefill_varlen) on SparseAttentionParams: every layout the CUDA kernels read (dense,
// packed ragged batch, paged cache, left-padded or fixed-capacity decode cache), through the
// same SeqInfo / KvSource / RowBlocks (include/sketchwalk/attention_core.cuh). Shared by the
// ATen ops (csrc/cpu/sparse_*.cpp) and the stable-ABI ones (csrc/stable/sparse_*.cpp), which
// differ only in the parallel_for and the float32 GEMM they pass.
//
// Per (sequence, query head, query block): the row's selected key blocks gathered into fp32
// buffers (keys past the sequence's end or after the block's last query skipped), logits =
// Q K^T by the GEMM, then per query the causal mask, the log-sum-exp and the probabilities in
// plain loops, and out = P V by the GEMM. Exact attention over the selected blocks; a query with
// no visible key gets output 0 and lse -inf (docs/ops.md sections 5-6). Reads the index
// unchecked: the callers validate it first.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <vector>

#include "sketchwalk/attention_core.cuh"
#include "sketchwalk/block_index.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

namespace detail {

// A float buffer on a 64-byte boundary, reused across the tasks of one thread: the GEMM sees
// the same alignment for the same shapes on every call (BLAS results may depend on it).
class AlignedFloats {
 public:
  AlignedFloats() = default;
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  ~AlignedFloats() { std::free(data_); }
  float* get(int64_t n) {
    if (n > capacity_) {
      std::free(data_);
      const size_t floats = static_cast<size_t>(std::max<int64_t>(n, 1));
      const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;  // aligned_alloc: a multiple
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (data_ == nullptr) throw std::bad_alloc();
      capacity_ = n;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

}  // namespace detail

// gemm(c, a, b, m, n, k, b_transposed): c [m, n] = a [m, k] @ (b_transposed ? b [n, k]^T :
// b [k, n]), all float32, row-major and contiguous. parallel_for(begin, end, grain,
// fn(begin, end)): at::parallel_for or torch::stable's. Element: the q / k / v / out dtype.
template <typename Element, typename ParallelFor, typename Gemm>
void sparse_attention_cpu_rows(const SparseAttentionParams& p, ParallelFor&& parallel_for,
                               Gemm&& gemm) {
  constexpr int64_t kBlock = kIndexBlockSize;
  const int64_t d = p.head_dim;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const int64_t tasks = int64_t{p.batch} * p.num_q_heads * p.num_q_blocks;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    detail::AlignedFloats q_buf, k_buf, v_buf, logit_buf, out_buf;
    std::vector<int64_t> positions;
    std::vector<float> lse;
    for (int64_t task = begin; task < end; ++task) {
      const int q_block = static_cast<int>(task % p.num_q_blocks);
      const int head = static_cast<int>((task / p.num_q_blocks) % p.num_q_heads);
      const int b = static_cast<int>(task / (int64_t{p.num_q_blocks} * p.num_q_heads));
      const SeqInfo seq = SeqInfo::make(p, b);
      const int64_t t0 = int64_t{q_block} * kBlock;
      if (t0 >= seq.num_queries) continue;  // past a short sequence of a ragged batch
      const int64_t rows = std::min<int64_t>(kBlock, seq.num_queries - t0);
      const int kv_head = static_cast<int>(head / group);
      const KvSource<Element> kv = KvSource<Element>::make(p, seq, kv_head);
      const RowBlocks row = RowBlocks::of(p, seq, kv_head, q_block);
      const int64_t last_pos = seq.query_position(static_cast<int>(t0 + rows - 1));

      // Key positions of the selected blocks, in order, up to the block's last query.
      positions.clear();
      for (int c = 0; c < row.count; ++c) {
        const int64_t k0 = int64_t{row[c]} * kBlock;
        const int64_t k1 = std::min<int64_t>({k0 + kBlock, seq.num_keys, last_pos + 1});
        for (int64_t key = k0; key < k1; ++key) positions.push_back(key);
      }
      const int64_t n = static_cast<int64_t>(positions.size());
      float* out_rows = out_buf.get(rows * d);
      lse.assign(static_cast<size_t>(rows), neg_inf);
      if (n > 0) {
        float* qf = q_buf.get(rows * d);
        float* kf = k_buf.get(n * d);
        float* vf = v_buf.get(n * d);
        const Element* q_ptr = static_cast<const Element*>(p.q);
        for (int64_t r = 0; r < rows; ++r) {
          const Element* src = q_ptr + seq.q_offset(p.q_batch_stride, p.q_head_stride,
                                                    p.q_token_stride, head, t0 + r);
          for (int64_t e = 0; e < d; ++e) qf[r * d + e] = static_cast<float>(src[e]);
        }
        for (int64_t j = 0; j < n; ++j) {
          const int64_t block = positions[j] / kBlock, within = positions[j] % kBlock;
          const Element* k_row = kv.k_block(block) + within * kv.k_stride;
          const Element* v_row = kv.v_block(block) + within * kv.v_stride;
          for (int64_t e = 0; e < d; ++e) {
            kf[j * d + e] = static_cast<float>(k_row[e]);
            vf[j * d + e] = static_cast<float>(v_row[e]);
          }
        }
        float* logits = logit_buf.get(rows * n);
        gemm(logits, qf, kf, rows, n, d, true);
        for (int64_t r = 0; r < rows; ++r) {
          float* x = logits + r * n;
          const int64_t q_pos = seq.query_position(static_cast<int>(t0 + r));
          float m = neg_inf;  // a NaN logit makes m NaN, so the row's out and lse are NaN
          for (int64_t j = 0; j < n; ++j) {
            x[j] = positions[j] > q_pos ? neg_inf : x[j] * p.softmax_scale;
            if (x[j] > m || std::isnan(x[j])) m = std::isnan(m) ? m : x[j];
          }
          if (m == neg_inf) {  // no visible key: probabilities 0, output 0
            std::fill(x, x + n, 0.f);
            continue;
          }
          float sum = 0.f;
          for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j] - m);
          lse[r] = m + std::log(sum);
          for (int64_t j = 0; j < n; ++j) x[j] = std::exp(x[j] - lse[r]);
        }
        gemm(out_rows, logits, vf, rows, d, n, false);
      } else {
        std::fill(out_rows, out_rows + rows * d, 0.f);
      }
      Element* out_ptr = static_cast<Element*>(p.out);
      for (int64_t r = 0; r < rows; ++r) {
        Element* dst = out_ptr + seq.q_offset(p.out_batch_stride, p.out_head_stride,
                                              p.out_token_stride, head, t0 + r);
        for (int64_t e = 0; e < d; ++e) dst[e] = static_cast<Element>(out_rows[r * d + e]);
        p.lse[b * p.lse_batch_stride + head * p.lse_head_stride + seq.q_token0 + t0 + r] = lse[r];
      }
    }
  });
}

}  // namespace sketchwalk
