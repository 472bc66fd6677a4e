// The CUDA launches of sparse_prefill, sparse_decode and sparse_prefill_varlen from checked
// tensors of either type (csrc/params_fill.h fills the params), so that the ATen wrappers
// (csrc/cuda/sparse_*.cpp) and the stable-ABI ones (csrc/stable/sparse_*_cuda.cpp) launch the
// same way: fp16 / bf16 on the tensor-core kernels (csrc/cuda/sparse_prefill*.cu,
// sparse_decode.cu), float32 on the exact scalar kernel (csrc/cuda/sparse_attention_fp32.cu).
// The caller holds the device guard and passes the current stream.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "checks/attention.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"
#include "params_fill.h"
#include "sketchwalk/common.h"
#include "sketchwalk/params.h"

namespace sketchwalk {

// The tensor-core kernels copy 16-byte chunks of rows: fp16 / bf16 q, k, v must start 16-byte
// aligned with every stride but the last a multiple of 16 bytes. Runs between the two steps of
// the op's checks, after the shapes are known and before the block index is read.
template <typename T>
void check_rows_aligned(const char* op, const T& q, const T& k, const T& v,
                        const char* k_arg = "k", const char* v_arg = "v") {
  using ScalarType = detail::attention_scalar_type<T>;
  if (q.scalar_type() == ScalarType::Float) return;  // the scalar kernel reads any row
  using Arg = std::pair<const T*, const char*>;
  for (const auto& [t, name] : {Arg{&q, "q"}, Arg{&k, k_arg}, Arg{&v, v_arg}}) {
    const int64_t elems = 16 / static_cast<int64_t>(t->element_size());
    bool ok = reinterpret_cast<uintptr_t>(t->const_data_ptr()) % 16 == 0;
    for (int64_t d = 0; d + 1 < t->dim(); ++d) ok = ok && t->stride(d) % elems == 0;
    SW_CHECK_ARG(ok, op, name, "must start 16-byte aligned with strides (but the last) that are "
                 "multiples of 16 bytes on CUDA, got strides ", t->strides());
  }
}

// Every attention kernel puts the sequences in its grid's z dimension and the query heads (or
// groups of them) in y: at most kMaxGridYZ each. Named here, before the launch would fail.
inline void check_attention_grid(const char* op, const AttentionShape& s) {
  SW_CHECK_ARG(s.batch <= kMaxGridYZ, op, "q", "must hold at most ", kMaxGridYZ,
               " sequences on CUDA (the grid's z dimension), got ", s.batch);
  SW_CHECK_ARG(s.num_q_heads <= kMaxGridYZ, op, "q", "must have at most ", kMaxGridYZ,
               " heads on CUDA (the grid's y dimension), got ", s.num_q_heads);
}

// The attention kernel for q's dtype on filled params.
template <typename ScalarType>
cudaError_t run_sparse_attention(const SparseAttentionParams& p, ScalarType dtype,
                                 cudaStream_t stream) {
  return dtype == ScalarType::Float ? run_sparse_attention_fp32(p, stream)
                                    : run_sparse_prefill(p, to_dtype(dtype), stream);
}

// sparse_decode's launch: float32 on the scalar kernel, else the split-KV decode kernel with its
// workspace (empty_of hook: csrc/cuda/host.h, csrc/stable/cuda.h).
template <typename T>
void launch_sparse_decode(const SparseAttentionParams& p, const T& q, cudaStream_t stream) {
  using ScalarType = detail::attention_scalar_type<T>;
  constexpr const char* op = "sparse_decode";
  if (q.scalar_type() == ScalarType::Float) {
    check_launch(run_sparse_attention_fp32(p, stream), op);
    return;
  }
  const size_t ws_floats = sparse_decode_workspace_floats(p);
  const int64_t ws_shape[] = {static_cast<int64_t>(std::max<size_t>(ws_floats, 1))};
  const T workspace = empty_of(tensor_world{}, q, ws_shape, ScalarType::Float);
  check_launch(run_sparse_decode(p, to_dtype(q.scalar_type()),
                                 workspace.template mutable_data_ptr<float>(), stream),
               op);
}

}  // namespace sketchwalk
