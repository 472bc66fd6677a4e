// quantize_keys4_ on PyTorch's stable ABI, CUDA: the ATen wrapper's checks
// (csrc/checks/quantize_keys4.h) and launch (csrc/cuda/quantize_keys4_launch.h), with the device
// guard and stream from the stable C shim (csrc/stable/cuda.h). With validate=false, or while a
// CUDA graph is captured, the lengths in seq_lens are trusted (no device sync).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <optional>

#include "checks/quantize_keys4.h"
#include "cuda/quantize_keys4_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void quantize_keys4_cuda(Tensor codes, Tensor scales, Tensor k, std::optional<Tensor> seq_lens,
                         bool validate, std::optional<Tensor> page_table) {
  check_cuda(k, "quantize_keys4_", "k");
  const Keys4CacheShape s =
      check_quantize_keys4_args(codes, scales, k, seq_lens, validate, page_table);
  const torch::stable::accelerator::DeviceGuard guard(k.get_device_index());
  std::optional<Tensor> lens;
  launch_quantize_keys4(codes, scales, k, s, seq_lens_ptr(seq_lens, lens), page_table,
                        current_cuda_stream(k));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("quantize_keys4_", TORCH_BOX(&sketchwalk::stable::quantize_keys4_cuda));
}
