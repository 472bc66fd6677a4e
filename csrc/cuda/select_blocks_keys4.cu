// select_blocks_keys4, CUDA: one 256-thread CTA per (batch, kv group) row. The row's live
// candidates [sink_blocks, n - window_blocks) are staged as ordered uint32 keys in shared
// memory (read from global memory in every pass when the row is too wide), the (1 - keep_frac)
// quantile is found by group::candidate_threshold (float64, torch.quantile's interpolation;
// tie and NaN rules in topk.cuh), and the kept ids are compacted in ascending order, padded
// with -1 to the row's width. Lengths come from seq_lens on the device and the output has a
// fixed width: no host synchronization, CUDA-graph capturable. Kernel-only.
#include <cuda_runtime.h>

#include "launch.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/keys4.h"
#include "sketchwalk/params.h"
#include "sketchwalk/topk.cuh"

namespace sketchwalk {
namespace {

constexpr int kRowWarps = 8;
constexpr size_t kMaxStagedSmemBytes = 48 * 1024;  // 12288 blocks (786K tokens) per row

template <bool kStaged>
__global__ void __launch_bounds__(kRowWarps * 32)
    select_blocks_keys4_kernel(const SelectKeys4Params p, double quantile_q) {
  extern __shared__ __align__(16) uint32_t cand_keys[];
  __shared__ uint32_t reduce_scratch[kRowWarps];
  using Group = group::RowGroup<kRowWarps>;
  const Group g{static_cast<int>(threadIdx.x), reduce_scratch};
  const int kv_head = blockIdx.x, batch_idx = blockIdx.y;
  const int64_t row = static_cast<int64_t>(batch_idx) * p.num_kv_heads + kv_head;
  const int seq_len = p.seq_lens != nullptr ? p.seq_lens[batch_idx] : p.width * kIndexBlockSize;
  const Keys4Budget budget = keys4_budget(seq_len, kIndexBlockSize, p.window_frac, p.sink_frac);
  const int n = budget.num_blocks < p.width ? budget.num_blocks : p.width;
  const int cand_lo = budget.sink_blocks;
  const int cand_hi = n - budget.window_blocks;  // candidates [cand_lo, cand_hi)
  const int num_cand = cand_hi > cand_lo ? cand_hi - cand_lo : 0;
  const float* mass = p.mass + row * p.width;

  double threshold;
  if constexpr (kStaged) {
    group::stage_row_keys(mass + cand_lo, num_cand, cand_keys, g);
    threshold = group::candidate_threshold(group::SharedKeys{cand_keys}, num_cand, quantile_q, g);
  } else {
    threshold = group::candidate_threshold(group::GlobalKeys{mass + cand_lo}, num_cand, quantile_q, g);
  }
  const bool use_threshold = !isnan(threshold);  // group-uniform

  const int count = group::compact_ascending(
      n, p.width,
      [&](int j) {
        if (j < cand_lo || j >= cand_hi) return true;  // sink and window blocks
        // The candidate's mass: from its staged key (the same float) or from global memory.
        const float m = kStaged ? thread::ordered_key_to_float(cand_keys[j - cand_lo]) : __ldg(mass + j);
        return use_threshold && static_cast<double>(m) > threshold;  // strict
      },
      p.block_index + row * p.width, g);
  if (g.tid == 0) p.num_selected[row] = count;
}

}  // namespace

cudaError_t run_select_blocks_keys4(const SelectKeys4Params& params, cudaStream_t stream) {
  const SelectKeys4Params& p = params;
  if (p.batch == 0 || p.num_kv_heads == 0 || p.width == 0) return cudaSuccess;
  if (p.batch > kMaxGridYZ || p.num_kv_heads > kMaxGridYZ) return cudaErrorInvalidValue;
  // q = 1 - keep_frac in float64, as the reference's Python float arithmetic.
  const double quantile_q = 1.0 - p.keep_frac;
  const dim3 grid(p.num_kv_heads, p.batch);
  const size_t smem = sizeof(uint32_t) * static_cast<size_t>(p.width);
  if (smem <= kMaxStagedSmemBytes) {
    select_blocks_keys4_kernel<true><<<grid, kRowWarps * 32, smem, stream>>>(p, quantile_q);
  } else {
    select_blocks_keys4_kernel<false><<<grid, kRowWarps * 32, 0, stream>>>(p, quantile_q);
  }
  return cudaGetLastError();
}

}  // namespace sketchwalk
