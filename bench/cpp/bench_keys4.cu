// nvbench: the keys4 decode scorer at Llama-3.1-8B shapes (32 q / 8 kv heads, head_dim 128,
// bf16 q): score_blocks_keys4 (tensor-core statistics + block mass) over a 4-bit key cache of
// random codes, and select_blocks_keys4 on its masses (keep 12.5 %, window 5 %, sink 2.5 %).
// Bytes: the codes and scales of every live key (what the scorer must read) + the masses
// written; for select, the masses read and the block index written.
#include <random>

#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

constexpr int kNumQHeads = 32, kNumKVHeads = 8, kHeadDim = 128;

struct Keys4Inputs {
  int batch, tokens, num_blocks;
  DeviceBuffer<uint8_t> codes;
  DeviceBuffer<float> scales;
  DeviceBuffer<__nv_bfloat16> q;
  DeviceBuffer<float> mass;

  Keys4Inputs(int batch_, int tokens_)
      : batch(batch_), tokens(tokens_), num_blocks(ceil_div(tokens_, kIndexBlockSize)),
        codes(static_cast<size_t>(batch_) * kNumKVHeads * tokens_ * (kHeadDim / 2)),
        scales(static_cast<size_t>(batch_) * kNumKVHeads * tokens_),
        q(static_cast<size_t>(batch_) * kNumQHeads * kHeadDim),
        mass(static_cast<size_t>(batch_) * kNumKVHeads * ceil_div(tokens_, kIndexBlockSize)) {
    std::vector<uint8_t> host(codes.size());
    std::mt19937 rng(7);
    for (auto& byte : host) byte = static_cast<uint8_t>((1 + rng() % 15) | ((1 + rng() % 15) << 4));
    codes.copy_from_host(host);
    fill_uniform(scales, 3, 0.01f, 0.5f);
    fill_uniform(q, 5);
  }

  ScoreKeys4Params params() const {
    ScoreKeys4Params p{};
    p.q = q.get();
    p.codes = codes.get();
    p.scales = scales.get();
    p.mass = mass.get();
    p.q_batch_stride = static_cast<int64_t>(kNumQHeads) * kHeadDim;
    p.q_head_stride = kHeadDim;
    p.codes_token_stride = kHeadDim / 2;
    p.codes_head_stride = p.codes_token_stride * tokens;
    p.codes_batch_stride = p.codes_head_stride * kNumKVHeads;
    p.scales_head_stride = tokens;
    p.scales_batch_stride = static_cast<int64_t>(tokens) * kNumKVHeads;
    p.batch = batch;
    p.num_q_heads = kNumQHeads;
    p.num_kv_heads = kNumKVHeads;
    p.head_dim = kHeadDim;
    p.capacity = tokens;
    p.num_blocks = num_blocks;
    p.softmax_scale = 0.08838834764831845f;  // 1 / sqrt(128)
    return p;
  }
};

void score_blocks_keys4(nvbench::state& state) {
  Keys4Inputs in(static_cast<int>(state.get_int64("Batch")), static_cast<int>(state.get_int64("SeqLen")));
  const ScoreKeys4Params p = in.params();
  DeviceBuffer<float> workspace(score_keys4_workspace_floats(p));
  check_cuda(run_score_keys4(p, DType::kBFloat16, workspace.get(), nullptr), "run_score_keys4");
  check_cuda(cudaDeviceSynchronize(), "run_score_keys4 sync");
  state.add_global_memory_reads(in.codes.bytes() + in.scales.bytes(), "keys4");
  state.add_global_memory_writes(in.mass.bytes(), "mass");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_score_keys4(p, DType::kBFloat16, workspace.get(), launch.get_stream()),
               "run_score_keys4");
  });
}

void select_blocks_keys4(nvbench::state& state) {
  Keys4Inputs in(static_cast<int>(state.get_int64("Batch")), static_cast<int>(state.get_int64("SeqLen")));
  fill_uniform(in.mass, 9, 1e-6f, 1.f);
  DeviceBuffer<int> block_index(in.mass.size());
  DeviceBuffer<int> num_selected(static_cast<size_t>(in.batch) * kNumKVHeads);
  SelectKeys4Params p{};
  p.mass = in.mass.get();
  p.block_index = block_index.get();
  p.num_selected = num_selected.get();
  p.batch = in.batch;
  p.num_kv_heads = kNumKVHeads;
  p.width = in.num_blocks;
  p.keep_frac = 0.125;
  p.window_frac = 0.05;
  p.sink_frac = 0.025;
  check_cuda(run_select_blocks_keys4(p, nullptr), "run_select_blocks_keys4");
  check_cuda(cudaDeviceSynchronize(), "run_select_blocks_keys4 sync");
  state.add_global_memory_reads(in.mass.bytes(), "mass");
  state.add_global_memory_writes(block_index.bytes() + num_selected.bytes(), "index");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_select_blocks_keys4(p, launch.get_stream()), "run_select_blocks_keys4");
  });
}

}  // namespace

// 32K and 128K keys (one sequence's cache of one layer), batch 1 and 8.
NVBENCH_BENCH(score_blocks_keys4)
    .set_name("score_blocks_keys4")
    .add_int64_axis("Batch", {1, 8})
    .add_int64_power_of_two_axis("SeqLen", {15, 17});
NVBENCH_BENCH(select_blocks_keys4)
    .set_name("select_blocks_keys4")
    .add_int64_axis("Batch", {1, 8})
    .add_int64_power_of_two_axis("SeqLen", {15, 17});

}  // namespace sketchwalk::bench
