// The argument checks every op shares (rank, dtype, strides, device, size, finite scalar),
// written once for both tensor types the extension compiles against: at::Tensor (csrc/checks/)
// and torch::stable::Tensor (csrc/stable/, where the ATen headers refuse to compile). Each
// failure throws std::runtime_error (a Python RuntimeError) with csrc/checks.h's message
// format: "sketchwalk.<op>: argument '<arg>' <what>".
//
// Torch-free by construction: it uses only the members both tensor types have (dim, size,
// stride, sizes, strides, scalar_type, device) and finds the rest by argument-dependent lookup:
// toString(ScalarType) in the dtype's namespace, message_piece overloads for sizes and devices
// (csrc/checks.h for ATen, csrc/stable/common.h for the stable ABI) in sketchwalk::detail.
#pragma once

#include <climits>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "message.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

// What differs between the two tensor types, for the checks that read an argument's values:
// read_values(tensor_world{}, validate, t) (validate, and not while a CUDA graph is captured),
// int_range(tensor_world{}, t) ([min, max] of a non-empty int32 tensor's values, a device read),
// host_int32(tensor_world{}, t) (an int32 tensor's values in row-major order, a device read) and
// host_contiguous(tensor_world{}, t) (a contiguous CPU copy of t, or t; a device read).
// Overloaded per tensor type in csrc/checks.h (ATen) and csrc/stable/common.h; the tag makes
// the call find them when a check template is instantiated.
struct tensor_world {};

namespace detail {
// The ScalarType enum of a tensor type (at::ScalarType or torch::headeronly::ScalarType).
template <typename T>
using scalar_type_of = std::decay_t<decltype(std::declval<const T&>().scalar_type())>;
}  // namespace detail

template <typename... Parts>
[[noreturn]] void throw_arg_error(const char* op, const char* arg, const Parts&... what) {
  throw std::runtime_error(detail::message("sketchwalk.", op, ": argument '", arg, "' ", what...));
}

// An int32 tensor's values in row-major order (a device read), for either tensor type through
// its host_contiguous hook.
template <typename T>
std::vector<int32_t> host_int32(tensor_world world, const T& t) {
  const T host = host_contiguous(world, t);
  const int32_t* v = host.template const_data_ptr<int32_t>();
  return std::vector<int32_t>(v, v + host.numel());
}

// Throws (throw_arg_error) unless cond holds; the message pieces are evaluated only then.
#define SW_CHECK_ARG(cond, op, arg, ...)                                  \
  do {                                                                    \
    if (!(cond)) ::sketchwalk::throw_arg_error((op), (arg), __VA_ARGS__); \
  } while (0)

template <typename T>
void check_rank(const T& t, const char* op, const char* arg, int64_t rank, const char* dims) {
  if (t.dim() != rank) {
    throw_arg_error(op, arg, "must have ", rank, " dims ", dims, ", got ", t.dim(), " (shape ",
                    t.sizes(), ")");
  }
}

template <typename T, typename ScalarType>
void check_dtype(const T& t, const char* op, const char* arg,
                 std::initializer_list<ScalarType> allowed) {
  for (auto s : allowed) {
    if (t.scalar_type() == s) return;
  }
  std::string expected;
  for (auto s : allowed) expected += (expected.empty() ? "" : ", ") + std::string(toString(s));
  throw_arg_error(op, arg, "must have dtype in {", expected, "}, got ", toString(t.scalar_type()));
}

template <typename T>
void check_last_dim_contiguous(const T& t, const char* op, const char* arg) {
  if (!(t.dim() == 0 || t.size(t.dim() - 1) <= 1 || t.stride(t.dim() - 1) == 1)) {
    throw_arg_error(op, arg, "must have a contiguous last dimension (stride 1), got strides ",
                    t.strides());
  }
}

// check_rank, check_dtype and check_last_dim_contiguous of one tensor, in that order.
template <typename T, typename ScalarType>
void check_tensor(const T& t, const char* op, const char* arg, int64_t rank, const char* dims,
                  std::initializer_list<ScalarType> allowed) {
  check_rank(t, op, arg, rank, dims);
  check_dtype(t, op, arg, allowed);
  check_last_dim_contiguous(t, op, arg);
}

template <typename T>
void check_same_device(const T& t, const T& ref, const char* op, const char* arg,
                       const char* ref_arg) {
  if (!(t.device() == ref.device())) {
    throw_arg_error(op, arg, "must be on the same device as '", ref_arg, "' (", ref.device(),
                    "), got ", t.device());
  }
}

template <typename T>
void check_size(const T& t, const char* op, const char* arg, int64_t dim, int64_t expected,
                const char* what) {
  if (t.size(dim) != expected) {
    throw_arg_error(op, arg, "must have size ", expected, " at dim ", dim, " (", what,
                    "), got shape ", t.sizes());
  }
}

// An integer argument the kernels hold in an int32: lo <= value <= INT32_MAX.
inline void check_int32(int64_t value, const char* op, const char* arg, int64_t lo) {
  SW_CHECK_ARG(value >= lo && value <= INT32_MAX, op, arg, "must lie in [", lo, ", ", INT32_MAX,
               "], got ", value);
}

// An optional softmax scale: finite and > 0 when given.
inline void check_softmax_scale(std::optional<double> softmax_scale, const char* op) {
  if (softmax_scale.has_value()) {
    SW_CHECK_ARG(std::isfinite(*softmax_scale) && *softmax_scale > 0.0, op, "softmax_scale",
                 "must be finite and > 0, got ", *softmax_scale);
  }
}

// The attention default: 1 / sqrt(head_dim).
inline double softmax_scale_or_default(std::optional<double> softmax_scale, int64_t head_dim) {
  return softmax_scale.value_or(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

// What the tensor-core kernels take (the scorers on CUDA): 16-bit data of an attention head_dim.
template <typename T>
void check_tensor_core_input(const T& t, const char* op, const char* arg, int64_t head_dim) {
  SW_CHECK_ARG(t.scalar_type() != detail::scalar_type_of<T>::Float, op, arg,
               "must be float16 or bfloat16 on CUDA (the kernel runs on tensor cores), got float32");
  SW_CHECK_ARG(is_attention_head_dim(head_dim), op, arg, "has unsupported head_dim ", head_dim,
               " on CUDA; supported head_dim values are {", kAttentionHeadDimSmall, ", ",
               kAttentionHeadDimLarge, "}");
}

// A float argument that must be finite (NaN and +-inf scales are refused, not propagated).
inline void check_finite(double value, const char* op, const char* arg) {
  if (!std::isfinite(value)) throw_arg_error(op, arg, "must be finite, got ", value);
}

}  // namespace sketchwalk
