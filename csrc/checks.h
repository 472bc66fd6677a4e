// Argument checks shared by the CPU and CUDA host wrappers. Every failure raises a
// RuntimeError (TORCH_CHECK) whose message names the op, the argument and what was
// expected, e.g. "sketchwalk.sparse_prefill: argument 'k' must have 4 dims
// [batch, num_kv_heads, num_keys, head_dim], got 3".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <initializer_list>
#include <optional>
#include <string>

namespace sketchwalk {

// Error messages are assembled from strings here (integers through std::to_string), never
// through std::ostream inside this module: on the GPU machine (GCC 13, C++20, torch 2.11)
// the module's own instantiation of ostream << long crashed while formatting a message.
namespace detail {
inline std::string message_piece(const char* s) { return s; }
inline std::string message_piece(const std::string& s) { return s; }
inline std::string message_piece(bool v) { return v ? "true" : "false"; }
inline std::string message_piece(int v) { return std::to_string(v); }
inline std::string message_piece(long v) { return std::to_string(v); }
inline std::string message_piece(long long v) { return std::to_string(v); }
inline std::string message_piece(unsigned long v) { return std::to_string(v); }
inline std::string message_piece(double v) { return std::to_string(v); }
inline std::string message_piece(c10::ScalarType t) { return c10::toString(t); }
inline std::string message_piece(const c10::Device& d) { return d.str(); }
inline std::string message_piece(c10::IntArrayRef a) {
  std::string out = "[";
  for (size_t i = 0; i < a.size(); ++i) out += (i ? ", " : "") + std::to_string(a[i]);
  return out + "]";
}
template <typename... Args>
std::string message(const Args&... args) {
  std::string out;
  ((out += message_piece(args)), ...);
  return out;
}
}  // namespace detail

#define SW_CHECK_ARG(cond, op, arg, ...)                                                    \
  TORCH_CHECK((cond), ::sketchwalk::detail::message("sketchwalk.", op, ": argument '", arg, \
                                                    "' ", __VA_ARGS__))

void check_rank(const at::Tensor& t, const char* op, const char* arg, int64_t rank,
                const char* dims);
void check_dtype(const at::Tensor& t, const char* op, const char* arg,
                 std::initializer_list<at::ScalarType> allowed);
void check_last_dim_contiguous(const at::Tensor& t, const char* op, const char* arg);
void check_same_device(const at::Tensor& t, const at::Tensor& ref, const char* op,
                       const char* arg, const char* ref_arg);
void check_size(const at::Tensor& t, const char* op, const char* arg, int64_t dim,
                int64_t expected, const char* what);
// Largest walk degree walk_blocks and select_decode_blocks_ accept: each step is one batched
// GEMM and the damped walk converges geometrically (beta^degree), so a bound far above any
// useful value refuses what would run for hours.
constexpr int64_t kMaxWalkDegree = 1024;

// A float argument that must be finite (NaN and +-inf scales are refused, not propagated).
void check_finite(double value, const char* op, const char* arg);
// An optional softmax_scale: finite when given. The one default, 1 / sqrt(head_dim), for the
// attention and keys4 ops on every device.
void check_softmax_scale(std::optional<double> softmax_scale, const char* op);
double softmax_scale_or_default(std::optional<double> softmax_scale, int64_t head_dim);
// An integer argument the kernels index with int: lo <= value <= INT32_MAX.
void check_int32(int64_t value, const char* op, const char* arg, int64_t lo);

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
