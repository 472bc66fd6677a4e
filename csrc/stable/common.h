// What the stable-ABI ops (csrc/stable/, compiled with TORCH_TARGET_VERSION where the ATen
// headers refuse) share: the message pieces for the stable tensor's devices and sizes, so that
// the shared checks of csrc/tensor_checks.h (and each op's csrc/checks/<op>.h) format their
// messages as the ATen build does.
#pragma once

#include <torch/csrc/stable/device.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/HeaderOnlyArrayRef.h>

#include <cstdint>
#include <string>

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

#include "tensor_checks.h"  // after the pieces above (its templates find them at instantiation)
