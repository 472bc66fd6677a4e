// score_blocks_keys4, CUDA host wrapper (ATen): checks and CUDA limits
// (csrc/checks/score_blocks_keys4.h), params (csrc/cuda/score_blocks_keys4_launch.h), launch
// (csrc/cuda/score_blocks_keys4.cu). With validate=false, or while a CUDA graph is captured, the
// lengths in seq_lens are trusted (no device sync); every shape, dtype, device and alignment
// check still runs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/score_blocks_keys4.h"
#include "cuda/host.h"
#include "cuda/score_blocks_keys4_launch.h"
#include "ops.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

at::Tensor score_blocks_keys4_cuda(const at::Tensor& q, const at::Tensor& codes,
                                   const at::Tensor& scales,
                                   const std::optional<at::Tensor>& seq_lens,
                                   std::optional<double> softmax_scale, bool validate,
                                   const std::optional<at::Tensor>& page_table) {
  constexpr const char* op = "score_blocks_keys4";
  check_cuda(q, op, "q");
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, validate, page_table);
  check_score_blocks_keys4_cuda_limits(q, codes, s);
  const c10::cuda::CUDAGuard guard(q.device());
  // A misaligned q view (rare; it is tiny) is copied.
  const at::Tensor qc = score_blocks_keys4_q_aligned(q) ? q : q.contiguous().clone();
  const int64_t width = (s.capacity + kIndexBlockSize - 1) / kIndexBlockSize;
  auto mass = at::empty({s.batch, s.num_kv_heads, width}, q.options().dtype(at::kFloat));
  if (mass.numel() == 0) return mass;
  std::optional<at::Tensor> lens;
  const ScoreKeys4Params p = score_blocks_keys4_params(
      qc, codes, scales, mass, seq_lens_ptr(seq_lens, lens), page_table, s, softmax_scale);
  auto workspace = at::empty({static_cast<int64_t>(score_keys4_workspace_floats(p))},
                             q.options().dtype(at::kFloat));
  check_launch(run_score_keys4(p, to_dtype(q.scalar_type()), workspace.data_ptr<float>(),
                               c10::cuda::getCurrentCUDAStream()),
               op);
  return mass;
}

}  // namespace sketchwalk
