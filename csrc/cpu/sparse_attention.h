// The ATen side of the CPU attention kernel (csrc/cpu/sparse_attention_rows.h), shared by the
// CPU sparse_prefill, sparse_decode and sparse_prefill_varlen (csrc/cpu/sparse_*.cpp): the dtype
// dispatch, at::parallel_for, and the float32 GEMM as at::mm_out on views of the kernel's
// buffers (BLAS). The stable-ABI counterpart is csrc/stable/sparse_attention.h.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cstdint>

#include "cpu/sparse_attention_rows.h"
#include "sketchwalk/params.h"

namespace sketchwalk::cpu {

// c [m, n] = a [m, k] @ (b_transposed ? b [n, k]^T : b [k, n]), row-major float32 buffers.
inline void aten_gemm(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k,
                      bool b_transposed) {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const auto a_view = at::from_blob(const_cast<float*>(a), {m, k}, opts);
  const auto b_view = b_transposed ? at::from_blob(const_cast<float*>(b), {k, n}, {1, k}, opts)
                                   : at::from_blob(const_cast<float*>(b), {k, n}, opts);
  auto c_view = at::from_blob(c, {m, n}, opts);
  at::mm_out(c_view, a_view, b_view);
}

// Runs the kernel on filled params (csrc/params_fill.h) of CPU tensors of dtype `dtype`.
inline void run_sparse_attention_cpu(const SparseAttentionParams& p, at::ScalarType dtype) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "sparse_attention_cpu", [&] {
    sparse_attention_cpu_rows<scalar_t>(
        p,
        [](int64_t begin, int64_t end, int64_t grain, const auto& fn) {
          at::parallel_for(begin, end, grain, fn);
        },
        aten_gemm);
  });
}

}  // namespace sketchwalk::cpu
