// nvbench: score_blocks (sketched logits -> per-head softmax over key blocks -> head sum ->
// row normalize) at the prefill shape: q_sketch fp32 [1, 32, N, 128], k_sketch [1, 8, N, 128]
// -> out [1, N, N], N = tokens / 64. FLOPs = 2 * Hq * N * N * m (the logits; fp32 CUDA cores).
#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

constexpr int kQHeads = 32, kKvHeads = 8, kSketchDim = 128, kBlockSize = 64;

void score_blocks(nvbench::state& state) {
  const int tokens = static_cast<int>(state.get_int64("Tokens"));
  const int n = tokens / kBlockSize;

  DeviceBuffer<float> q_sketch(static_cast<size_t>(kQHeads) * n * kSketchDim);
  DeviceBuffer<float> k_sketch(static_cast<size_t>(kKvHeads) * n * kSketchDim);
  DeviceBuffer<float> out(static_cast<size_t>(n) * n);
  fill_uniform(q_sketch, 3);
  fill_uniform(k_sketch, 4);

  ScoreBlocksParams p{};
  p.q_sketch = q_sketch.get();
  p.k_sketch = k_sketch.get();
  p.out = out.get();
  p.q_row_stride = kSketchDim;
  p.q_head_stride = static_cast<int64_t>(n) * kSketchDim;
  p.q_batch_stride = kQHeads * p.q_head_stride;
  p.k_row_stride = kSketchDim;
  p.k_head_stride = static_cast<int64_t>(n) * kSketchDim;
  p.k_batch_stride = kKvHeads * p.k_head_stride;
  p.batch = 1;
  p.num_q_heads = kQHeads;
  p.num_kv_heads = kKvHeads;
  p.rows = n;
  p.cols = n;
  p.sketch_dim = kSketchDim;
  // Sketch&Walk's m^1.5 / (100 n) with m = n = 128.
  p.logit_scale = static_cast<float>(std::pow(kSketchDim, 1.5) / (100.0 * kSketchDim));
  check_cuda(run_score_blocks(p, nullptr), "run_score_blocks");
  check_cuda(cudaDeviceSynchronize(), "run_score_blocks sync");

  const double flops = 2.0 * kQHeads * static_cast<double>(n) * n * kSketchDim;
  state.add_element_count(static_cast<size_t>(n) * n, "Scores");
  state.add_global_memory_reads(q_sketch.bytes() + k_sketch.bytes(), "sketches");
  state.add_global_memory_writes(out.bytes(), "out");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_score_blocks(p, launch.get_stream()), "run_score_blocks");
  });
  add_flop_summaries(state, flops, FlopUnit::kCudaCoreFP32);
}

}  // namespace

NVBENCH_BENCH(score_blocks)
    .set_name("score_blocks")
    .add_int64_power_of_two_axis("Tokens", {13, 15, 17});

}  // namespace sketchwalk::bench
