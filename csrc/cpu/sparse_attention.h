// The CPU kernel of sparse_prefill and sparse_decode (csrc/cpu/sparse_prefill.cpp,
// csrc/cpu/sparse_decode.cpp): for each (batch, query head, query block) gather the row's
// selected key blocks, then one masked softmax(Q K^T) V in fp32 through ATen's matmul (BLAS).
// Exact attention over the selected blocks, causal inside them; a query with no visible key
// gets output 0 and lse -inf (docs/ops.md sections 5-6). It reads the index unchecked: the
// callers validate it first.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <tuple>

#include "checks.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk::cpu {

// `s` comes from the op's checks (csrc/checks/sparse_prefill.cpp, csrc/checks/sparse_decode.cpp);
// seq_lens (decode only) holds the keys of each sequence of a fixed-capacity cache.
inline std::tuple<at::Tensor, at::Tensor> sparse_attention(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const AttentionShape& s, std::optional<double> softmax_scale,
    const std::optional<at::Tensor>& seq_lens) {
  constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h
  const auto lens = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* lens_p = lens.defined() ? lens.data_ptr<int>() : nullptr;
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  const auto bi = block_index.contiguous();
  const auto ns = num_selected.contiguous();
  const int* bi_p = bi.data_ptr<int>();
  const int* ns_p = ns.data_ptr<int>();
  const int64_t group = s.num_q_heads / s.num_kv_heads;
  const int64_t tasks = s.batch * s.num_q_heads * s.num_q_blocks;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t i = task % s.num_q_blocks;
      const int64_t h = (task / s.num_q_blocks) % s.num_q_heads;
      const int64_t b = task / (s.num_q_blocks * s.num_q_heads);
      const int64_t kvh = h / group;
      const int64_t g = s.index_heads == 1 ? 0 : kvh;
      // Keys of this sequence (a fixed-capacity decode cache holds seq_lens[b]); queries end
      // at its last key.
      const int64_t num_keys = lens_p != nullptr ? lens_p[b] : s.num_keys;
      const int64_t offset = num_keys - s.num_queries;  // key position of query 0
      const int64_t row = (b * s.index_heads + g) * s.num_q_blocks + i;
      const int64_t count = ns_p[row];
      const int* blocks = bi_p + row * s.max_selected;
      const int64_t t0 = i * kBlockSize, t1 = std::min(t0 + kBlockSize, s.num_queries);
      auto q_blk = q[b][h].slice(0, t0, t1).to(at::kFloat);  // [rows, D]
      // Key positions of the selected blocks, in order.
      auto pos = at::empty({count * kBlockSize}, at::kLong);
      int64_t* pp = pos.data_ptr<int64_t>();
      int64_t n = 0;
      for (int64_t c = 0; c < count; ++c) {
        const int64_t k0 = static_cast<int64_t>(blocks[c]) * kBlockSize;
        for (int64_t key = k0; key < std::min(k0 + kBlockSize, num_keys); ++key) pp[n++] = key;
      }
      pos = pos.slice(0, 0, n);
      auto out_blk = out[b][h].slice(0, t0, t1);
      auto lse_blk = lse[b][h].slice(0, t0, t1);
      if (n == 0) {
        out_blk.zero_();
        lse_blk.fill_(-std::numeric_limits<float>::infinity());
        continue;
      }
      auto k_sel = k[b][kvh].index_select(0, pos).to(at::kFloat);  // [n, D]
      auto v_sel = v[b][kvh].index_select(0, pos).to(at::kFloat);
      auto logits = at::matmul(q_blk, k_sel.t()).mul_(scale);  // [rows, n]
      auto q_pos = at::arange(t0 + offset, t1 + offset, at::kLong).unsqueeze(1);
      logits.masked_fill_(pos.unsqueeze(0) > q_pos, -std::numeric_limits<float>::infinity());
      auto row_lse = at::logsumexp(logits, 1);  // -inf where a query sees no key
      auto visible = at::isfinite(row_lse);
      auto probs = at::exp(logits - at::where(visible, row_lse, at::zeros_like(row_lse)).unsqueeze(1));
      auto o = at::matmul(probs, v_sel);  // rows with no key: exp(-inf) = 0 -> output 0
      out_blk.copy_(o);
      lse_blk.copy_(row_lse);
    }
  });
  return {out, lse};
}

}  // namespace sketchwalk::cpu
