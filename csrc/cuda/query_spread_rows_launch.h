// query_spread_rows' CUDA launch from checked tensors (check_query_spread_rows_args and the CUDA
// row limit), for either tensor type: the ATen wrapper (csrc/cuda/query_spread_rows.cpp) and the
// stable-ABI one (csrc/stable/query_spread_rows_cuda.cpp). The caller holds the device guard and
// allocated spread (float32 scratch) and dense_rows (bool), both contiguous [rows, width].
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <optional>

#include "checks/query_spread_rows.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

template <typename T>
void launch_query_spread_rows(const T& q, int64_t block_size, double frac,
                              int64_t dense_last_q_blocks, const std::optional<T>& cu_seqlens,
                              const std::optional<T>& seq_q_blocks, const QuerySpreadShape& s,
                              const T& spread, const T& dense_rows, cudaStream_t stream) {
  const QuerySpreadParams p =
      query_spread_params(q, block_size, frac, dense_last_q_blocks, cu_seqlens, seq_q_blocks,
                          s.rows, s.width, spread, dense_rows);
  check_launch(run_query_spread_rows(p, to_dtype(q.scalar_type()), stream), "query_spread_rows");
}

}  // namespace sketchwalk
