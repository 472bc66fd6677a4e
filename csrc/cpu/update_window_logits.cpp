// update_window_logits_ on the CPU (docs/ops.md section 7): the cached sketched logits of the
// recent queries against the key blocks, one row and one column per decode step (every row when
// slot == -1). Plain ATen on float32; the CUDA version (csrc/cuda/update_window_logits.cu) computes
// the same.
#include <ATen/ATen.h>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

namespace {

// c * <q[b, h, s], k[b, h / g, j]> for q [B, Hq, R, m], k [B, Hkv, N, m] -> [B, Hq, R, N].
at::Tensor grouped_logits(const at::Tensor& q, const at::Tensor& k, double logit_scale) {
  const int64_t batch = q.size(0), hq = q.size(1), rows = q.size(2), m = q.size(3);
  const int64_t hkv = k.size(1), group = hq / hkv;
  const auto qg = q.reshape({batch, hkv, group * rows, m});
  return at::matmul(qg, k.transpose(-1, -2)).mul_(logit_scale).view({batch, hq, rows, k.size(2)});
}

}  // namespace

void update_window_logits_cpu(const at::Tensor& window_logits, const at::Tensor& query_window,
                              const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                              double logit_scale) {
  check_update_window_logits_args(window_logits, query_window, key_blocks, num_blocks, slot,
                                  logit_scale);
  const auto blocks = key_blocks.narrow(2, 0, num_blocks);
  const int64_t window = window_logits.size(2);
  const int64_t row_begin = slot < 0 ? 0 : slot;
  const int64_t rows = slot < 0 ? window : 1;
  window_logits.narrow(2, row_begin, rows)
      .narrow(3, 0, num_blocks)
      .copy_(grouped_logits(query_window.narrow(2, row_begin, rows), blocks, logit_scale));
  if (slot >= 0) {  // the open block's column, every slot
    window_logits.narrow(3, num_blocks - 1, 1)
        .copy_(grouped_logits(query_window, blocks.narrow(2, num_blocks - 1, 1), logit_scale));
  }
}

}  // namespace sketchwalk
