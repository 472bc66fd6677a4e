// score_blocks_sampled_rows, CUDA host wrapper (ATen): checks and CUDA limits
// (csrc/checks/score_blocks_sampled_rows.h), params (csrc/cuda/score_blocks_sampled_rows_launch.h),
// launch (csrc/cuda/score_blocks_sampled_rows.cu). Reads no device memory on the host: safe to
// capture in a CUDA graph.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/score_blocks_sampled_rows.h"
#include "cuda/host.h"
#include "cuda/score_blocks_sampled_rows_launch.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor score_blocks_sampled_rows_cuda(const at::Tensor& q, const at::Tensor& k, int64_t rows,
                                          std::optional<double> softmax_scale) {
  constexpr const char* op = "score_blocks_sampled_rows";
  check_cuda(q, op, "q");
  const SampledRowsShape s = check_score_blocks_sampled_rows_args(q, k, rows, softmax_scale);
  check_score_blocks_sampled_rows_cuda_limits(q, s, rows, softmax_scale);
  const c10::cuda::CUDAGuard guard(q.device());
  auto scores = at::empty({s.batch, s.num_kv_heads, s.num_q_blocks, s.num_k_blocks},
                          q.options().dtype(at::kFloat));
  if (scores.numel() == 0) return scores;
  // A view with unaligned rows is copied (the kernel reads 16-byte chunks).
  const at::Tensor qc = sampled_rows_aligned(q) ? q : q.clone(at::MemoryFormat::Contiguous);
  const at::Tensor kc = sampled_rows_aligned(k) ? k : k.clone(at::MemoryFormat::Contiguous);
  const SampledRowsParams p = sampled_rows_params(qc, kc, scores, rows, s, softmax_scale);
  check_launch(run_score_sampled_rows(p, to_dtype(q.scalar_type()), c10::cuda::getCurrentCUDAStream()),
               op);
  return scores;
}

}  // namespace sketchwalk
