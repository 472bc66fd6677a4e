// Argument checks shared by the CPU and CUDA host wrappers. Every failure raises a
// RuntimeError (TORCH_CHECK) whose message names the op, the argument and what was
// expected, e.g. "sketchwalk.sparse_prefill: argument 'k' must have 4 dims
// [batch, num_kv_heads, num_keys, head_dim], got 3".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <string>

namespace sketchwalk {

#define SW_CHECK_ARG(cond, op, arg, ...) \
  TORCH_CHECK((cond), "sketchwalk.", op, ": argument '", arg, "' ", __VA_ARGS__)

void check_rank(const at::Tensor& t, const char* op, const char* arg, int64_t rank,
                const char* dims);
void check_dtype(const at::Tensor& t, const char* op, const char* arg,
                 std::initializer_list<at::ScalarType> allowed);
void check_last_dim_contiguous(const at::Tensor& t, const char* op, const char* arg);
void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op,
                       const char* arg, const char* ref_arg);
void check_size(const at::Tensor& t, const char* op, const char* arg, int64_t dim,
                int64_t expected, const char* what);

// Everything the attention ops check before touching memory: ranks, dtypes, devices,
// strides, GQA divisibility, head_dim and block-index shapes. Returns nothing; throws.
struct AttentionShape {
  int64_t batch, num_q_heads, num_kv_heads, num_queries, num_keys, head_dim;
  int64_t block_size, num_q_blocks, index_heads, max_selected;
};
AttentionShape check_attention_args(const char* op, const at::Tensor& q, const at::Tensor& k,
                                    const at::Tensor& v, const at::Tensor& block_index,
                                    const at::Tensor& num_selected, int64_t block_size);

// Validates the block index contents (docs/ops.md): 0 <= num_selected <= max_selected,
// and each row's first num_selected entries strictly increasing within
// [0, causal_limit(row)]. Uses tensor ops, so it runs on any device (one sync on CUDA).
void validate_block_index(const char* op, const at::Tensor& block_index,
                          const at::Tensor& num_selected, const AttentionShape& shape);

}  // namespace sketchwalk
