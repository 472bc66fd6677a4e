// select_blocks_keys4 on the CPU (ATen): checks (csrc/checks/select_blocks_keys4.h), the
// outputs, and the kernel of csrc/cpu/select_blocks_keys4_rows.h. With SKETCHWALK_STABLE_ABI_OPS
// the stable-ABI version (csrc/stable/select_blocks_keys4.cpp) is registered instead.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/select_blocks_keys4.h"
#include "cpu/select_blocks_keys4_rows.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cpu(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate) {
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, true);
  (void)validate;
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  auto block_index =
      at::full({batch, heads, 1, width}, kBlockIndexPad, mass.options().dtype(at::kInt));
  auto num_selected = at::zeros({batch, heads, 1}, mass.options().dtype(at::kInt));
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const auto a = select_blocks_keys4_cpu_args(mass, sl.defined() ? sl.data_ptr<int>() : nullptr,
                                              block_index, num_selected, keep_frac, window_frac,
                                              sink_frac);
  select_blocks_keys4_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  });
  return {block_index, num_selected};
}

}  // namespace sketchwalk
