// The CPU quantize_keys4_ kernel on raw pointers (docs/spec.md section 7, docs/ops.md section 9),
// shared by the ATen op (csrc/cpu/quantize_keys4.cpp) and the stable-ABI one
// (csrc/stable/quantize_keys4.cpp): writes 4-bit key rows by the rule of
// include/sketchwalk/keys4.h, with the same float32 operations as the CUDA kernel
// (csrc/cuda/quantize_keys4.cu), so the codes agree bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "checks/keys4_cache.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

template <typename scalar_t>
struct QuantizeKeys4CpuArgs {
  const scalar_t* k;  // [batch, num_kv_heads, tokens, head_dim], last dim contiguous
  int64_t k_batch_stride, k_head_stride, k_token_stride, tokens;
  uint8_t* codes;  // the dense or paged cache (Keys4CacheShape), strides below
  int64_t codes_outer_stride, codes_head_stride, codes_token_stride;
  float* scales;
  int64_t scales_outer_stride, scales_head_stride;
  const int* seq_lens;    // [batch] or nullptr (the tokens land at [0, tokens))
  const int* page_table;  // [batch, max_pages] or nullptr (a dense cache)
  int64_t page_table_stride;
};

// The kernel's arguments from the op's tensors (at::Tensor or torch::stable::Tensor); seq_lens
// contiguous or nullptr, page_table or nullptr with its row stride.
template <typename scalar_t, typename T>
QuantizeKeys4CpuArgs<scalar_t> quantize_keys4_cpu_args(const T& codes, const T& scales, const T& k,
                                                       const int* seq_lens, const int* page_table,
                                                       int64_t page_table_stride) {
  QuantizeKeys4CpuArgs<scalar_t> a{};
  a.k = k.template const_data_ptr<scalar_t>();
  a.k_batch_stride = k.stride(0), a.k_head_stride = k.stride(1), a.k_token_stride = k.stride(2);
  a.tokens = k.size(2);
  a.codes = codes.template mutable_data_ptr<uint8_t>();
  a.codes_outer_stride = codes.stride(0), a.codes_head_stride = codes.stride(1);
  a.codes_token_stride = codes.stride(2);
  a.scales = scales.template mutable_data_ptr<float>();
  a.scales_outer_stride = scales.stride(0), a.scales_head_stride = scales.stride(1);
  a.seq_lens = seq_lens;
  a.page_table = page_table;
  a.page_table_stride = page_table_stride;
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename scalar_t, typename ParallelFor>
void quantize_keys4_cpu_rows(const QuantizeKeys4CpuArgs<scalar_t>& a, const Keys4CacheShape& s,
                             ParallelFor&& parallel_for) {
  const int64_t pairs = s.head_dim / 2;
  parallel_for(int64_t{0}, s.batch * s.num_kv_heads, int64_t{1}, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.num_kv_heads, g = bg % s.num_kv_heads;
      const int64_t first = (a.seq_lens != nullptr ? a.seq_lens[b] : a.tokens) - a.tokens;
      for (int64_t t = 0; t < a.tokens; ++t) {
        const scalar_t* x =
            a.k + b * a.k_batch_stride + g * a.k_head_stride + t * a.k_token_stride;
        float amax = 0.f;
        for (int64_t d = 0; d < s.head_dim; ++d) {
          amax = std::fmax(amax, std::fabs(static_cast<float>(x[d])));
        }
        const float scale = keys4_scale(amax);
        const Keys4Slot at = keys4_slot(a.page_table, a.page_table_stride, static_cast<int>(b),
                                        static_cast<int>(first + t));
        uint8_t* row = a.codes + at.outer * a.codes_outer_stride + g * a.codes_head_stride +
                       at.slot * a.codes_token_stride;
        for (int64_t i = 0; i < pairs; ++i) {
          row[i] = static_cast<uint8_t>(
              keys4_nibble(static_cast<float>(x[2 * i]), scale) |
              (keys4_nibble(static_cast<float>(x[2 * i + 1]), scale) << 4));
        }
        a.scales[at.outer * a.scales_outer_stride + g * a.scales_head_stride + at.slot] = scale;
      }
    }
  });
}

}  // namespace sketchwalk
