// hadamard_sketch's CUDA launches from checked tensors (check_hadamard_sketch_args or
// check_hadamard_sketch_varlen_args gave `s`), for either tensor type: the ATen wrappers
// (csrc/cuda/hadamard_sketch.cpp, and the fused decode selection csrc/cuda/select_decode_blocks.cpp)
// and the stable-ABI ones (csrc/stable/hadamard_sketch_cuda.cpp). The caller holds the device
// guard; signs and coords are contiguous.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "checks/hadamard_sketch.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"

namespace sketchwalk {

// The sizes and the transform of `s`; the caller sets x, out and their strides.
template <typename T>
HadamardSketchParams hadamard_sketch_params(const SketchShape& s, const T& signs,
                                            const T& coords) {
  HadamardSketchParams p{};
  p.signs = signs.template const_data_ptr<float>();
  p.coords = coords.template const_data_ptr<int64_t>();
  p.batch = static_cast<int>(s.batch);
  p.heads = static_cast<int>(s.heads);
  p.tokens = static_cast<int>(s.tokens);
  p.head_dim = static_cast<int>(s.head_dim);
  p.block_size = static_cast<int>(s.block_size);
  p.num_blocks = static_cast<int>(s.num_blocks);
  p.sketch_pow2 = static_cast<int>(s.sketch_pow2);
  p.sketch_dim = static_cast<int>(s.sketch_dim);
  p.scale = 1.0f / std::sqrt(static_cast<float>(s.sketch_dim));
  return p;
}

// The sketch kernel on x [batch, heads, tokens, head_dim], writing row (b, h, block) to
// out + b * out_batch_stride + h * out_head_stride + block * out_block_stride; blend_count > 0
// folds it into a running mean (params.h).
template <typename T>
void launch_hadamard_sketch(const T& x, const SketchShape& s, const T& signs, const T& coords,
                            float* out, int64_t out_batch_stride, int64_t out_head_stride,
                            int64_t out_block_stride, int blend_count, cudaStream_t stream,
                            const char* op) {
  HadamardSketchParams p = hadamard_sketch_params(s, signs, coords);
  p.x = x.const_data_ptr();
  p.out = out;
  copy_strides(x, p.x_batch_stride, p.x_head_stride, p.x_token_stride);
  p.out_batch_stride = out_batch_stride;
  p.out_head_stride = out_head_stride;
  p.out_block_stride = out_block_stride;
  p.blend_count = blend_count;
  check_launch(run_hadamard_sketch(p, to_dtype(x.scalar_type()), stream), op);
}

// hadamard_sketch_varlen: x packed [total_tokens, heads, head_dim], every sequence's rows at
// offsets from cu_seqlens (int32 on the device); out contiguous [num_seqs, heads, max_blocks, m].
template <typename T>
void launch_hadamard_sketch_varlen(const T& x, const SketchShape& s, const T& signs,
                                   const T& coords, const int* cu_seqlens, const T& out,
                                   cudaStream_t stream) {
  HadamardSketchParams p = hadamard_sketch_params(s, signs, coords);
  p.x = x.const_data_ptr();
  p.x_batch_stride = 0;  // every sequence's rows are offsets from cu_seqlens
  p.x_head_stride = x.stride(1);
  p.x_token_stride = x.stride(0);
  p.out = out.template mutable_data_ptr<float>();
  p.out_batch_stride = out.stride(0);
  p.out_head_stride = out.stride(1);
  p.out_block_stride = out.stride(2);
  p.cu_seqlens = cu_seqlens;
  check_launch(run_hadamard_sketch(p, to_dtype(x.scalar_type()), stream),
               "hadamard_sketch_varlen");
}

}  // namespace sketchwalk
