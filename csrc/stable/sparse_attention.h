// The stable-ABI side of the CPU attention kernel (csrc/cpu/sparse_attention_rows.h), shared by
// csrc/stable/sparse_prefill.cpp, sparse_decode.cpp and sparse_prefill_varlen.cpp: the dtype
// dispatch over the header-only Half / BFloat16, the stable parallel_for, and the float32 GEMM
// through the C shim's mm.out on views of the kernel's buffers (aoti_torch_cpu_mm_out: BLAS, as
// at::mm_out in the ATen counterpart csrc/cpu/sparse_attention.h).
#pragma once

#include <torch/csrc/inductor/aoti_torch/generated/c_shim_cpu.h>
#include <torch/csrc/stable/device.h>
#include <torch/csrc/stable/macros.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>

#include "cpu/sparse_attention_rows.h"
#include "sketchwalk/params.h"

namespace sketchwalk::stable {

// c [m, n] = a [m, k] @ (b_transposed ? b [n, k]^T : b [k, n]), row-major float32 buffers.
inline void stable_gemm(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k,
                        bool b_transposed) {
  using torch::headeronly::ScalarType;
  const torch::stable::Device cpu(torch::headeronly::DeviceType::CPU);
  const int64_t a_sizes[] = {m, k}, a_strides[] = {k, 1};
  const int64_t b_sizes[] = {k, n}, b_strides_t[] = {1, k}, b_strides[] = {n, 1};
  const int64_t c_sizes[] = {m, n}, c_strides[] = {n, 1};
  const torch::stable::Tensor a_view = torch::stable::from_blob(
      const_cast<float*>(a), a_sizes, a_strides, cpu, ScalarType::Float);
  const torch::stable::Tensor b_view =
      torch::stable::from_blob(const_cast<float*>(b), b_sizes,
                               b_transposed ? b_strides_t : b_strides, cpu, ScalarType::Float);
  const torch::stable::Tensor c_view =
      torch::stable::from_blob(c, c_sizes, c_strides, cpu, ScalarType::Float);
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_cpu_mm_out(c_view.get(), a_view.get(), b_view.get()));
}

// Runs the kernel on filled params (csrc/params_fill.h) of CPU tensors of dtype `dtype` (one of
// the three the checks allow).
inline void run_sparse_attention_cpu(const SparseAttentionParams& p,
                                     torch::headeronly::ScalarType dtype) {
  const auto parallel_for = [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
    torch::stable::parallel_for(begin, end, grain, fn);
  };
  using torch::headeronly::ScalarType;
  switch (dtype) {
    case ScalarType::Float: sparse_attention_cpu_rows<float>(p, parallel_for, stable_gemm); break;
    case ScalarType::Half:
      sparse_attention_cpu_rows<torch::headeronly::Half>(p, parallel_for, stable_gemm);
      break;
    case ScalarType::BFloat16:
      sparse_attention_cpu_rows<torch::headeronly::BFloat16>(p, parallel_for, stable_gemm);
      break;
    default: break;  // refused by the op's checks
  }
}

}  // namespace sketchwalk::stable
