// query_spread_rows, CUDA host wrapper (ATen): checks and the CUDA row limit
// (csrc/checks/query_spread_rows.h), launch (csrc/cuda/query_spread_rows_launch.h).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/query_spread_rows.h"
#include "cuda/host.h"
#include "cuda/query_spread_rows_launch.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor query_spread_rows_cuda(const at::Tensor& q, int64_t block_size, double frac,
                                  int64_t dense_last_q_blocks,
                                  const std::optional<at::Tensor>& cu_seqlens, int64_t max_blocks,
                                  const std::optional<at::Tensor>& seq_q_blocks, bool validate) {
  check_cuda(q, "query_spread_rows", "q");
  const QuerySpreadShape s = check_query_spread_rows_args(
      q, block_size, frac, dense_last_q_blocks, cu_seqlens, max_blocks, seq_q_blocks, validate);
  check_query_spread_rows_cuda_rows(s);
  const c10::cuda::CUDAGuard guard(q.device());
  auto dense_rows = at::empty({s.rows, s.width}, q.options().dtype(at::kBool));
  auto spread = at::empty({s.rows, s.width}, q.options().dtype(at::kFloat));
  launch_query_spread_rows(q, block_size, frac, dense_last_q_blocks, cu_seqlens, seq_q_blocks, s,
                           spread, dense_rows, c10::cuda::getCurrentCUDAStream());
  return dense_rows;
}

}  // namespace sketchwalk
