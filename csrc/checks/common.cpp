// The argument checks that several ops share (declared in csrc/checks.h): rank, dtype,
// strides, devices and scalar ranges; the attention arguments of sparse_prefill and
// sparse_decode; the 4-bit key cache and seq_lens of the keys4 ops and sparse_decode. Each
// op's own checks are in csrc/checks/<op>.cpp.
#include "checks.h"

#include <ATen/ATen.h>

#include <climits>
#include <cmath>

#include "sketchwalk/block_index.h"

namespace sketchwalk {

// > 0: the attention kernels subtract each row's max of the unscaled scores, which is the
// max of the scaled ones only for a positive scale (0 or a negative scale gave wrong rows).
AttentionShape check_attention_args(const char* op, const at::Tensor& q, const at::Tensor& k,
                                    const at::Tensor& v, const at::Tensor& block_index,
                                    const at::Tensor& num_selected, int64_t block_size) {
  check_rank(q, op, "q", 4, "[batch, num_q_heads, num_queries, head_dim]");
  check_rank(k, op, "k", 4, "[batch, num_kv_heads, num_keys, head_dim]");
  check_rank(v, op, "v", 4, "[batch, num_kv_heads, num_keys, head_dim]");
  check_rank(block_index, op, "block_index", 4,
             "[batch, index_heads, num_q_blocks, max_selected]");
  check_rank(num_selected, op, "num_selected", 3, "[batch, index_heads, num_q_blocks]");
  check_dtype(q, op, "q", {at::kHalf, at::kBFloat16, at::kFloat});
  SW_CHECK_ARG(k.scalar_type() == q.scalar_type(), op, "k", "must have the dtype of 'q' (",
               c10::toString(q.scalar_type()), "), got ", c10::toString(k.scalar_type()));
  SW_CHECK_ARG(v.scalar_type() == q.scalar_type(), op, "v", "must have the dtype of 'q' (",
               c10::toString(q.scalar_type()), "), got ", c10::toString(v.scalar_type()));
  check_dtype(block_index, op, "block_index", {at::kInt});
  check_dtype(num_selected, op, "num_selected", {at::kInt});
  check_same_device(k, q, op, "k", "q");
  check_same_device(v, q, op, "v", "q");
  check_same_device(block_index, q, op, "block_index", "q");
  check_same_device(num_selected, q, op, "num_selected", "q");
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"},
                         {&block_index, "block_index"}, {&num_selected, "num_selected"}}) {
    check_last_dim_contiguous(*t, op, name);
  }
  AttentionShape s{};
  s.batch = q.size(0);
  s.num_q_heads = q.size(1);
  s.num_queries = q.size(2);
  s.head_dim = q.size(3);
  s.num_kv_heads = k.size(1);
  s.num_keys = k.size(2);
  SW_CHECK_ARG(is_attention_head_dim(s.head_dim), op, "q", "has unsupported head_dim ", s.head_dim,
               "; supported head_dim values are {", kAttentionHeadDimSmall, ", ",
               kAttentionHeadDimLarge, "}");
  check_size(k, op, "k", 0, s.batch, "batch of 'q'");
  check_size(k, op, "k", 3, s.head_dim, "head_dim of 'q'");
  SW_CHECK_ARG(v.sizes() == k.sizes(), op, "v", "must have the shape of 'k' ", k.sizes(),
               ", got ", v.sizes());
  SW_CHECK_ARG(s.num_kv_heads >= 1 && s.num_q_heads % s.num_kv_heads == 0, op, "k",
               "has ", s.num_kv_heads, " heads, which must divide the ", s.num_q_heads,
               " heads of 'q' (GQA)");
  SW_CHECK_ARG(s.num_queries >= 1, op, "q", "must hold at least one query, got shape ", q.sizes());
  SW_CHECK_ARG(s.num_queries <= s.num_keys, op, "q", "has ", s.num_queries,
               " queries, more than the ", s.num_keys, " keys of 'k' (queries end at the last key)");
  SW_CHECK_ARG(block_size >= 1, op, "block_size", "must be >= 1, got ", block_size);
  s.block_size = block_size;
  s.num_q_blocks = (s.num_queries + block_size - 1) / block_size;
  s.index_heads = block_index.size(1);
  s.max_selected = block_index.size(3);
  check_size(block_index, op, "block_index", 0, s.batch, "batch");
  SW_CHECK_ARG(s.index_heads == 1 || s.index_heads == s.num_kv_heads, op, "block_index",
               "must have index_heads (dim 1) equal to 1 or num_kv_heads=", s.num_kv_heads,
               ", got ", s.index_heads);
  check_size(block_index, op, "block_index", 2, s.num_q_blocks,
             "num_q_blocks = ceil(num_queries / block_size)");
  SW_CHECK_ARG(num_selected.sizes() == block_index.sizes().slice(0, 3), op, "num_selected",
               "must have shape ", block_index.sizes().slice(0, 3),
               " (the first 3 dims of 'block_index'), got ", num_selected.sizes());
  return s;
}

void validate_block_index(const char* op, const at::Tensor& block_index,
                          const at::Tensor& num_selected, const AttentionShape& s) {
  if (block_index.numel() == 0) {
    SW_CHECK_ARG(num_selected.numel() == 0 || at::all(num_selected == 0).item<bool>(), op,
                 "num_selected", "must be 0 when 'block_index' has no slots");
    return;
  }
  const auto opts = block_index.options();
  SW_CHECK_ARG(at::all(at::logical_and(num_selected >= 0, num_selected <= s.max_selected))
                   .item<bool>(),
               op, "num_selected", "must lie in [0, max_selected=", s.max_selected, "]");
  // used[b, g, i, j]: slot j of row (b, g, i) is in use.
  const auto slot = at::arange(s.max_selected, opts);
  const auto used = at::lt(slot.view({1, 1, 1, -1}), num_selected.unsqueeze(-1));
  // Per-row causal limit, the key block of the row's last query (block_index.h).
  const auto row = at::arange(s.num_q_blocks, opts);
  const auto last_query = at::clamp_max(row * s.block_size + (s.block_size - 1), s.num_queries - 1);
  const auto limit = (last_query + (s.num_keys - s.num_queries)).div(s.block_size, "floor");
  const auto in_range = at::logical_and(block_index >= 0, block_index <= limit.view({1, 1, -1, 1}));
  SW_CHECK_ARG(at::all(at::logical_or(used.logical_not(), in_range)).item<bool>(), op,
               "block_index", "holds a key-block id out of range: each used entry of row i must lie in "
               "[0, causal_limit(i)] (num_kv_blocks=", (s.num_keys + s.block_size - 1) / s.block_size,
               ")");
  if (s.max_selected > 1) {
    using at::indexing::Slice;
    const auto both_used = used.index({Slice(), Slice(), Slice(), Slice(1, at::indexing::None)});
    const auto increasing =
        block_index.index({Slice(), Slice(), Slice(), Slice(1, at::indexing::None)}) >
        block_index.index({Slice(), Slice(), Slice(), Slice(0, -1)});
    SW_CHECK_ARG(at::all(at::logical_or(both_used.logical_not(), increasing)).item<bool>(), op,
                 "block_index", "must list each row's blocks in strictly increasing order (no duplicates)");
  }
}

std::pair<int64_t, int64_t> int_range(tensor_world, const at::Tensor& t) {
  auto [lo, hi] = at::aminmax(t);
  return {lo.item<int64_t>(), hi.item<int64_t>()};
}

at::Tensor host_contiguous(tensor_world, const at::Tensor& t) {
  return t.to(at::kCPU).contiguous();
}

bool read_values(bool validate, const at::Tensor& t) {
  return validate && !current_stream_is_capturing(t);
}

#ifndef SKETCHWALK_WITH_CUDA
bool current_stream_is_capturing(const at::Tensor&) { return false; }
#endif

}  // namespace sketchwalk
