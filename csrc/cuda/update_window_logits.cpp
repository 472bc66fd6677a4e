// update_window_logits_, CUDA host wrapper: checks (csrc/checks/update_window_logits.cpp),
// params, launch (csrc/cuda/update_window_logits.cu).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

void update_window_logits_cuda(const at::Tensor& window_logits, const at::Tensor& query_window,
                               const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                               double logit_scale) {
  constexpr const char* op = "update_window_logits_";
  check_cuda(window_logits, op, "window_logits");
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const c10::cuda::CUDAGuard guard(window_logits.device());
  WindowLogitsParams p{};
  p.logits = window_logits.data_ptr<float>();
  p.query_window = query_window.data_ptr<float>();
  p.key_blocks = key_blocks.data_ptr<float>();
  copy_strides(window_logits, p.l_batch_stride, p.l_head_stride, p.l_row_stride);
  copy_strides(query_window, p.q_batch_stride, p.q_head_stride, p.q_row_stride);
  copy_strides(key_blocks, p.k_batch_stride, p.k_head_stride, p.k_row_stride);
  p.batch = static_cast<int>(window_logits.size(0));
  p.num_q_heads = static_cast<int>(window_logits.size(1));
  p.num_kv_heads = static_cast<int>(key_blocks.size(1));
  p.window = static_cast<int>(window_logits.size(2));
  p.num_blocks = static_cast<int>(num_blocks);
  p.sketch_dim = static_cast<int>(query_window.size(3));
  p.row_begin = slot < 0 ? 0 : static_cast<int>(slot);
  p.row_end = slot < 0 ? p.window : p.row_begin + 1;
  p.refresh_last_column = slot >= 0;
  p.logit_scale = static_cast<float>(logit_scale);
  check_launch(run_update_window_logits(p, c10::cuda::getCurrentCUDAStream()), op);
}

}  // namespace sketchwalk
