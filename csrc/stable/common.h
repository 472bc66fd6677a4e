// What the stable-ABI ops (csrc/stable/, compiled with TORCH_TARGET_VERSION where the ATen
// headers refuse) share: the message pieces for the stable tensor's devices and sizes, so that
// the shared checks of csrc/tensor_checks.h (and each op's csrc/checks/<op>.h) format their
// messages as the ATen build does.
#pragma once

#include <torch/csrc/stable/device.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/HeaderOnlyArrayRef.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "message.h"

namespace sketchwalk::detail {

// "cpu", "cuda:0": as c10::Device::str() prints them.
inline std::string message_piece(piece_tag, const torch::stable::Device& d) {
  using torch::headeronly::DeviceType;
  std::string name;
  switch (d.type()) {
    case DeviceType::CPU: name = "cpu"; break;
    case DeviceType::CUDA: name = "cuda"; break;
    case DeviceType::Meta: name = "meta"; break;
    default: name = "device_type_" + std::to_string(static_cast<int>(d.type())); break;
  }
  return d.index() >= 0 ? name + ":" + std::to_string(d.index()) : name;
}

inline std::string message_piece(piece_tag, torch::headeronly::IntHeaderOnlyArrayRef a) {
  std::string out = "[";
  for (size_t i = 0; i < a.size(); ++i) out += (i ? ", " : "") + std::to_string(a[i]);
  return out + "]";
}

}  // namespace sketchwalk::detail

#include "tensor_checks.h"

namespace sketchwalk {

#if SKETCHWALK_WITH_CUDA
// csrc/stable/stream_capture_cuda.cpp: whether t's device's current stream is capturing a graph.
bool current_stream_is_capturing(const torch::stable::Tensor& t);
#endif

// The shared checks' hooks (csrc/tensor_checks.h) for torch::stable::Tensor. Values are read
// only with validate and not while a CUDA graph is captured (the read would sync). A build
// without CUDA registers no stable CUDA kernel, so a CUDA tensor here is a wiring error.
inline bool read_values(tensor_world, bool validate, const torch::stable::Tensor& t) {
  if (!validate || !t.is_cuda()) return validate;
#if SKETCHWALK_WITH_CUDA
  return !current_stream_is_capturing(t);
#else
  throw std::logic_error("sketchwalk: a stable-ABI op read CUDA tensor values in a CPU-only build");
#endif
}

inline torch::stable::Tensor host_contiguous(tensor_world, const torch::stable::Tensor& t) {
  const torch::stable::Device cpu(torch::headeronly::DeviceType::CPU);
  return torch::stable::contiguous(t.is_cpu() ? t : torch::stable::to(t, cpu));
}

// A contiguous copy on t's device, or t (params_fill.h's seq_lens_ptr, the launch templates).
inline torch::stable::Tensor contiguous_of(tensor_world, const torch::stable::Tensor& t) {
  return torch::stable::contiguous(t);
}

// t non-empty (the checks call it only then).
inline std::pair<int64_t, int64_t> int_range(tensor_world world, const torch::stable::Tensor& t) {
  const std::vector<int32_t> values = host_int32(world, t);
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  return {*lo, *hi};
}

}  // namespace sketchwalk
