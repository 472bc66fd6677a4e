// CPU update_block_matrix_ (ATen): checks (csrc/checks/update_block_matrix.h) and the kernel of
// csrc/cpu/update_block_matrix_rows.h. With SKETCHWALK_STABLE_ABI_OPS the stable-ABI version
// (csrc/stable/update_block_matrix.cpp) is registered instead (csrc/registration.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "checks.h"
#include "checks/update_block_matrix.h"
#include "cpu/update_block_matrix_rows.h"
#include "ops.h"

namespace sketchwalk {

void update_block_matrix_cpu(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                             int64_t block_size) {
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const auto r_c = r.contiguous();
  const auto a = update_block_matrix_cpu_args(transition, r_c, num_keys, block_size);
  update_block_matrix_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    at::parallel_for(begin, end, grain, fn);
  });
}

}  // namespace sketchwalk
