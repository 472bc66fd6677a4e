// quantize_keys4_ on the CPU (ATen): checks (csrc/checks/quantize_keys4.h) and the kernel of
// csrc/cpu/quantize_keys4_rows.h for k in float32, float16 or bfloat16. With
// SKETCHWALK_STABLE_ABI_OPS the stable-ABI version (csrc/stable/quantize_keys4.cpp) is
// registered instead (csrc/registration.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/quantize_keys4.h"
#include "cpu/quantize_keys4_rows.h"
#include "ops.h"

namespace sketchwalk {

void quantize_keys4_cpu(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                        const std::optional<at::Tensor>& seq_lens, bool validate,
                        const std::optional<at::Tensor>& page_table) {
  // Always validated on the CPU: reading the lengths costs no device sync.
  const Keys4CacheShape s = check_quantize_keys4_args(codes, scales, k, seq_lens, true, page_table);
  (void)validate;
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "quantize_keys4_", [&] {
    const auto a = quantize_keys4_cpu_args<scalar_t>(
        codes, scales, k, sl.defined() ? sl.data_ptr<int>() : nullptr,
        page_table.has_value() ? page_table->data_ptr<int>() : nullptr,
        page_table.has_value() ? page_table->stride(0) : 0);
    quantize_keys4_cpu_rows(a, s, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
      at::parallel_for(begin, end, grain, fn);
    });
  });
}

}  // namespace sketchwalk
