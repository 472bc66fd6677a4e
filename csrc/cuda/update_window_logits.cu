// update_window_logits_ op, CUDA: the incremental form of a decode step's block scores r
// (docs/spec.md section 6 step 1). Per step only the new query's row and the open key block's
// column of logits[b, h, s, j] = c * <query_window[b, h, s], key_blocks[b, h/g, j]> change,
// so a step costs O(Hq * (Nb + W) * m) flops instead of the O(Hq * W * Nb * m) of
// recomputing every logit (window_block_scores.cu then reads the cached logits once).
//
//   update_window_logits_kernel: one warp computes 32 dot products of one fixed vector x
//     (lanes hold x's coordinates lane, lane + 32, ...) with 32 rows of y (coalesced row
//     reads), then a butterfly reduce-scatter (31 shuffles) leaves dot t on lane t. Row tasks:
//     x = a query sketch, y = 32 key blocks; column tasks: x = the open key block, y = 32
//     window slots.
// Kernel-only: no ATen.
#include <cuda_runtime.h>

#include <cstdint>

#include "launch.h"
#include "sketchwalk/common.h"
#include "sketchwalk/params.h"

namespace sketchwalk {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kLogitWarps = 4;       // warps (tasks) per CTA of the update kernel

// One butterfly step of the reduce-scatter below (compile-time indices keep v in registers).
template <int kWidth>
__device__ __forceinline__ void reduce_scatter_step(float (&v)[32], int lane) {
  const bool upper = (lane & kWidth) != 0;
#pragma unroll
  for (int i = 0; i < kWidth; ++i) {
    const float send = upper ? v[i] : v[i + kWidth];
    const float keep = upper ? v[i + kWidth] : v[i];
    v[i] = keep + __shfl_xor_sync(kFullMask, send, kWidth);
  }
}

// kVec consecutive floats at p (one 16-byte load for kVec == 4).
template <int kVec>
__device__ __forceinline__ void load_floats(const float* __restrict__ p, float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
    v[0] = *p;
  }
}

// Dot products of x[0, m) with rows y[t * y_stride + (0, m)], t < y_count <= 32; returns the
// one for t == lane (0 for t >= y_count). Lane l holds coordinates (l + 32 i) * kVec + e,
// i < kChunks, e < kVec: kVec == 4 needs m % 4 == 0 and 16-byte aligned rows.
template <int kChunks, int kVec>
__device__ __forceinline__ float warp_dot32(const float* __restrict__ x,
                                            const float* __restrict__ y, int64_t y_stride,
                                            int y_count, int m, int lane) {
  float xs[kChunks][kVec];
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int k = (lane + 32 * i) * kVec;
    if (k < m) {
      load_floats<kVec>(x + k, xs[i]);
    } else {
#pragma unroll
      for (int e = 0; e < kVec; ++e) xs[i][e] = 0.f;
    }
  }
  float v[32];
#pragma unroll
  for (int t = 0; t < 32; ++t) {
    float acc = 0.f;
    if (t < y_count) {
      const float* row = y + t * y_stride;
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        const int k = (lane + 32 * i) * kVec;
        if (k < m) {
          float ys[kVec];
          load_floats<kVec>(row + k, ys);
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc = fmaf(xs[i][e], ys[e], acc);
        }
      }
    }
    v[t] = acc;
  }
  // Reduce-scatter: at width w a lane keeps the half of its values whose index has bit w
  // equal to its own lane bit and adds its partner's copy of that half. After w = 16..1,
  // v[0] holds index (lane bits) = lane, summed over all 32 lanes.
  reduce_scatter_step<16>(v, lane);
  reduce_scatter_step<8>(v, lane);
  reduce_scatter_step<4>(v, lane);
  reduce_scatter_step<2>(v, lane);
  reduce_scatter_step<1>(v, lane);
  return v[0];
}

template <int kChunks, int kVec>
__global__ void __launch_bounds__(kLogitWarps * 32)
    update_window_logits_kernel(const WindowLogitsParams p, int64_t row_tasks,
                                int64_t total_tasks) {
  const int lane = threadIdx.x & 31;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kLogitWarps + (threadIdx.x >> 5);
  if (task >= total_tasks) return;  // warp-uniform
  const int group = p.num_q_heads / p.num_kv_heads;
  if (task < row_tasks) {
    // (batch, head, row, 32-block chunk), chunk fastest.
    const int chunks = ceil_div(p.num_blocks, 32);
    const int rows = p.row_end - p.row_begin;
    const int chunk = static_cast<int>(task % chunks);
    int64_t rest = task / chunks;
    const int s = p.row_begin + static_cast<int>(rest % rows);
    rest /= rows;
    const int h = static_cast<int>(rest % p.num_q_heads);
    const int b = static_cast<int>(rest / p.num_q_heads);
    const int j0 = chunk * 32;
    const float dot = warp_dot32<kChunks, kVec>(
        p.query_window + b * p.q_batch_stride + h * p.q_head_stride + s * p.q_row_stride,
        p.key_blocks + b * p.k_batch_stride + (h / group) * p.k_head_stride + j0 * p.k_row_stride,
        p.k_row_stride, min(32, p.num_blocks - j0), p.sketch_dim, lane);
    if (j0 + lane < p.num_blocks)
      p.logits[b * p.l_batch_stride + h * p.l_head_stride + s * p.l_row_stride + j0 + lane] =
          dot * p.logit_scale;
    return;
  }
  // (batch, head, 32-slot chunk) of column num_blocks - 1.
  const int slot_chunks = ceil_div(p.window, 32);
  const int64_t t = task - row_tasks;
  const int chunk = static_cast<int>(t % slot_chunks);
  const int h = static_cast<int>((t / slot_chunks) % p.num_q_heads);
  const int b = static_cast<int>(t / slot_chunks / p.num_q_heads);
  const int s0 = chunk * 32;
  const int j = p.num_blocks - 1;
  const float dot = warp_dot32<kChunks, kVec>(
      p.key_blocks + b * p.k_batch_stride + (h / group) * p.k_head_stride + j * p.k_row_stride,
      p.query_window + b * p.q_batch_stride + h * p.q_head_stride + s0 * p.q_row_stride,
      p.q_row_stride, min(32, p.window - s0), p.sketch_dim, lane);
  if (s0 + lane < p.window)
    p.logits[b * p.l_batch_stride + h * p.l_head_stride + (s0 + lane) * p.l_row_stride + j] =
        dot * p.logit_scale;
}

template <int kChunks, int kVec>
cudaError_t launch_update(const WindowLogitsParams& p, cudaStream_t stream) {
  const int64_t rows = p.row_end - p.row_begin;
  const int64_t row_tasks =
      static_cast<int64_t>(p.batch) * p.num_q_heads * rows * ceil_div(p.num_blocks, 32);
  const int64_t column_tasks = p.refresh_last_column ? static_cast<int64_t>(p.batch) *
                                                           p.num_q_heads * ceil_div(p.window, 32)
                                                     : 0;
  const int64_t total = row_tasks + column_tasks;
  if (total == 0) return cudaSuccess;
  const int64_t grid = ceil_div<int64_t>(total, kLogitWarps);
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  update_window_logits_kernel<kChunks, kVec><<<static_cast<unsigned>(grid), kLogitWarps * 32, 0, stream>>>(
      p, row_tasks, total);
  return cudaGetLastError();
}

}  // namespace

cudaError_t run_update_window_logits(const WindowLogitsParams& params, cudaStream_t stream) {
  const WindowLogitsParams& p = params;
  if (p.batch == 0 || p.num_blocks == 0 || p.window == 0) return cudaSuccess;
  if (p.num_q_heads < 1 || p.num_kv_heads < 1 || p.num_q_heads % p.num_kv_heads != 0 ||
      p.sketch_dim < 1 || p.sketch_dim > kMaxSketchHeadDim || p.row_begin < 0 ||
      p.row_end > p.window || p.row_begin > p.row_end)
    return cudaErrorInvalidValue;
  // 16-byte loads when every row of both sketches starts 16-byte aligned.
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  const bool vec4 = p.sketch_dim % 4 == 0 && aligned(p.query_window) && aligned(p.key_blocks) &&
                    p.q_batch_stride % 4 == 0 && p.q_head_stride % 4 == 0 &&
                    p.q_row_stride % 4 == 0 && p.k_batch_stride % 4 == 0 &&
                    p.k_head_stride % 4 == 0 && p.k_row_stride % 4 == 0;
  if (vec4) return p.sketch_dim <= 128 ? launch_update<1, 4>(p, stream) : launch_update<2, 4>(p, stream);
  const int chunks = ceil_div(p.sketch_dim, 32);
  if (chunks == 1) return launch_update<1, 1>(p, stream);
  if (chunks == 2) return launch_update<2, 1>(p, stream);
  if (chunks <= 4) return launch_update<4, 1>(p, stream);
  return launch_update<8, 1>(p, stream);
}

}  // namespace sketchwalk
