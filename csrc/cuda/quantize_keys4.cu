// quantize_keys4_, CUDA: one warp per (batch, kv head, token) encodes one key row into the
// 4-bit key cache (layout and rule in include/sketchwalk/keys4.h). Each lane takes pairs of
// dims (one code byte each): the row's amax by a warp reduction, then its codes. Kernel-only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/keys4.h"
#include "sketchwalk/params.h"

namespace sketchwalk {
namespace {

constexpr int kWarpsPerCta = 8;

template <typename Element>
SW_DEVICE float to_float(Element x) { return static_cast<float>(x); }
template <>
SW_DEVICE float to_float<__half>(__half x) { return __half2float(x); }
template <>
SW_DEVICE float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename Element>
__global__ void __launch_bounds__(32 * kWarpsPerCta) quantize_keys4_kernel(const QuantizeKeys4Params p) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + (threadIdx.x >> 5);
  const int64_t rows = static_cast<int64_t>(p.batch) * p.num_kv_heads * p.tokens;
  if (row >= rows) return;  // warp-uniform
  const int t = static_cast<int>(row % p.tokens);
  const int kv_head = static_cast<int>((row / p.tokens) % p.num_kv_heads);
  const int batch_idx = static_cast<int>(row / (static_cast<int64_t>(p.tokens) * p.num_kv_heads));
  const int end = p.seq_lens != nullptr ? p.seq_lens[batch_idx] : p.tokens;
  const int pos = end - p.tokens + t;
  // The host checks seq_lens when it may (validate); a bad length never writes out of range.
  if (pos < 0 || pos >= p.capacity) return;
  const Element* k = static_cast<const Element*>(p.k) + batch_idx * p.k_batch_stride +
                     kv_head * p.k_head_stride + t * p.k_token_stride;
  constexpr int kMaxPairsPerLane = kKeys4MaxHeadDim / 64;
  const int pairs = p.head_dim / 2;
  float x[kMaxPairsPerLane][2];
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < kMaxPairsPerLane; ++i) {
    const int pair = lane + 32 * i;
    x[i][0] = x[i][1] = 0.f;
    if (pair < pairs) {
      x[i][0] = to_float(k[2 * pair]);
      x[i][1] = to_float(k[2 * pair + 1]);
      amax = fmaxf(amax, fmaxf(fabsf(x[i][0]), fabsf(x[i][1])));
    }
  }
#pragma unroll
  for (int off = 16; off >= 1; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float s = keys4_scale(amax);
  const Keys4Slot at = keys4_slot(p.page_table, p.page_table_stride, batch_idx, pos);
  uint8_t* codes = p.codes + at.outer * p.codes_batch_stride + kv_head * p.codes_head_stride +
                   at.slot * p.codes_token_stride;
#pragma unroll
  for (int i = 0; i < kMaxPairsPerLane; ++i) {
    const int pair = lane + 32 * i;
    if (pair < pairs)
      codes[pair] = static_cast<uint8_t>(keys4_nibble(x[i][0], s) | (keys4_nibble(x[i][1], s) << 4));
  }
  if (lane == 0) p.scales[at.outer * p.scales_batch_stride + kv_head * p.scales_head_stride + at.slot] = s;
}

}  // namespace

cudaError_t run_quantize_keys4(const QuantizeKeys4Params& params, DType dtype, cudaStream_t stream) {
  if (params.head_dim < 2 || params.head_dim > kKeys4MaxHeadDim || params.head_dim % 2 != 0)
    return cudaErrorInvalidValue;
  const int64_t rows = static_cast<int64_t>(params.batch) * params.num_kv_heads * params.tokens;
  if (rows == 0) return cudaSuccess;
  const int64_t grid = ceil_div<int64_t>(rows, kWarpsPerCta);
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const dim3 block(32 * kWarpsPerCta);
  switch (dtype) {
    case DType::kFloat16:
      quantize_keys4_kernel<__half><<<static_cast<unsigned>(grid), block, 0, stream>>>(params);
      break;
    case DType::kBFloat16:
      quantize_keys4_kernel<__nv_bfloat16><<<static_cast<unsigned>(grid), block, 0, stream>>>(params);
      break;
    default:
      quantize_keys4_kernel<float><<<static_cast<unsigned>(grid), block, 0, stream>>>(params);
  }
  return cudaGetLastError();
}

}  // namespace sketchwalk
