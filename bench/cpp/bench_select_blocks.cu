// nvbench: select_blocks (warp quantile top-k + sink/window/dense-row rules -> block index)
// on random row-stochastic-like scores [1, N, N] with the prefill config defaults
// (keep 12.5 %, window 5 %, sinks 2.5 % of the tokens, 4 dense last rows). Bytes = the causal
// triangle of scores read + the full-width block index and counts written. DenseRows 1: every
// eleventh row flagged dense (~3/32, the query-spread rows' share) and paid from the others'
// budget (dense_rows_in_budget: each ranking row also scans the flags, docs/ops.md op 4).
#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

constexpr int kBlockSize = 64;

void select_blocks(nvbench::state& state) {
  const int n = static_cast<int>(state.get_int64("NumBlocks"));
  const int tokens = n * kBlockSize;

  DeviceBuffer<float> scores(static_cast<size_t>(n) * n);
  DeviceBuffer<int> block_index(static_cast<size_t>(n) * n);
  DeviceBuffer<int> num_selected(n);
  fill_uniform(scores, 5, 1e-6f, 1.f);

  const int window = std::max(1, static_cast<int>(0.05 * tokens));
  SelectBlocksParams p{};
  p.scores = scores.get();
  p.scores_row_stride = n;
  p.scores_batch_stride = static_cast<int64_t>(n) * n;
  p.block_index = block_index.get();
  p.num_selected = num_selected.get();
  p.batch = 1;
  p.num_queries = tokens;
  p.num_keys = tokens;
  p.block_size = kBlockSize;
  p.num_q_blocks = n;
  p.num_kv_blocks = n;
  p.keep_frac = 0.125;
  p.window_tokens = window;
  p.exclude_sink_tokens = std::max(1, static_cast<int>(0.025 * tokens));
  p.attend_sink_tokens = window;  // as python/sketchwalk/attention.py passes it
  p.dense_last_q_blocks = 4;
  DeviceBuffer<uint8_t> flags(n);  // bool-sized 0/1 flags
  if (state.get_int64("DenseRows") != 0) {
    std::vector<uint8_t> host(n, 0);
    for (int i = 1; i < n; i += 11) host[i] = 1;
    flags.copy_from_host(host);
    p.dense_rows = reinterpret_cast<const bool*>(flags.get());
    p.dense_rows_stride = n;
    p.dense_rows_in_budget = true;
  }
  check_cuda(run_select_blocks(p, nullptr), "run_select_blocks");
  check_cuda(cudaDeviceSynchronize(), "run_select_blocks sync");

  state.add_element_count(static_cast<size_t>(n), "Rows");
  state.add_global_memory_reads<float>(static_cast<size_t>(n) * (n + 1) / 2, "scores");
  state.add_global_memory_writes(block_index.bytes() + num_selected.bytes(), "index");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_select_blocks(p, launch.get_stream()), "run_select_blocks");
  });
}

}  // namespace

// N = 128, 512, 2048 blocks: 8K, 32K, 128K tokens at block_size 64.
NVBENCH_BENCH(select_blocks)
    .set_name("select_blocks")
    .add_int64_power_of_two_axis("NumBlocks", {7, 9, 11})
    .add_int64_axis("DenseRows", {0, 1});

}  // namespace sketchwalk::bench
