// Warp-level tensor-core and async-copy primitives of sm_80+ (Ampere and Hopper both run
// them): cp.async (16-byte, zero-filling), ldmatrix (.x4, plain and .trans), mma.sync
// m16n8k16 with fp32 accumulators for fp16 and bf16 (fp32 -> 16-bit packing and exp2 come from
// fragment_math.cuh).
// Used by sparse_prefill_sm80.cuh and sparse_decode_mma.cuh. Raw PTX, no CuTe; nothing here reads threadIdx.
//
// Fragment layouts of mma.m16n8k16.row.col (g = lane / 4, c = lane % 4):
//   A 16x16 : a0 (row g, cols 2c..2c+1)  a1 (row g+8, cols 2c..)  a2 (row g, cols 2c+8..)  a3 (row g+8, cols 2c+8..)
//   B 16x8  : b0 (k rows 2c..2c+1, col g) b1 (k rows 2c+8.., col g)
//   C 16x8  : c0,c1 (row g, cols 2c, 2c+1)  c2,c3 (row g+8, cols 2c, 2c+1)
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "sketchwalk/common.h"
#include "sketchwalk/fragment_math.cuh"

namespace sketchwalk::sm80 {

SW_DEVICE uint32_t smem_u32(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

/// \brief 16-byte global -> shared async copy; writes 16 zero bytes when `valid` is false
/// (src must still be a mapped address: callers pass the tensor's base row).
SW_DEVICE void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes)
               : "memory");
}

SW_DEVICE void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

/// \brief Wait until at most `kPending` committed cp.async groups are still in flight.
template <int kPending>
SW_DEVICE void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

/// \brief Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, and
/// register i of every lane receives (row lane/4, cols 2(lane%4)..+1) of matrix i.
SW_DEVICE void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/// \brief As ldmatrix_x4, transposed: register i receives (rows 2(lane%4)..+1, col lane/4).
SW_DEVICE void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

/// \brief d += a * b for one m16n8k16 tile, fp32 accumulate.
template <typename Element>
SW_DEVICE void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
SW_DEVICE void mma_m16n8k16<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
SW_DEVICE void mma_m16n8k16<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                           uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// pack2 and exp2_approx live in fragment_math.cuh (the sm90 kernel uses them without the rest).
using sketchwalk::exp2_approx;
using sketchwalk::pack2;

}  // namespace sketchwalk::sm80
