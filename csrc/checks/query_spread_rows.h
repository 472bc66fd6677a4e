// Argument checks of query_spread_rows: q and the rule's knobs, the packed rows' cu_seqlens and
// max_blocks, the optional per-row block counts seq_q_blocks (their values only with validate
// and no graph capture), and the CUDA grid's row limit. Templates over the tensor type: the ATen
// ops (csrc/cpu/query_spread_rows.cpp, csrc/cuda/query_spread_rows.cpp) and the stable-ABI ones
// (csrc/stable/query_spread_rows{,_cuda}.cpp) run the same checks with the same messages.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "checks/hadamard_sketch.h"
#include "checks/keys4_cache.h"
#include "sketchwalk/common.h"
#include "sketchwalk/query_spread.h"
#include "tensor_checks.h"

namespace sketchwalk {

// The sizes the checks settle: rows (sequences) and the output's width (query blocks).
struct QuerySpreadShape {
  int64_t rows, width;
};

template <typename T>
QuerySpreadShape check_query_spread_rows_args(const T& q, int64_t block_size, double frac,
                                              int64_t dense_last_q_blocks,
                                              const std::optional<T>& cu_seqlens,
                                              int64_t max_blocks,
                                              const std::optional<T>& seq_q_blocks,
                                              bool validate) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "query_spread_rows";
  check_tensor(q, op, "q", 4, "[batch, heads, tokens, head_dim]",
               {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float});
  check_int32(block_size, op, "block_size", 1);
  check_int32(dense_last_q_blocks, op, "dense_last_q_blocks", 0);
  check_finite(frac, op, "frac");
  SW_CHECK_ARG(frac >= 0.0 && frac <= 1.0, op, "frac", "must lie in [0, 1], got ", frac);
  SW_CHECK_ARG(q.size(1) >= 1 && q.size(1) <= INT32_MAX && q.size(2) <= INT32_MAX, op, "q",
               "must have 1 <= heads <= ", INT32_MAX, " and tokens <= ", INT32_MAX,
               ", got shape ", q.sizes());
  SW_CHECK_ARG(q.size(3) >= 1 && q.size(3) <= kMaxSpreadHeadDim, op, "q", "has head_dim ",
               q.size(3), "; supported: 1 .. ", kMaxSpreadHeadDim);
  QuerySpreadShape s{};
  const int64_t tokens = q.size(2);
  if (cu_seqlens.has_value()) {
    const T& cu = *cu_seqlens;
    check_tensor(cu, op, "cu_seqlens", 1, "[num_seqs + 1]", {ScalarType::Int});
    check_same_device(cu, q, op, "cu_seqlens", "q");
    SW_CHECK_ARG(cu.size(0) >= 1, op, "cu_seqlens", "must have num_seqs + 1 >= 1 entries, got 0");
    SW_CHECK_ARG(q.size(0) == 1, op, "q",
                 "must have batch 1 with cu_seqlens (the packed tokens on dim 2), got shape ",
                 q.sizes());
    check_int32(max_blocks, op, "max_blocks", 0);
    s.rows = cu.size(0) - 1;
    s.width = max_blocks;
  } else {
    const int64_t own = (tokens + block_size - 1) / block_size;
    SW_CHECK_ARG(max_blocks == -1 || (max_blocks >= own && max_blocks <= INT32_MAX), op,
                 "max_blocks", "must be -1 (ceil(tokens / block_size) = ", own,
                 ") or at least that without cu_seqlens, got ", max_blocks);
    s.rows = q.size(0);
    s.width = max_blocks == -1 ? own : max_blocks;
  }
  if (seq_q_blocks.has_value()) {
    const T& n = *seq_q_blocks;
    check_tensor(n, op, "seq_q_blocks", 1, "[rows]", {ScalarType::Int});
    check_same_device(n, q, op, "seq_q_blocks", "q");
    check_size(n, op, "seq_q_blocks", 0, s.rows, "rows: batch, or num_seqs of 'cu_seqlens'");
  }
  if (!read_values(tensor_world{}, validate, q)) return s;
  std::vector<int32_t> starts;
  if (cu_seqlens.has_value()) {
    check_cu_seqlens_values(op, "cu_seqlens", *cu_seqlens, tokens, block_size, s.width,
                            "max_blocks");
    starts = host_int32(tensor_world{}, *cu_seqlens);
  }
  if (seq_q_blocks.has_value() && s.rows > 0) {
    const std::vector<int32_t> n = host_int32(tensor_world{}, *seq_q_blocks);
    for (int64_t r = 0; r < s.rows; ++r) {
      const int64_t len = starts.empty() ? tokens : starts[r + 1] - starts[r];
      const int64_t own = (len + block_size - 1) / block_size;
      SW_CHECK_ARG(n[r] >= 0 && n[r] <= own, op, "seq_q_blocks", "row ", r, " ranks ", n[r],
                   " query blocks; it has ", own, " (", len, " tokens)");
    }
  }
  return s;
}

// One grid row per sequence row on the grid's y.
inline void check_query_spread_rows_cuda_rows(const QuerySpreadShape& s) {
  SW_CHECK_ARG(s.rows <= kMaxGridYZ, "query_spread_rows", "q",
               "must have at most ", kMaxGridYZ, " rows on CUDA, got ", s.rows);
}

}  // namespace sketchwalk
