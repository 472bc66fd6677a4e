// quantize_keys4_, CUDA host wrapper (ATen): checks (csrc/checks/quantize_keys4.h), launch
// (csrc/cuda/quantize_keys4_launch.h). With validate=false, or while a CUDA graph is captured, the
// lengths in seq_lens are trusted (no device sync); every shape, dtype and device check still runs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/quantize_keys4.h"
#include "cuda/host.h"
#include "cuda/quantize_keys4_launch.h"
#include "ops.h"

namespace sketchwalk {

void quantize_keys4_cuda(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                         const std::optional<at::Tensor>& seq_lens, bool validate,
                         const std::optional<at::Tensor>& page_table) {
  constexpr const char* op = "quantize_keys4_";
  check_cuda(k, op, "k");
  const Keys4CacheShape s =
      check_quantize_keys4_args(codes, scales, k, seq_lens, validate, page_table);
  const c10::cuda::CUDAGuard guard(k.device());
  std::optional<at::Tensor> lens;
  launch_quantize_keys4(codes, scales, k, s, seq_lens_ptr(seq_lens, lens), page_table,
                        c10::cuda::getCurrentCUDAStream());
}

}  // namespace sketchwalk
