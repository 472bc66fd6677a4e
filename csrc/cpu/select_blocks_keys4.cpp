// select_blocks_keys4 on the CPU (docs/spec.md section 7, docs/ops.md section 9): per row
// (batch, kv group) the sink and window blocks plus the candidates above the quantile
// threshold of csrc/cpu/quantile.h, ascending.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "ops.h"
#include "quantile.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

namespace {

constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h

}  // namespace

std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cpu(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate) {
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, true);
  (void)validate;
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  auto block_index = at::full({batch, heads, 1, width}, kBlockIndexPad, mass.options().dtype(at::kInt));
  auto num_selected = at::zeros({batch, heads, 1}, mass.options().dtype(at::kInt));
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* sl_p = sl.defined() ? sl.data_ptr<int>() : nullptr;
  const float* mp = mass.data_ptr<float>();
  int* bi = block_index.data_ptr<int>();
  int* ns = num_selected.data_ptr<int>();
  const double q = 1.0 - keep_frac;
  at::parallel_for(0, batch * heads, 16, [&](int64_t begin, int64_t end) {
    std::vector<double> cand;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / heads;
      const int len = sl_p != nullptr ? sl_p[b] : static_cast<int>(width * kBlockSize);
      const Keys4Budget budget = keys4_budget(len, kBlockSize, window_frac, sink_frac);
      const int64_t n = std::min<int64_t>(budget.num_blocks, width);
      const int64_t lo = budget.sink_blocks, hi = n - budget.window_blocks;  // candidates [lo, hi)
      const float* m = mp + row * width;
      cand.clear();
      for (int64_t j = lo; j < hi; ++j) cand.push_back(static_cast<double>(m[j]));
      const double th = cpu::candidate_threshold(cand, q);  // NaN: the rule keeps nothing
      int count = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (j < lo || j >= hi || static_cast<double>(m[j]) > th) bi[row * width + count++] = static_cast<int>(j);
      }
      ns[row] = count;
    }
  });
  return {block_index, num_selected};
}

}  // namespace sketchwalk
