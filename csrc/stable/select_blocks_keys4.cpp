// select_blocks_keys4 on PyTorch's stable ABI, CPU (docs/stable_abi.md, step 3): the ATen op's
// checks (csrc/checks/select_blocks_keys4.h) and kernel (csrc/cpu/select_blocks_keys4_rows.h),
// its two outputs made with the stable full(). The CUDA version stays the ATen wrapper
// (csrc/cuda/select_blocks_keys4.cpp).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/select_blocks_keys4.h"
#include "cpu/select_blocks_keys4_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> select_blocks_keys4_cpu(Tensor mass, std::optional<Tensor> seq_lens,
                                                   double keep_frac, double window_frac,
                                                   double sink_frac, bool validate) {
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, true);
  (void)validate;
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  const auto int32 = torch::headeronly::ScalarType::Int;
  const int64_t index_shape[] = {batch, heads, 1, width};
  const int64_t count_shape[] = {batch, heads, 1};
  Tensor block_index =
      torch::stable::full(index_shape, kBlockIndexPad, int32, std::nullopt, mass.device());
  Tensor num_selected = torch::stable::full(count_shape, 0.0, int32, std::nullopt, mass.device());
  std::optional<Tensor> lens;
  if (seq_lens.has_value()) lens = torch::stable::contiguous(*seq_lens);
  const auto a = select_blocks_keys4_cpu_args(
      mass, lens.has_value() ? lens->const_data_ptr<int32_t>() : nullptr, block_index,
      num_selected, keep_frac, window_frac, sink_frac);
  select_blocks_keys4_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
  return {block_index, num_selected};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("select_blocks_keys4", TORCH_BOX(&sketchwalk::stable::select_blocks_keys4_cpu));
}
