// score_blocks on PyTorch's stable ABI, CPU (docs/stable_abi.md, step 2): the ATen op's checks
// (csrc/checks/score_blocks.h) and kernel (csrc/cpu/score_blocks_rows.h), allocated and
// parallelized through the stable C shim. The CUDA version stays the ATen wrapper
// (csrc/cuda/score_blocks.cpp) until the stable ops are proven on the GPU.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <optional>

#include "checks/score_blocks.h"
#include "cpu/score_blocks_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

Tensor score_blocks_cpu(Tensor q_sketch, Tensor k_sketch, double logit_scale,
                        std::optional<Tensor> num_kv_blocks, bool validate) {
  (void)validate;  // always validated on the CPU
  check_score_blocks_args(q_sketch, k_sketch, logit_scale, num_kv_blocks, true);
  const int64_t shape[] = {q_sketch.size(0), q_sketch.size(2), k_sketch.size(2)};
  Tensor out = torch::stable::empty(shape, torch::headeronly::ScalarType::Float, std::nullopt,
                                    q_sketch.device());
  if (out.numel() == 0) return out;
  std::optional<Tensor> counts;
  if (num_kv_blocks.has_value()) counts = torch::stable::contiguous(*num_kv_blocks);
  const auto a = score_blocks_cpu_args(
      q_sketch, k_sketch, out, counts.has_value() ? counts->const_data_ptr<int32_t>() : nullptr,
      logit_scale);
  score_blocks_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
  return out;
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("score_blocks", TORCH_BOX(&sketchwalk::stable::score_blocks_cpu));
}
