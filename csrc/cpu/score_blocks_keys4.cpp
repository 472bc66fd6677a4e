// score_blocks_keys4 on the CPU (ATen): the checks of csrc/checks/score_blocks_keys4.h and the
// kernel of csrc/cpu/score_blocks_keys4_rows.h.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/score_blocks_keys4.h"
#include "cpu/score_blocks_keys4_rows.h"
#include "ops.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

at::Tensor score_blocks_keys4_cpu(const at::Tensor& q, const at::Tensor& codes,
                                  const at::Tensor& scales,
                                  const std::optional<at::Tensor>& seq_lens,
                                  std::optional<double> softmax_scale, bool validate,
                                  const std::optional<at::Tensor>& page_table) {
  (void)validate;  // always validated on the CPU: reading the lengths costs no device sync
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, true, page_table);
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  const int64_t width = (s.capacity + kIndexBlockSize - 1) / kIndexBlockSize;
  auto mass = at::zeros({s.batch, s.num_kv_heads, width}, q.options().dtype(at::kFloat));
  const auto lens = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "score_blocks_keys4", [&] {
    const auto a = score_blocks_keys4_cpu_args<scalar_t>(
        q, codes, scales, mass, lens.defined() ? lens.const_data_ptr<int>() : nullptr,
        page_table.has_value() ? page_table->const_data_ptr<int>() : nullptr,
        page_table.has_value() ? page_table->stride(0) : 0, scale);
    score_blocks_keys4_cpu_rows(a, s, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
      at::parallel_for(begin, end, grain, fn);
    });
  });
  return mass;
}

}  // namespace sketchwalk
