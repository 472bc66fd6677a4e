// Argument checks of select_blocks (the block scores and the integer and fraction knobs of the
// selection rule) and select_blocks_varlen (padded scores of a ragged batch and each row's
// lengths and token knobs in seq_args; their values only with validate and no graph capture),
// and of both ops' optional dense_rows flags (and dense_rows_in_budget's size bound).
// Templates over the tensor type: the ATen ops (csrc/cpu/select_blocks.cpp,
// csrc/cuda/select_blocks.cpp) and the stable-ABI ones (csrc/stable/select_blocks{,_cuda}.cpp)
// run the same checks with the same messages.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "checks/keys4_cache.h"
#include "sketchwalk/params.h"
#include "tensor_checks.h"

namespace sketchwalk {

// dense_rows (optional): bool [rows, num_q_blocks] on scores' device, last dim contiguous; a
// flagged query block keeps every causal key block (docs/ops.md op 4). With
// dense_rows_in_budget the kernels sum a sequence's candidate counts in int32: at most
// num_q_blocks x num_kv_blocks.
template <typename T>
void check_dense_rows(const std::optional<T>& dense_rows, bool dense_rows_in_budget,
                      const T& scores, const char* op) {
  if (!dense_rows.has_value()) return;
  using ScalarType = detail::scalar_type_of<T>;
  const T& flags = *dense_rows;
  check_tensor(flags, op, "dense_rows", 2, "[rows, num_q_blocks] bool", {ScalarType::Bool});
  check_same_device(flags, scores, op, "dense_rows", "scores");
  check_size(flags, op, "dense_rows", 0, scores.size(0), "rows of 'scores'");
  check_size(flags, op, "dense_rows", 1, scores.size(1), "num_q_blocks of 'scores'");
  SW_CHECK_ARG(!dense_rows_in_budget || scores.size(1) * scores.size(2) <= INT32_MAX, op,
               "dense_rows_in_budget", "needs num_q_blocks x num_kv_blocks <= 2^31 - 1, got ",
               scores.size(1), " x ", scores.size(2));
}

template <typename T>
void check_select_blocks_args(const T& scores, int64_t num_queries, int64_t num_keys,
                              int64_t block_size, double keep_frac, int64_t window_tokens,
                              int64_t exclude_sink_tokens, int64_t attend_sink_tokens,
                              int64_t dense_last_q_blocks, const std::optional<T>& dense_rows,
                              bool dense_rows_in_budget) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "select_blocks";
  check_tensor(scores, op, "scores", 3, "[batch, num_q_blocks, num_kv_blocks]",
               {ScalarType::Float});
  check_int32(block_size, op, "block_size", 1);
  check_int32(num_keys, op, "num_keys", 1);
  check_int32(window_tokens, op, "window_tokens", 1);
  check_int32(exclude_sink_tokens, op, "exclude_sink_tokens", 0);
  check_int32(attend_sink_tokens, op, "attend_sink_tokens", 0);
  check_int32(dense_last_q_blocks, op, "dense_last_q_blocks", 0);
  SW_CHECK_ARG(num_queries >= 1 && num_queries <= num_keys, op, "num_queries",
               "must lie in [1, num_keys=", num_keys, "], got ", num_queries);
  check_size(scores, op, "scores", 1, (num_queries + block_size - 1) / block_size,
             "num_q_blocks = ceil(num_queries / block_size)");
  check_size(scores, op, "scores", 2, (num_keys + block_size - 1) / block_size,
             "num_kv_blocks = ceil(num_keys / block_size)");
  SW_CHECK_ARG(keep_frac >= 0.0 && keep_frac <= 1.0, op, "keep_frac", "must lie in [0, 1], got ",
               keep_frac);
  SW_CHECK_ARG(window_tokens >= 1, op, "window_tokens", "must be >= 1, got ", window_tokens);
  SW_CHECK_ARG(exclude_sink_tokens >= 0, op, "exclude_sink_tokens", "must be >= 0, got ",
               exclude_sink_tokens);
  SW_CHECK_ARG(attend_sink_tokens >= 0, op, "attend_sink_tokens", "must be >= 0, got ",
               attend_sink_tokens);
  SW_CHECK_ARG(dense_last_q_blocks >= 0, op, "dense_last_q_blocks", "must be >= 0, got ",
               dense_last_q_blocks);
  check_dense_rows(dense_rows, dense_rows_in_budget, scores, op);
}

template <typename T>
void check_select_blocks_varlen_args(const T& scores, const T& seq_args, int64_t block_size,
                                     double keep_frac, int64_t dense_last_q_blocks,
                                     bool validate, const std::optional<T>& dense_rows,
                                     bool dense_rows_in_budget) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "select_blocks_varlen";
  check_tensor(scores, op, "scores", 3, "[rows, num_q_blocks, num_kv_blocks] (padded)",
               {ScalarType::Float});
  check_tensor(seq_args, op, "seq_args", 2,
               "[rows, 5]: (num_queries, num_keys, window_tokens, exclude_sink_tokens, "
               "attend_sink_tokens) per row",
               {ScalarType::Int});
  check_same_device(seq_args, scores, op, "seq_args", "scores");
  SW_CHECK_ARG(seq_args.is_contiguous(), op, "seq_args", "must be contiguous");
  check_size(seq_args, op, "seq_args", 0, scores.size(0), "rows of 'scores'");
  check_size(seq_args, op, "seq_args", 1, kSelectSeqArgs, "5 columns");
  check_int32(block_size, op, "block_size", 1);
  check_int32(dense_last_q_blocks, op, "dense_last_q_blocks", 0);
  SW_CHECK_ARG(keep_frac >= 0.0 && keep_frac <= 1.0, op, "keep_frac", "must lie in [0, 1], got ",
               keep_frac);
  check_dense_rows(dense_rows, dense_rows_in_budget, scores, op);
  if (!read_values(tensor_world{}, validate, scores) || seq_args.size(0) == 0) return;
  const std::vector<int32_t> a = host_int32(tensor_world{}, seq_args);  // row-major [rows, 5]
  for (int64_t r = 0; r < seq_args.size(0); ++r) {
    const int32_t* row = a.data() + r * kSelectSeqArgs;
    const int64_t tq = row[0], tk = row[1];
    SW_CHECK_ARG(tq >= 1 && tq <= tk, op, "seq_args", "row ", r, " has num_queries ", tq,
                 " and num_keys ", tk, "; need 1 <= num_queries <= num_keys");
    SW_CHECK_ARG((tq + block_size - 1) / block_size <= scores.size(1) &&
                     (tk + block_size - 1) / block_size <= scores.size(2),
                 op, "seq_args", "row ", r, " has ", tq, " queries over ", tk,
                 " keys, more blocks than 'scores' has (", scores.size(1), " x ", scores.size(2),
                 ")");
    SW_CHECK_ARG(row[2] >= 1 && row[3] >= 0 && row[4] >= 0, op, "seq_args", "row ", r,
                 " must have window_tokens >= 1 and sink tokens >= 0, got ", row[2], ", ", row[3],
                 ", ", row[4]);
  }
}

}  // namespace sketchwalk
