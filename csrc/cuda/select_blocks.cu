// select_blocks op, CUDA: one warp per (batch, query-block row) when there are many rows, one
// 256-thread CTA per row when there are few (decode: a lone warp is latency-bound). The causal
// row [0, lim] is staged as ordered uint32 keys in shared memory (its candidates are the
// contiguous range [sb, lim - wb]), the (1 - keep_frac) quantile is found by
// group::quantile_linear (float64, torch.quantile's interpolation; tie rule in topk.cuh),
// then the keep rules are applied one group-width of blocks at a time and the kept ids are
// compacted by ballot (plus a cross-warp prefix) in ascending order, padded with -1.
// Fixed-size output, no host synchronization: CUDA-graph capturable. select_blocks_varlen
// (params.seq_args) reads each row's sequence lengths and window / sink tokens from the device;
// rows past a sequence's query blocks select nothing. params.dense_rows flags further rows that
// keep their whole causal range (as the last dense_last_q_blocks do); with
// params.dense_rows_in_budget the other rows of their sequence keep less to pay for them
// (sketchwalk/dense_rows_budget.h). Kernel-only.
#include <cuda_runtime.h>


#include "launch.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"
#include "sketchwalk/dense_rows_budget.h"
#include "sketchwalk/params.h"
#include "sketchwalk/topk.cuh"

namespace sketchwalk {
namespace {

// Warp-per-row launches: 4 rows per CTA. CTA-per-row launches: 8 warps per row, used while
// rows < 2 x SMs (decode: batch rows; prefill up to 16K tokens on H100's 132 SMs).
constexpr int kRowsPerWarpCta = 4;
constexpr int kCtaRowWarps = 8;
// Staged keys: rows per CTA x round_up(num_kv_blocks, 4) x 4 B; 96 KiB covers num_kv_blocks
// <= 6144 (393K tokens at b = 64) for warp-per-row. Longer rows read the scores from global
// memory in every pass.
constexpr size_t kMaxStagedSmemBytes = 96 * 1024;

SW_HOST_DEVICE int round_up_to_4(int x) { return (x + 3) & ~3; }


// kRowWarps == 1: CTA = kRowsPerWarpCta warps, one row each. kRowWarps > 1: CTA = one row.
template <bool kStaged, int kRowWarps>
__global__ void __launch_bounds__(kRowWarps == 1 ? kRowsPerWarpCta * 32 : kRowWarps * 32)
    select_blocks_kernel(const SelectBlocksParams p, double quantile_q) {
  extern __shared__ __align__(16) uint32_t key_smem[];
  __shared__ uint32_t reduce_scratch[kRowWarps];
  using Group = group::RowGroup<kRowWarps>;
  constexpr int kRowsPerCta = kRowWarps == 1 ? kRowsPerWarpCta : 1;
  const int lane = threadIdx.x & 31;
  const int slot = kRowWarps == 1 ? static_cast<int>(threadIdx.x >> 5) : 0;  // row within CTA
  const Group g{kRowWarps == 1 ? lane : static_cast<int>(threadIdx.x), reduce_scratch};
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerCta + slot;
  if (row >= static_cast<int64_t>(p.batch) * p.num_q_blocks) return;  // group-uniform
  const int i = static_cast<int>(row % p.num_q_blocks);
  const int batch_idx = static_cast<int>(row / p.num_q_blocks);
  const int b = p.block_size;
  const int nk = p.num_kv_blocks;             // the output row's width
  const int key_stride = round_up_to_4(nk);  // keeps each row's keys 16-byte aligned

  // This row's sequence: the scalars, or its row of seq_args (select_blocks_varlen).
  int num_queries = p.num_queries, num_keys = p.num_keys, w = p.window_tokens;
  int exclude_sink = p.exclude_sink_tokens, attend_sink = p.attend_sink_tokens;
  int seq_q_blocks = p.num_q_blocks, seq_kv_blocks = nk;
  if (p.seq_args != nullptr) {
    const int* a = p.seq_args + static_cast<int64_t>(batch_idx) * kSelectSeqArgs;
    num_queries = __ldg(a);
    num_keys = __ldg(a + 1);
    w = __ldg(a + 2);
    exclude_sink = __ldg(a + 3);
    attend_sink = __ldg(a + 4);
    seq_q_blocks = ceil_div(num_queries, b);
    seq_kv_blocks = ceil_div(num_keys, b);
  }
  int* index_row = p.block_index + row * nk;
  if (i >= seq_q_blocks) {  // past the sequence's query blocks: nothing (group-uniform)
    group::compact_ascending(0, nk, [](int) { return false; }, index_row, g);
    if (g.tid == 0) p.num_selected[row] = 0;
    return;
  }

  const int lim = causal_limit_block(i, num_queries, num_keys, b);
  const int q_lo = query_position(i * b, num_queries, num_keys);
  const int wb = max(1, ceil_div(w, b));
  const int sb = min(seq_kv_blocks, max(1, ceil_div(exclude_sink, b)));
  const int attend_sink_blocks = attend_sink > 0 ? ceil_div(attend_sink, b) : 0;
  const int window_lo = max(0, q_lo - w + 1) / b;
  const bool* seq_flags =
      p.dense_rows != nullptr ? p.dense_rows + batch_idx * p.dense_rows_stride : nullptr;
  const bool dense_row = i >= seq_q_blocks - p.dense_last_q_blocks ||
                         (seq_flags != nullptr && seq_flags[i]);
  // Candidates: {j <= lim} - {j < sb} - {lim - wb + 1 <= j <= lim} = [sb, lim - wb].
  const int cand_lo = sb;
  const int num_cand = max(0, lim - wb - sb + 1);
  if (p.dense_rows_in_budget && seq_flags != nullptr && !dense_row && num_cand > 0) {
    // The sequence's flagged rows pay from this row's keep fraction: every row of the sequence
    // sums the same candidate counts (O(seq_q_blocks) per ranking row, +10 us at 128K tokens on
    // an H100; the check bounds the sums by int32).
    int flagged = 0, unflagged = 0;
    for (int r = g.tid; r < seq_q_blocks - p.dense_last_q_blocks; r += Group::kThreads) {
      const int c = static_cast<int>(
          select_candidate_count(r, num_queries, num_keys, b, wb, sb));
      (seq_flags[r] ? flagged : unflagged) += c;
    }
    flagged = g.sum(flagged);
    unflagged = g.sum(unflagged);
    quantile_q = 1.0 - budgeted_keep_frac(p.keep_frac, flagged, unflagged);
  }
  const float* scores = p.scores + batch_idx * p.scores_batch_stride + i * p.scores_row_stride;

  // Stage the whole causal row [0, lim] as ordered keys (candidates are a sub-range of it), so
  // the keep loop below reads shared memory too.
  uint32_t* row_keys = key_smem + static_cast<size_t>(slot) * key_stride;
  double threshold = __longlong_as_double(0x7ff8000000000000LL);  // NaN: rule keeps nothing
  if (num_cand > 0 && !dense_row) {
    if constexpr (kStaged) {
      group::stage_row_keys(scores, lim + 1, row_keys, g);
      threshold = group::candidate_threshold(group::SharedKeys{row_keys + cand_lo}, num_cand,
                                             quantile_q, g);
    } else {
      threshold = group::candidate_threshold(group::GlobalKeys{scores + cand_lo}, num_cand,
                                             quantile_q, g);
    }
  }
  const bool use_threshold = !isnan(threshold);  // group-uniform

  const int count = group::compact_ascending(
      lim + 1, nk,
      [&](int j) {
        if (dense_row || j < attend_sink_blocks || j >= window_lo) return true;
        if (!use_threshold) return false;
        const float v = kStaged ? thread::ordered_key_to_float(row_keys[j]) : __ldg(scores + j);
        return static_cast<double>(v) > threshold;  // strict: ties at the threshold dropped
      },
      index_row, g);
  if (g.tid == 0) p.num_selected[row] = count;
}

template <int kRowWarps>
cudaError_t launch_select(const SelectBlocksParams& p, double quantile_q, cudaStream_t stream) {
  constexpr int kRowsPerCta = kRowWarps == 1 ? kRowsPerWarpCta : 1;
  constexpr int kThreads = kRowWarps == 1 ? kRowsPerWarpCta * 32 : kRowWarps * 32;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.num_q_blocks;
  const int64_t grid = ceil_div<int64_t>(rows, kRowsPerCta);
  if (grid > 0x7fffffff) return cudaErrorInvalidConfiguration;
  const size_t smem =
      sizeof(uint32_t) * kRowsPerCta * static_cast<size_t>(round_up_to_4(p.num_kv_blocks));
  if (smem <= kMaxStagedSmemBytes) {
    if (smem > 48 * 1024) {
      const cudaError_t err = cudaFuncSetAttribute(
          select_blocks_kernel<true, kRowWarps>, cudaFuncAttributeMaxDynamicSharedMemorySize,
          static_cast<int>(kMaxStagedSmemBytes));
      if (err != cudaSuccess) return err;
    }
    select_blocks_kernel<true, kRowWarps>
        <<<static_cast<unsigned>(grid), kThreads, smem, stream>>>(p, quantile_q);
  } else {
    select_blocks_kernel<false, kRowWarps>
        <<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(p, quantile_q);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t run_select_blocks(const SelectBlocksParams& params, cudaStream_t stream) {
  const SelectBlocksParams& p = params;
  const int64_t rows = static_cast<int64_t>(p.batch) * p.num_q_blocks;
  if (rows == 0 || p.num_kv_blocks == 0) return cudaSuccess;
  if (p.block_size < 1 || p.window_tokens < 1 || p.num_queries > p.num_keys)
    return cudaErrorInvalidValue;
  // q = 1 - keep_frac in float64, as the reference's Python float arithmetic.
  const double quantile_q = 1.0 - p.keep_frac;
  const int sms = current_device_sm_count();
  return rows < 2 * static_cast<int64_t>(sms) ? launch_select<kCtaRowWarps>(p, quantile_q, stream)
                                              : launch_select<1>(p, quantile_q, stream);
}

}  // namespace sketchwalk
