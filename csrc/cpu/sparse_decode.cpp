// sparse_decode on the CPU (docs/ops.md section 6): the op's checks, then the block-sparse
// attention of csrc/cpu/sparse_attention.h over the first seq_lens[b] keys of each sequence.
// The index and the lengths are always validated here (validate=false only skips the device
// sync on CUDA).
#include <ATen/ATen.h>

#include "checks.h"
#include "cpu/sparse_attention.h"
#include "ops.h"

namespace sketchwalk {

std::tuple<at::Tensor, at::Tensor> sparse_decode_cpu(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens) {
  // Always validated on the CPU (no device sync to save).
  (void)validate;
  const AttentionShape s =
      check_sparse_decode_args(q, k_cache, v_cache, block_index, num_selected, softmax_scale);
  check_sparse_decode_index(q, block_index, num_selected, s, seq_lens, true);
  return cpu::sparse_attention(q, k_cache, v_cache, block_index, num_selected, s, softmax_scale,
                               seq_lens);
}

}  // namespace sketchwalk
