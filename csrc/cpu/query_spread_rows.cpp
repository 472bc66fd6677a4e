// query_spread_rows on the CPU (ATen): the checks of csrc/checks/query_spread_rows.h and the
// kernel of csrc/cpu/query_spread_rows_kernel.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/query_spread_rows.h"
#include "cpu/query_spread_rows_kernel.h"
#include "ops.h"
#include "params_fill.h"

namespace sketchwalk {

at::Tensor query_spread_rows_cpu(const at::Tensor& q, int64_t block_size, double frac,
                                 int64_t dense_last_q_blocks,
                                 const std::optional<at::Tensor>& cu_seqlens, int64_t max_blocks,
                                 const std::optional<at::Tensor>& seq_q_blocks, bool validate) {
  (void)validate;  // always validated on the CPU
  const QuerySpreadShape s = check_query_spread_rows_args(
      q, block_size, frac, dense_last_q_blocks, cu_seqlens, max_blocks, seq_q_blocks, true);
  auto dense_rows = at::zeros({s.rows, s.width}, q.options().dtype(at::kBool));
  if (s.rows * s.width == 0) return dense_rows;
  auto spread = at::empty({s.rows, s.width}, q.options().dtype(at::kFloat));
  const QuerySpreadParams p = query_spread_params(q, block_size, frac, dense_last_q_blocks,
                                                  cu_seqlens, seq_q_blocks, s.rows, s.width,
                                                  spread, dense_rows);
  const auto parallel = [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  };
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "query_spread_rows",
                                  [&] { compute_query_spread_rows<scalar_t>(p, parallel); });
  return dense_rows;
}

}  // namespace sketchwalk
