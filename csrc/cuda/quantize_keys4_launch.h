// quantize_keys4_'s CUDA launch from checked tensors (check_quantize_keys4_args gave `s`): params
// filled from either tensor type, for the ATen wrapper (csrc/cuda/quantize_keys4.cpp) and the
// stable-ABI one (csrc/stable/quantize_keys4_cuda.cpp). The caller holds the device guard.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <optional>

#include "checks/keys4_cache.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

// seq_lens: the contiguous int32 lengths on the device, or nullptr.
template <typename T>
void launch_quantize_keys4(const T& codes, const T& scales, const T& k, const Keys4CacheShape& s,
                           const int* seq_lens, const std::optional<T>& page_table,
                           cudaStream_t stream) {
  QuantizeKeys4Params p{};
  p.k = k.const_data_ptr();
  p.codes = codes.template mutable_data_ptr<uint8_t>();
  p.scales = scales.template mutable_data_ptr<float>();
  p.seq_lens = seq_lens;
  copy_strides(k, p.k_batch_stride, p.k_head_stride, p.k_token_stride);
  copy_strides(codes, p.codes_batch_stride, p.codes_head_stride, p.codes_token_stride);
  copy_strides(scales, p.scales_batch_stride, p.scales_head_stride);
  p.batch = static_cast<int>(s.batch);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.tokens = static_cast<int>(k.size(2));
  p.head_dim = static_cast<int>(s.head_dim);
  p.capacity = static_cast<int>(s.capacity);
  if (page_table.has_value()) {
    p.page_table = page_table->template const_data_ptr<int>();
    p.page_table_stride = page_table->stride(0);
  }
  check_launch(run_quantize_keys4(p, to_dtype(k.scalar_type()), stream), "quantize_keys4_");
}

}  // namespace sketchwalk
