// select_decode_blocks_ on PyTorch's stable ABI, CUDA: the fused steps of
// csrc/cuda/select_decode_blocks_launch.h (shared with the ATen wrapper) under the stable device
// guard, on the current stream (csrc/stable/cuda.h).
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>
#include <tuple>

#include "stable/common.h"
#include "stable/cuda.h"
#include "cuda/select_decode_blocks_launch.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

std::tuple<Tensor, Tensor> select_decode_blocks_cuda(
    Tensor q, Tensor k, Tensor key_blocks, Tensor query_window, Tensor window_logits,
    Tensor transition, Tensor signs, Tensor coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  const DecodeSelectionShape d = check_select_decode_blocks_cuda_args(
      q, k, key_blocks, query_window, window_logits, transition, signs, coords, window_fill,
      pushes, block_size, degree, damping, logit_scale, keep_frac, window_tokens,
      exclude_sink_tokens, attend_sink_tokens);
  const torch::stable::accelerator::DeviceGuard guard(q.get_device_index());
  return launch_select_decode_blocks(q, k, key_blocks, query_window, window_logits, transition,
                                     signs, coords, window_fill, block_size, degree, damping,
                                     logit_scale, keep_frac, window_tokens, exclude_sink_tokens,
                                     attend_sink_tokens, d, current_cuda_stream(q));
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("select_decode_blocks_", TORCH_BOX(&sketchwalk::stable::select_decode_blocks_cuda));
}
