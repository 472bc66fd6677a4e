// quantize_keys4_, CUDA host wrapper: checks (csrc/checks/quantize_keys4.h), params, launch
// (csrc/cuda/quantize_keys4.cu). With validate=false, or while a CUDA graph is captured, the
// lengths in seq_lens are trusted (no device sync); every shape, dtype and device check still runs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/quantize_keys4.h"
#include "cuda/host.h"
#include "cuda/launch.h"
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
  at::Tensor lens;
  QuantizeKeys4Params p{};
  p.k = k.data_ptr();
  p.codes = codes.data_ptr<uint8_t>();
  p.scales = scales.data_ptr<float>();
  p.seq_lens = seq_lens_ptr(seq_lens, lens);
  copy_strides(k, p.k_batch_stride, p.k_head_stride, p.k_token_stride);
  copy_strides(codes, p.codes_batch_stride, p.codes_head_stride, p.codes_token_stride);
  copy_strides(scales, p.scales_batch_stride, p.scales_head_stride);
  p.batch = static_cast<int>(s.batch);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.tokens = static_cast<int>(k.size(2));
  p.head_dim = static_cast<int>(s.head_dim);
  p.capacity = static_cast<int>(s.capacity);
  if (page_table.has_value()) {
    p.page_table = page_table->data_ptr<int>();
    p.page_table_stride = page_table->stride(0);
  }
  check_launch(run_quantize_keys4(p, to_dtype(k.scalar_type()), c10::cuda::getCurrentCUDAStream()), op);
}

}  // namespace sketchwalk
