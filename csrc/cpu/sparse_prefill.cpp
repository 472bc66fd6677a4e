// sparse_prefill on the CPU (docs/ops.md section 5): the op's checks, then the block-sparse
// attention of csrc/cpu/sparse_attention.h. The index is always validated here
// (validate=false only skips the device sync on CUDA).
#include <ATen/ATen.h>

#include "checks.h"
#include "cpu/sparse_attention.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_prefill_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, std::optional<double> softmax_scale, bool validate) {
  // Always validated on the CPU (no device sync to save).
  (void)validate;
  const AttentionShape s =
      check_sparse_prefill_args(q, k, v, block_index, num_selected, softmax_scale);
  check_sparse_prefill_index(q, block_index, num_selected, s, true);
  return cpu::sparse_attention(q, k, v, block_index, num_selected, s, softmax_scale, std::nullopt);
}

}  // namespace sketchwalk
