// select_decode_blocks_, CUDA host wrapper (ATen): the fused steps of
// csrc/cuda/select_decode_blocks_launch.h under the device guard, on the current stream.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/select_decode_blocks_launch.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> select_decode_blocks_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  const DecodeSelectionShape d = check_select_decode_blocks_cuda_args(
      q, k, key_blocks, query_window, window_logits, transition, signs, coords, window_fill,
      pushes, block_size, degree, damping, logit_scale, keep_frac, window_tokens,
      exclude_sink_tokens, attend_sink_tokens);
  const c10::cuda::CUDAGuard guard(q.device());
  return launch_select_decode_blocks(q, k, key_blocks, query_window, window_logits, transition,
                                     signs, coords, window_fill, block_size, degree, damping,
                                     logit_scale, keep_frac, window_tokens, exclude_sink_tokens,
                                     attend_sink_tokens, d, c10::cuda::getCurrentCUDAStream());
}

}  // namespace sketchwalk
