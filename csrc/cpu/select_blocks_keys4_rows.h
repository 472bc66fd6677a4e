// The CPU select_blocks_keys4 kernel on raw pointers (docs/spec.md section 7, docs/ops.md
// section 9), shared by the ATen op (csrc/cpu/select_blocks_keys4.cpp) and the stable-ABI one
// (csrc/stable/select_blocks_keys4.cpp): per row (batch, kv group) the sink and window blocks
// plus the candidates above the quantile threshold of csrc/cpu/quantile.h, ascending.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu/quantile.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

struct SelectBlocksKeys4CpuArgs {
  const float* mass;   // [batch, heads, width], contiguous
  const int* seq_lens;  // [batch] or nullptr (every sequence 64 * width keys)
  int* block_index;     // [batch, heads, 1, width], filled with kBlockIndexPad by the caller
  int* num_selected;    // [batch, heads, 1]
  int64_t batch, heads, width;
  double keep_frac, window_frac, sink_frac;
};

// The kernel's arguments from the op's tensors (at::Tensor or torch::stable::Tensor); seq_lens
// contiguous or nullptr.
template <typename T>
SelectBlocksKeys4CpuArgs select_blocks_keys4_cpu_args(const T& mass, const int* seq_lens,
                                                      const T& block_index,
                                                      const T& num_selected, double keep_frac,
                                                      double window_frac, double sink_frac) {
  SelectBlocksKeys4CpuArgs a{};
  a.mass = mass.template const_data_ptr<float>();
  a.seq_lens = seq_lens;
  a.block_index = block_index.template mutable_data_ptr<int>();
  a.num_selected = num_selected.template mutable_data_ptr<int>();
  a.batch = mass.size(0), a.heads = mass.size(1), a.width = mass.size(2);
  a.keep_frac = keep_frac, a.window_frac = window_frac, a.sink_frac = sink_frac;
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename ParallelFor>
void select_blocks_keys4_cpu_rows(const SelectBlocksKeys4CpuArgs& a, ParallelFor&& parallel_for) {
  constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h
  const double q = 1.0 - a.keep_frac;
  parallel_for(int64_t{0}, a.batch * a.heads, int64_t{16}, [&](int64_t begin, int64_t end) {
    std::vector<double> cand;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / a.heads;
      const int len =
          a.seq_lens != nullptr ? a.seq_lens[b] : static_cast<int>(a.width * kBlockSize);
      const Keys4Budget budget = keys4_budget(len, kBlockSize, a.window_frac, a.sink_frac);
      const int64_t n = std::min<int64_t>(budget.num_blocks, a.width);
      const int64_t lo = budget.sink_blocks, hi = n - budget.window_blocks;  // candidates [lo, hi)
      const float* m = a.mass + row * a.width;
      cand.clear();
      for (int64_t j = lo; j < hi; ++j) cand.push_back(static_cast<double>(m[j]));
      const double th = cpu::candidate_threshold(cand, q);  // NaN: the rule keeps nothing
      int count = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (j < lo || j >= hi || static_cast<double>(m[j]) > th) {
          a.block_index[row * a.width + count++] = static_cast<int>(j);
        }
      }
      a.num_selected[row] = count;
    }
  });
}

}  // namespace sketchwalk
