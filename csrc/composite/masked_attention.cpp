// masked_attention_aten, no op of its own: block-sparse attention from ATen ops, on any device,
// which the CUDA wrappers csrc/cuda/sparse_prefill.cpp and csrc/cuda/sparse_decode.cpp run for
// float32 inputs after their checks (the tensor-core kernels take fp16/bf16). It expands the
// block index into a token mask chunk by chunk of query blocks (each chunk's logits stay under
// ~1 GiB) and runs an fp32 masked softmax. Exact, but it does the work of dense attention: a
// correctness path. seq_lens (decode only) masks the keys at or past each sequence's length.
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> masked_attention_aten(const at::Tensor& q, const at::Tensor& k,
                                                         const at::Tensor& v,
                                                         const at::Tensor& block_index,
                                                         const at::Tensor& num_selected,
                                                         const AttentionShape& s, double scale,
                                                         const std::optional<at::Tensor>& seq_lens) {
  using at::indexing::Slice;
  const int64_t b = s.block_size;
  const int64_t nk = (s.num_keys + b - 1) / b;
  const int64_t group = s.num_q_heads / s.num_kv_heads;
  // Kept key blocks as a mask [batch, index_heads, num_q_blocks, nk] (padding -> spare column).
  const auto slots = at::arange(s.max_selected, block_index.options().dtype(at::kLong));
  const auto used = slots.view({1, 1, 1, -1}) < num_selected.unsqueeze(-1).to(at::kLong);
  const auto cols = at::where(used, block_index.to(at::kLong), nk);
  auto block_mask = at::zeros({s.batch, s.index_heads, s.num_q_blocks, nk + 1},
                              q.options().dtype(at::kBool));
  block_mask.scatter_(-1, cols, true);
  block_mask = block_mask.index({Slice(), Slice(), Slice(), Slice(0, nk)});
  // Per query head: index head g = kv head (h / group) or 0.
  if (s.index_heads == 1) {
    block_mask = block_mask.expand({s.batch, s.num_q_heads, s.num_q_blocks, nk});
  } else {
    block_mask = block_mask.repeat_interleave(group, 1);
  }
  auto kf = k.to(at::kFloat).repeat_interleave(group, 1);  // [B, Hq, Tk, D]
  auto vf = v.to(at::kFloat).repeat_interleave(group, 1);
  if (seq_lens.has_value()) {  // rows past a sequence's length may hold anything (NaN): zero them
    const auto live = at::arange(s.num_keys, q.options().dtype(at::kLong)).view({1, 1, -1, 1}) <
                      seq_lens->to(at::kLong).view({-1, 1, 1, 1});
    kf = kf.masked_fill(live.logical_not(), 0.0);
    vf = vf.masked_fill(live.logical_not(), 0.0);
  }
  auto out = at::empty(q.sizes(), q.options());
  auto lse = at::empty({s.batch, s.num_q_heads, s.num_queries}, q.options().dtype(at::kFloat));
  const int64_t budget = int64_t{1} << 28;  // fp32 logits per chunk: 1 GiB
  const int64_t rows_per_chunk =
      std::max<int64_t>(b, budget / std::max<int64_t>(1, s.batch * s.num_q_heads * s.num_keys) / b * b);
  const auto key_pos = at::arange(s.num_keys, q.options().dtype(at::kLong));
  for (int64_t t0 = 0; t0 < s.num_queries; t0 += rows_per_chunk) {
    const int64_t t1 = std::min(t0 + rows_per_chunk, s.num_queries);
    const int64_t i0 = t0 / b, i1 = (t1 + b - 1) / b;
    auto mask = block_mask.index({Slice(), Slice(), Slice(i0, i1)})
                    .repeat_interleave(b, 2)
                    .repeat_interleave(b, 3)
                    .index({Slice(), Slice(), Slice(t0 - i0 * b, t1 - i0 * b), Slice(0, s.num_keys)});
    const auto q_pos = at::arange(t0, t1, key_pos.options()) + (s.num_keys - s.num_queries);
    mask = mask & (key_pos.view({1, -1}) <= q_pos.view({-1, 1}));
    if (seq_lens.has_value()) {  // decode over a fixed-capacity cache: keys < seq_lens[b] only
      mask = mask & (key_pos.view({1, 1, 1, -1}) < seq_lens->to(at::kLong).view({-1, 1, 1, 1}));
    }
    auto logits = at::matmul(q.index({Slice(), Slice(), Slice(t0, t1)}).to(at::kFloat), kf.transpose(-1, -2))
                      .mul_(scale);
    logits.masked_fill_(mask.logical_not(), -std::numeric_limits<float>::infinity());
    const auto row_lse = at::logsumexp(logits, -1);
    const auto finite = at::isfinite(row_lse);
    const auto probs = at::exp(logits - at::where(finite, row_lse, at::zeros_like(row_lse)).unsqueeze(-1));
    out.index_put_({Slice(), Slice(), Slice(t0, t1)}, at::matmul(probs, vf).to(q.scalar_type()));
    lse.index_put_({Slice(), Slice(), Slice(t0, t1)}, row_lse);
  }
  return {out, lse};
}

}  // namespace sketchwalk
