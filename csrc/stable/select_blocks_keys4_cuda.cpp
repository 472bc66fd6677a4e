// select_blocks_keys4 on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/select_blocks_keys4.h), grid limit and launch (csrc/cuda/select_blocks_keys4_launch.h),
// with the device guard, allocation and stream from the stable C shim (csrc/stable/cuda.h).
// With validate=false, or while a CUDA graph is captured, the lengths in seq_lens are trusted.
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "checks/select_blocks_keys4.h"
#include "cuda/select_blocks_keys4_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> select_blocks_keys4_cuda(Tensor mass, std::optional<Tensor> seq_lens,
                                                     double keep_frac, double window_frac,
                                                     double sink_frac, bool validate) {
  check_cuda(mass, "select_blocks_keys4", "mass");
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, validate);
  check_select_blocks_keys4_grid(mass);
  const torch::stable::accelerator::DeviceGuard guard(mass.get_device_index());
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  const int64_t index_shape[] = {batch, heads, 1, width};
  const int64_t count_shape[] = {batch, heads, 1};
  using torch::headeronly::ScalarType;
  Tensor block_index = torch::stable::empty(index_shape, ScalarType::Int, std::nullopt, mass.device());
  Tensor num_selected = torch::stable::empty(count_shape, ScalarType::Int, std::nullopt, mass.device());
  if (batch * heads == 0) return {block_index, num_selected};
  if (width == 0) {
    torch::stable::zero_(num_selected);
    return {block_index, num_selected};
  }
  std::optional<Tensor> lens;
  launch_select_blocks_keys4(mass, seq_lens_ptr(seq_lens, lens), block_index, num_selected,
                             keep_frac, window_frac, sink_frac, current_cuda_stream(mass));
  return {block_index, num_selected};
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("select_blocks_keys4", TORCH_BOX(&sketchwalk::stable::select_blocks_keys4_cuda));
}
