// nvbench: the incremental kernels of a decode step's selection at Llama-3.1-8B shapes
// (Hq 32, Hkv 8, window W = 32, sketch m = 128, fp32 state), per NumBlocks key blocks
// (2^9 = 32K tokens, 2^11 = 128K, 2^13 = 512K) and Batch sequences:
//   update_window_logits: one step's refresh (the new query's row over every block, the open
//     block's column over every slot). Bytes: the key-block sketches and the window read once,
//     the new row and column written. FLOPs: 2 m per refreshed logit (CUDA cores).
//   window_block_scores: r from the cached logits. Bytes: the logits read twice (row
//     logsumexp, then column sums; the row pass's second read hits L1) + r written.
//   decode_walk: degree 3 over A [Batch, N, N]. Bytes: A read once per degree + r.
#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

constexpr int kQHeads = 32, kKvHeads = 8, kWindow = 32, kSketchDim = 128;

void update_window_logits(nvbench::state& state) {
  const int n = static_cast<int>(state.get_int64("NumBlocks"));
  const int batch = static_cast<int>(state.get_int64("Batch"));
  DeviceBuffer<float> logits(static_cast<size_t>(batch) * kQHeads * kWindow * n);
  DeviceBuffer<float> window(static_cast<size_t>(batch) * kQHeads * kWindow * kSketchDim);
  DeviceBuffer<float> key_blocks(static_cast<size_t>(batch) * kKvHeads * n * kSketchDim);
  fill_uniform(window, 11);
  fill_uniform(key_blocks, 12);
  WindowLogitsParams p{};
  p.logits = logits.get();
  p.query_window = window.get();
  p.key_blocks = key_blocks.get();
  p.l_row_stride = n;
  p.l_head_stride = static_cast<int64_t>(kWindow) * n;
  p.l_batch_stride = kQHeads * p.l_head_stride;
  p.q_row_stride = kSketchDim;
  p.q_head_stride = static_cast<int64_t>(kWindow) * kSketchDim;
  p.q_batch_stride = kQHeads * p.q_head_stride;
  p.k_row_stride = kSketchDim;
  p.k_head_stride = static_cast<int64_t>(n) * kSketchDim;
  p.k_batch_stride = kKvHeads * p.k_head_stride;
  p.batch = batch;
  p.num_q_heads = kQHeads;
  p.num_kv_heads = kKvHeads;
  p.window = kWindow;
  p.num_blocks = n;
  p.sketch_dim = kSketchDim;
  p.row_begin = 7;  // one step: slot 7's row
  p.row_end = 8;
  p.refresh_last_column = true;
  p.logit_scale = 0.113f;
  check_cuda(run_update_window_logits(p, nullptr), "run_update_window_logits");
  check_cuda(cudaDeviceSynchronize(), "run_update_window_logits sync");

  const size_t refreshed = static_cast<size_t>(batch) * kQHeads * (n + kWindow);
  state.add_element_count(refreshed, "Logits");
  state.add_global_memory_reads(key_blocks.bytes() + window.bytes(), "key_blocks+window");
  state.add_global_memory_writes<float>(refreshed, "logits");
  add_flop_summaries(state, 2.0 * kSketchDim * static_cast<double>(refreshed),
                     FlopUnit::kCudaCoreFP32);
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_update_window_logits(p, launch.get_stream()), "run_update_window_logits");
  });
}

void window_block_scores(nvbench::state& state) {
  const int n = static_cast<int>(state.get_int64("NumBlocks"));
  const int batch = static_cast<int>(state.get_int64("Batch"));
  DeviceBuffer<float> logits(static_cast<size_t>(batch) * kQHeads * kWindow * n);
  DeviceBuffer<float> row_offset(static_cast<size_t>(batch) * kQHeads * kWindow);
  DeviceBuffer<float> r(static_cast<size_t>(batch) * n);
  fill_uniform(logits, 13, -3.f, 3.f);
  WindowScoresParams p{};
  p.logits = logits.get();
  p.row_offset = row_offset.get();
  p.r = r.get();
  p.l_row_stride = n;
  p.l_head_stride = static_cast<int64_t>(kWindow) * n;
  p.l_batch_stride = kQHeads * p.l_head_stride;
  p.batch = batch;
  p.num_q_heads = kQHeads;
  p.window_fill = kWindow;
  p.num_blocks = n;
  check_cuda(run_window_block_scores(p, nullptr), "run_window_block_scores");
  check_cuda(cudaDeviceSynchronize(), "run_window_block_scores sync");

  state.add_element_count(logits.size(), "Logits");
  state.add_global_memory_reads(2 * logits.bytes(), "logits (two passes)");
  state.add_global_memory_writes(r.bytes(), "r");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_window_block_scores(p, launch.get_stream()), "run_window_block_scores");
  });
}

void decode_walk(nvbench::state& state) {
  const int n = static_cast<int>(state.get_int64("NumBlocks"));
  const int batch = static_cast<int>(state.get_int64("Batch"));
  constexpr int kDegree = 3;
  DeviceBuffer<float> transition(static_cast<size_t>(batch) * n * n);
  DeviceBuffer<float> r(static_cast<size_t>(batch) * n);
  DeviceBuffer<float> out(static_cast<size_t>(batch) * n);
  DeviceBuffer<float> workspace(decode_walk_workspace_floats(batch, n));
  fill_uniform(transition, 14, 0.f, 2.f / n);
  fill_uniform(r, 15, 0.f, 2.f / n);
  const int64_t row_stride = n, batch_stride = static_cast<int64_t>(n) * n;
  const auto run = [&](cudaStream_t stream) {
    return run_decode_walk(r.get(), transition.get(), batch_stride, row_stride, batch, n, kDegree,
                           0.25f, workspace.get(), out.get(), stream);
  };
  check_cuda(run(nullptr), "run_decode_walk");
  check_cuda(cudaDeviceSynchronize(), "run_decode_walk sync");

  state.add_element_count(static_cast<size_t>(kDegree) * transition.size(), "Entries");
  state.add_global_memory_reads(kDegree * transition.bytes() + r.bytes(), "A x degree + r");
  state.add_global_memory_writes(out.bytes(), "walk");
  add_flop_summaries(state, 2.0 * kDegree * static_cast<double>(transition.size()),
                     FlopUnit::kCudaCoreFP32);
  state.exec([&](nvbench::launch& launch) { check_cuda(run(launch.get_stream()), "run_decode_walk"); });
}

}  // namespace

NVBENCH_BENCH(update_window_logits)
    .set_name("update_window_logits")
    .add_int64_power_of_two_axis("NumBlocks", {9, 11, 13})
    .add_int64_axis("Batch", {1, 8});

NVBENCH_BENCH(window_block_scores)
    .set_name("window_block_scores")
    .add_int64_power_of_two_axis("NumBlocks", {9, 11, 13})
    .add_int64_axis("Batch", {1, 8});

NVBENCH_BENCH(decode_walk)
    .set_name("decode_walk")
    .add_int64_power_of_two_axis("NumBlocks", {9, 11, 13})
    .add_int64_axis("Batch", {1, 8});

}  // namespace sketchwalk::bench
