// update_block_matrix_ on PyTorch's stable ABI, CPU (docs/stable_abi.md, step 3): the ATen op's
// checks (csrc/checks/update_block_matrix.h) and kernel (csrc/cpu/update_block_matrix_rows.h),
// parallelized through the stable C shim. The CUDA version stays the ATen wrapper
// (csrc/cuda/update_block_matrix.cpp).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <cstdint>

#include "checks/update_block_matrix.h"
#include "cpu/update_block_matrix_rows.h"
#include "stable/common.h"

namespace sketchwalk::stable {
namespace {

using torch::stable::Tensor;

void update_block_matrix_cpu(Tensor transition, Tensor r, int64_t num_keys, int64_t block_size) {
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const Tensor r_c = torch::stable::contiguous(r);
  const auto a = update_block_matrix_cpu_args(transition, r_c, num_keys, block_size);
  update_block_matrix_cpu_rows(a, [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  });
}

}  // namespace
}  // namespace sketchwalk::stable

STABLE_TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("update_block_matrix_", TORCH_BOX(&sketchwalk::stable::update_block_matrix_cpu));
}
