// select_blocks_keys4, CUDA host wrapper (ATen): checks (csrc/checks/select_blocks_keys4.h),
// grid limit and launch (csrc/cuda/select_blocks_keys4_launch.h). With validate=false, or while
// a CUDA graph is captured, the lengths in seq_lens are trusted (no device sync); every shape,
// dtype and device check still runs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/select_blocks_keys4.h"
#include "cuda/host.h"
#include "cuda/select_blocks_keys4_launch.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cuda(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate) {
  constexpr const char* op = "select_blocks_keys4";
  check_cuda(mass, op, "mass");
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, validate);
  check_select_blocks_keys4_grid(mass);
  const c10::cuda::CUDAGuard guard(mass.device());
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  auto block_index = at::empty({batch, heads, 1, width}, mass.options().dtype(at::kInt));
  auto num_selected = at::empty({batch, heads, 1}, mass.options().dtype(at::kInt));
  if (batch * heads == 0) return {block_index, num_selected};
  if (width == 0) {
    num_selected.zero_();
    return {block_index, num_selected};
  }
  std::optional<at::Tensor> lens;
  launch_select_blocks_keys4(mass, seq_lens_ptr(seq_lens, lens), block_index, num_selected,
                             keep_frac, window_frac, sink_frac, c10::cuda::getCurrentCUDAStream());
  return {block_index, num_selected};
}

}  // namespace sketchwalk
