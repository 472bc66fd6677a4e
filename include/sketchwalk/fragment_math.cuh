// Register-level helpers of the attention kernels' softmax (sm_80 and sm_90 alike): fp32 pairs
// packed into one 32-bit register of two 16-bit values (an mma / wgmma A-operand fragment), and
// 2^x on the MUFU unit. Raw PTX and intrinsics; nothing here reads threadIdx.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "sketchwalk/common.h"

namespace sketchwalk {

/// \brief Two floats -> one 32-bit register of two 16-bit values (lo = x), round to nearest.
template <typename Element>
SW_DEVICE uint32_t pack2(float x, float y);

template <>
SW_DEVICE uint32_t pack2<__half>(float x, float y) {
  __half2 h = __floats2half2_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&h);
}

template <>
SW_DEVICE uint32_t pack2<__nv_bfloat16>(float x, float y) {
  __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&h);
}

/// \brief 2^x with the MUFU unit (ex2.approx.ftz): exp2(-inf) = 0, the case masking relies on.
SW_DEVICE float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace sketchwalk
