// quantize_keys4_ on the CPU (docs/spec.md section 7, docs/ops.md section 9): writes 4-bit key
// rows by the rule of include/sketchwalk/keys4.h, with the same float32 operations as the CUDA
// kernel (csrc/cuda/quantize_keys4.cu), so the codes agree bit for bit.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "checks.h"
#include "ops.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

namespace {

template <typename scalar_t>
void quantize_rows(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                   const int* seq_lens, const int* page_table, int64_t page_table_stride,
                   const Keys4CacheShape& s) {
  const int64_t tokens = k.size(2), pairs = s.head_dim / 2;
  const scalar_t* kp = k.data_ptr<scalar_t>();
  uint8_t* cp = codes.data_ptr<uint8_t>();
  float* sp = scales.data_ptr<float>();
  at::parallel_for(0, s.batch * s.num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.num_kv_heads, g = bg % s.num_kv_heads;
      const int64_t first = (seq_lens != nullptr ? seq_lens[b] : tokens) - tokens;
      for (int64_t t = 0; t < tokens; ++t) {
        const scalar_t* x = kp + b * k.stride(0) + g * k.stride(1) + t * k.stride(2);
        float amax = 0.f;
        for (int64_t d = 0; d < s.head_dim; ++d) amax = std::fmax(amax, std::fabs(static_cast<float>(x[d])));
        const float scale = keys4_scale(amax);
        const Keys4Slot at = keys4_slot(page_table, page_table_stride, static_cast<int>(b),
                                        static_cast<int>(first + t));
        uint8_t* row = cp + at.outer * codes.stride(0) + g * codes.stride(1) + at.slot * codes.stride(2);
        for (int64_t i = 0; i < pairs; ++i) {
          row[i] = static_cast<uint8_t>(keys4_nibble(static_cast<float>(x[2 * i]), scale) |
                                        (keys4_nibble(static_cast<float>(x[2 * i + 1]), scale) << 4));
        }
        sp[at.outer * scales.stride(0) + g * scales.stride(1) + at.slot] = scale;
      }
    }
  });
}

}  // namespace

void quantize_keys4_cpu(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                        const std::optional<at::Tensor>& seq_lens, bool validate,
                        const std::optional<at::Tensor>& page_table) {
  // Always validated on the CPU: reading the lengths costs no device sync.
  const Keys4CacheShape s = check_quantize_keys4_args(codes, scales, k, seq_lens, true, page_table);
  (void)validate;
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* sl_p = sl.defined() ? sl.data_ptr<int>() : nullptr;
  const int* pt_p = page_table.has_value() ? page_table->data_ptr<int>() : nullptr;
  const int64_t pt_stride = page_table.has_value() ? page_table->stride(0) : 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "quantize_keys4_", [&] {
    quantize_rows<scalar_t>(codes, scales, k, sl_p, pt_p, pt_stride, s);
  });
}

}  // namespace sketchwalk
