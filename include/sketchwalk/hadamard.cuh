// Walsh-Hadamard butterflies (unnormalized, entries +-1) on values held in registers, plus
// the 16-byte load/convert helpers the block-mean sketch (hadamard_sketch op) uses.
// The transform is separable over the bits of the element index, so any assignment of
// index bits to (register, lane) works: register bits get in-thread butterflies, lane bits
// get warp shuffles. Torch-free; this file does no pooling and no coordinate gather.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "sketchwalk/common.h"

namespace sketchwalk {
namespace thread {

/// \brief x <- H_kN x for kN values in one thread's registers (index bits = register bits).
template <int kN>
SW_DEVICE void hadamard_transform(float (&x)[kN]) {
  static_assert((kN & (kN - 1)) == 0, "kN must be a power of two");
#pragma unroll
  for (int s = 1; s < kN; s <<= 1) {
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      if ((i & s) == 0) {
        const float a = x[i];
        const float b = x[i + s];
        x[i] = a + b;
        x[i + s] = a - b;
      }
    }
  }
}

/// \brief Converts kVec consecutive elements of type T at `src` to float (one 16-byte load
/// when kVec * sizeof(T) == 16, scalar loads otherwise).
template <typename T, int kVec>
SW_DEVICE void load_as_float(const T* src, float (&dst)[kVec]);

template <>
SW_DEVICE void load_as_float<float, 1>(const float* src, float (&dst)[1]) {
  dst[0] = __ldg(src);
}
template <>
SW_DEVICE void load_as_float<__half, 1>(const __half* src, float (&dst)[1]) {
  dst[0] = __half2float(__ldg(src));
}
template <>
SW_DEVICE void load_as_float<__nv_bfloat16, 1>(const __nv_bfloat16* src, float (&dst)[1]) {
  dst[0] = __bfloat162float(__ldg(src));
}

// Raw 16-byte vector; converted after all loads of an unrolled batch are issued.
SW_DEVICE uint4 load_16B(const void* src) { return __ldg(reinterpret_cast<const uint4*>(src)); }

template <typename T>
SW_DEVICE void convert_16B(const uint4& v, float (&dst)[16 / sizeof(T)]);

template <>
SW_DEVICE void convert_16B<float>(const uint4& v, float (&dst)[4]) {
  dst[0] = __uint_as_float(v.x);
  dst[1] = __uint_as_float(v.y);
  dst[2] = __uint_as_float(v.z);
  dst[3] = __uint_as_float(v.w);
}
template <>
SW_DEVICE void convert_16B<__half>(const uint4& v, float (&dst)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h;
    memcpy(&h, &w[i], 4);
    const float2 f = __half22float2(h);
    dst[2 * i] = f.x;
    dst[2 * i + 1] = f.y;
  }
}
template <>
SW_DEVICE void convert_16B<__nv_bfloat16>(const uint4& v, float (&dst)[8]) {
  // bf16 -> fp32 is a 16-bit shift: low half of each word is the even element.
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    dst[2 * i] = __uint_as_float(w[i] << 16);
    dst[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

}  // namespace thread

namespace warp {

/// \brief Butterflies over the lane-index bits [0, log2(kLanes)) for each of kN register
/// values: lane l holds element bit pattern (lane bits = l). Combined with
/// thread::hadamard_transform on the register bits this is the full transform.
template <int kLanes, int kN>
SW_DEVICE void hadamard_transform_lanes(float (&x)[kN], int lane) {
  static_assert(kLanes >= 1 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0, "bad kLanes");
#pragma unroll
  for (int s = 1; s < kLanes; s <<= 1) {
    const bool upper = (lane & s) != 0;
#pragma unroll
    for (int i = 0; i < kN; ++i) {
      const float partner = __shfl_xor_sync(0xffffffffu, x[i], s);
      x[i] = upper ? partner - x[i] : x[i] + partner;
    }
  }
}

}  // namespace warp
}  // namespace sketchwalk
