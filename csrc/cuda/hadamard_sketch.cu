// hadamard_sketch op, CUDA: one fused pass per (batch, head, block) row, one warp each:
// mean-pool block_size tokens (16-byte loads when the layout allows), zero-pad to
// kN = max(32, next_pow2(head_dim)), sign flip, in-register + shuffle Walsh-Hadamard
// transform, gather `coords`, scale. Kernel-only: no ATen (the host wrapper fills params).
//
// Padding to kN >= n is exact: H_{2n} [x; 0] = [H_n x; H_n x], so the first n outputs of
// the larger transform are H_n x and every coordinate is < n.
//
// Packed sequences (hadamard_sketch_varlen, params.cu_seqlens): the same pass per (sequence,
// head, block) over the sequence's own rows; blocks past its end are written as zeros.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/hadamard.cuh"
#include "sketchwalk/params.h"

namespace sketchwalk {
namespace {

constexpr int kSketchWarps = 4;  // rows per CTA; 128 threads, <= 4 KiB smem

// Register layout of one warp's padded row of kN elements, read as kChunks chunks of kVec
// consecutive elements: element (r, chunk_lane, e) = (r * kChunkLanes + chunk_lane) * kVec + e.
// Lanes are (token_lane, chunk_lane) with chunk_lane in the low bits; token lanes split the
// block's tokens and are summed by shuffles at the end.
template <typename T, int kN, int kVec>
struct SketchLayout {
  static constexpr int kChunks = kN / kVec;
  static constexpr int kChunkLanes = kChunks < 32 ? kChunks : 32;
  static constexpr int kRegChunks = kChunks / kChunkLanes;  // chunks per lane (2 for fp32, kN 256)
  static constexpr int kTokenLanes = 32 / kChunkLanes;
  static constexpr int kRegs = kRegChunks * kVec;           // accumulators per lane
  // Loads in flight per lane per batch: 8 x 16 B = 128 B (4 KiB per warp) for the vector path.
  static constexpr int kUnroll = kVec == 1 ? 4 : (kRegChunks == 1 ? 8 : 4);
  static_assert(kChunks >= 1 && kN % kVec == 0, "bad layout");
};

template <typename T, int kN, int kVec>
__global__ void __launch_bounds__(kSketchWarps * 32)
    hadamard_sketch_kernel(const HadamardSketchParams p) {
  using L = SketchLayout<T, kN, kVec>;
  __shared__ float row_smem[kSketchWarps][kN];

  const int lane = threadIdx.x & 31;
  const int warp_idx = threadIdx.x >> 5;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kSketchWarps + warp_idx;
  const int64_t total_rows = static_cast<int64_t>(p.batch) * p.heads * p.num_blocks;
  if (row >= total_rows) return;  // warp-uniform; no CTA barrier below

  const int block_idx = static_cast<int>(row % p.num_blocks);
  const int64_t bh = row / p.num_blocks;
  const int head = static_cast<int>(bh % p.heads);
  const int batch_idx = static_cast<int>(bh / p.heads);

  // Packed sequences: batch row b's tokens are x's rows [cu_seqlens[b], cu_seqlens[b + 1]).
  const int seq_begin = p.cu_seqlens != nullptr ? __ldg(p.cu_seqlens + batch_idx) : 0;
  const int seq_tokens =
      p.cu_seqlens != nullptr ? __ldg(p.cu_seqlens + batch_idx + 1) - seq_begin : p.tokens;
  float* out = p.out + batch_idx * p.out_batch_stride + head * p.out_head_stride +
               block_idx * p.out_block_stride;
  const int t0 = block_idx * p.block_size;
  if (t0 >= seq_tokens) {  // a padded block of a shorter sequence (warp-uniform)
    for (int k = lane; k < p.sketch_dim; k += 32) out[k] = 0.f;
    return;
  }
  const int count = min(p.block_size, seq_tokens - t0);  // >= 1: partial last block
  const T* base = static_cast<const T*>(p.x) + batch_idx * p.x_batch_stride +
                  head * p.x_head_stride +
                  static_cast<int64_t>(seq_begin + t0) * p.x_token_stride;

  const int chunk_lane = lane % L::kChunkLanes;
  const int token_lane = lane / L::kChunkLanes;

  bool chunk_valid[L::kRegChunks];
#pragma unroll
  for (int r = 0; r < L::kRegChunks; ++r)
    chunk_valid[r] = (r * L::kChunkLanes + chunk_lane) * kVec < p.head_dim;

  float acc[L::kRegs];
#pragma unroll
  for (int i = 0; i < L::kRegs; ++i) acc[i] = 0.f;

  constexpr int kStep = L::kTokenLanes * L::kUnroll;
  for (int t = token_lane; t < count; t += kStep) {
    if constexpr (kVec * sizeof(T) == 16) {
      uint4 raw[L::kUnroll][L::kRegChunks];
#pragma unroll
      for (int u = 0; u < L::kUnroll; ++u) {
        const int tt = t + u * L::kTokenLanes;
#pragma unroll
        for (int r = 0; r < L::kRegChunks; ++r) {
          raw[u][r] = make_uint4(0u, 0u, 0u, 0u);
          if (tt < count && chunk_valid[r])
            raw[u][r] = thread::load_16B(base + tt * p.x_token_stride +
                                         (r * L::kChunkLanes + chunk_lane) * kVec);
        }
      }
#pragma unroll
      for (int u = 0; u < L::kUnroll; ++u) {
#pragma unroll
        for (int r = 0; r < L::kRegChunks; ++r) {
          float f[kVec];
          thread::convert_16B<T>(raw[u][r], f);
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[r * kVec + e] += f[e];
        }
      }
    } else {
#pragma unroll
      for (int u = 0; u < L::kUnroll; ++u) {
        const int tt = t + u * L::kTokenLanes;
#pragma unroll
        for (int r = 0; r < L::kRegChunks; ++r) {
          if (tt < count && chunk_valid[r]) {
            float f[1];
            thread::load_as_float<T, 1>(
                base + tt * p.x_token_stride + (r * L::kChunkLanes + chunk_lane), f);
            acc[r] += f[0];
          }
        }
      }
    }
  }

  // Sum the token lanes (lane bits above the chunk bits).
#pragma unroll
  for (int off = L::kChunkLanes; off < 32; off <<= 1) {
#pragma unroll
    for (int i = 0; i < L::kRegs; ++i) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], off);
  }

  // Mean, sign flip (padding beyond n has no sign and is zero already).
  const float inv_count = 1.f / static_cast<float>(count);
#pragma unroll
  for (int r = 0; r < L::kRegChunks; ++r) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      const int idx = (r * L::kChunkLanes + chunk_lane) * kVec + e;
      const float sign = idx < p.sketch_pow2 ? __ldg(p.signs + idx) : 0.f;
      acc[r * kVec + e] *= inv_count * sign;
    }
  }

  // Register bits (e and r) in-thread, chunk-lane bits by shuffles.
  thread::hadamard_transform<L::kRegs>(acc);
  warp::hadamard_transform_lanes<L::kChunkLanes, L::kRegs>(acc, lane);

  if (token_lane == 0) {
#pragma unroll
    for (int r = 0; r < L::kRegChunks; ++r) {
#pragma unroll
      for (int e = 0; e < kVec; ++e)
        row_smem[warp_idx][(r * L::kChunkLanes + chunk_lane) * kVec + e] = acc[r * kVec + e];
    }
  }
  __syncwarp();

  const float blend = static_cast<float>(p.blend_count);
  for (int k = lane; k < p.sketch_dim; k += 32) {
    const float value = row_smem[warp_idx][__ldg(p.coords + k)] * p.scale;
    // Unfused, as the ATen ops of update_block_sketch_ round: mul, add, div.
    out[k] = p.blend_count == 0
                 ? value
                 : __fdiv_rn(__fadd_rn(__fmul_rn(out[k], blend), value), blend + 1.f);
  }
}

template <typename T, int kN, int kVec>
cudaError_t launch_sketch(const HadamardSketchParams& p, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(p.batch) * p.heads * p.num_blocks;
  const int64_t grid = ceil_div<int64_t>(rows, kSketchWarps);
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  hadamard_sketch_kernel<T, kN, kVec>
      <<<static_cast<unsigned>(grid), kSketchWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t dispatch_sketch(const HadamardSketchParams& p, cudaStream_t stream) {
  constexpr int kVec16 = static_cast<int>(16 / sizeof(T));
  const int64_t elem = sizeof(T);
  // 16-byte path: every row start 16-byte aligned and head_dim a whole number of vectors.
  const bool vec_ok = (reinterpret_cast<uintptr_t>(p.x) % 16 == 0) &&
                      (p.head_dim % kVec16 == 0) && ((p.x_batch_stride * elem) % 16 == 0) &&
                      ((p.x_head_stride * elem) % 16 == 0) &&
                      ((p.x_token_stride * elem) % 16 == 0);
  const int n_pad = p.sketch_pow2 < 32 ? 32 : p.sketch_pow2;
#define SW_SKETCH_CASE(N)                                                       \
  case N:                                                                       \
    return vec_ok ? launch_sketch<T, N, kVec16>(p, stream)                      \
                  : launch_sketch<T, N, 1>(p, stream);
  switch (n_pad) {
    SW_SKETCH_CASE(32)
    SW_SKETCH_CASE(64)
    SW_SKETCH_CASE(128)
    SW_SKETCH_CASE(256)
    default:
      return cudaErrorInvalidValue;  // n > kMaxSketchHeadDim: the host wrapper rejects it
  }
#undef SW_SKETCH_CASE
}

}  // namespace

cudaError_t run_hadamard_sketch(const HadamardSketchParams& params, DType dtype,
                                cudaStream_t stream) {
  if (params.batch == 0 || params.heads == 0 || params.num_blocks == 0 || params.sketch_dim == 0)
    return cudaSuccess;
  if (params.sketch_pow2 > kMaxSketchHeadDim || params.block_size < 1)
    return cudaErrorInvalidValue;
  switch (dtype) {
    case DType::kFloat16:
      return dispatch_sketch<__half>(params, stream);
    case DType::kBFloat16:
      return dispatch_sketch<__nv_bfloat16>(params, stream);
    case DType::kFloat32:
      return dispatch_sketch<float>(params, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace sketchwalk
