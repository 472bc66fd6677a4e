// Small shared definitions for host and device code: qualifiers, integer helpers and
// named constants. Torch-free: this header is included by CPU kernels,
// CUDA kernels and the nvbench harness alike.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SW_HOST_DEVICE __host__ __device__ __forceinline__
#define SW_DEVICE __device__ __forceinline__
#else
#define SW_HOST_DEVICE inline
#define SW_DEVICE inline
#endif

namespace sketchwalk {

constexpr float kLog2e = 1.4426950408889634f;  // log2(e): exp(x) == exp2(x * kLog2e)
constexpr int kMaxSketchHeadDim = 256;         // largest head_dim the sketch accepts (n <= 256)
// head_dim values the attention kernels are built for (sparse_prefill, sparse_decode, and the
// keys4 scorer on CUDA): the host checks and launch guards use these; the kernels' templates
// (kernel_traits.h, keys4_score.cuh, sparse_prefill_sm90.cuh, score_blocks_keys4.cu) still
// spell 64 and 128 in their static_asserts and dispatch.
constexpr int kAttentionHeadDimSmall = 64;
constexpr int kAttentionHeadDimLarge = 128;
// The most blocks a launch's grid takes in y and z (CUDA's limit): batch rows, sequences and
// head slices of the kernels that put them there.
constexpr int kMaxGridYZ = 65535;

SW_HOST_DEVICE constexpr bool is_attention_head_dim(int64_t head_dim) {
  return head_dim == kAttentionHeadDimSmall || head_dim == kAttentionHeadDimLarge;
}

template <typename T>
SW_HOST_DEVICE constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Smallest power of two >= x, for x >= 1.
SW_HOST_DEVICE constexpr int next_pow2(int x) {
  int n = 1;
  while (n < x) n <<= 1;
  return n;
}

}  // namespace sketchwalk
