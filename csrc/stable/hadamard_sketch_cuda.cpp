// hadamard_sketch and hadamard_sketch_varlen on PyTorch's stable ABI, CUDA: the ATen wrappers'
// checks (csrc/checks/hadamard_sketch.h) and launches (csrc/cuda/hadamard_sketch_launch.h), with
// the device guard, allocation and stream from the stable C shim (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/hadamard_sketch.h"
#include "cuda/hadamard_sketch_launch.h"
#include "stable/common.h"
#include "stable/cuda.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor empty_sketch(const Tensor& x, const SketchShape& s) {
  const int64_t shape[] = {s.batch, s.heads, s.num_blocks, s.sketch_dim};
  return torch::stable::empty(shape, torch::headeronly::ScalarType::Float, std::nullopt,
                              x.device());
}

Tensor hadamard_sketch_cuda(Tensor x, Tensor signs, Tensor coords, int64_t block_size,
                            bool validate) {
  check_cuda(x, "hadamard_sketch", "x");
  const SketchShape s = check_hadamard_sketch_args(x, signs, coords, block_size, validate);
  const torch::stable::accelerator::DeviceGuard guard(x.get_device_index());
  Tensor out = empty_sketch(x, s);
  if (out.numel() == 0) return out;
  launch_hadamard_sketch(x, s, torch::stable::contiguous(signs), torch::stable::contiguous(coords),
                         out.mutable_data_ptr<float>(), out.stride(0), out.stride(1),
                         out.stride(2), 0, current_cuda_stream(x), "hadamard_sketch");
  return out;
}

Tensor hadamard_sketch_varlen_cuda(Tensor x, Tensor signs, Tensor coords, int64_t block_size,
                                   Tensor cu_seqlens, int64_t max_blocks, bool validate) {
  check_cuda(x, "hadamard_sketch_varlen", "x");
  const SketchShape s = check_hadamard_sketch_varlen_args(x, signs, coords, block_size,
                                                          cu_seqlens, max_blocks, validate);
  const torch::stable::accelerator::DeviceGuard guard(x.get_device_index());
  Tensor out = empty_sketch(x, s);
  if (out.numel() == 0) return out;
  launch_hadamard_sketch_varlen(x, s, torch::stable::contiguous(signs),
                                torch::stable::contiguous(coords),
                                cu_seqlens.const_data_ptr<int>(), out, current_cuda_stream(x));
  return out;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("hadamard_sketch", TORCH_BOX(&sketchwalk::stable::hadamard_sketch_cuda));
  m.impl("hadamard_sketch_varlen", TORCH_BOX(&sketchwalk::stable::hadamard_sketch_varlen_cuda));
}
