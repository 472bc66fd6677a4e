// nvbench: sparse_prefill (FlashAttention-style mainloop over a block index) at the
// Llama-3.1-8B shape: B = 1, Hq = 32, Hkv = 8, head_dim 128, bf16, Tq = Tk = tokens, causal.
// The index keeps each row's diagonal block plus each earlier block with probability Density
// (1.0 = dense causal). FLOPs = 4 * head_dim * Hq * kept causal (query, key) pairs;
// bytes = q, k, v read once + out written (the minimum traffic; K/V blocks re-read by several
// query rows hit L2 or are counted once). Kernel axis: "sm90" (TMA + wgmma; skipped where it
// cannot run) or "sm80" (mma.sync), through SKETCHWALK_PREFILL_ARCH (csrc/cuda/sparse_prefill.cu).
#include <cstdlib>
#include <string>

#include "bench_attention.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

void sparse_prefill(nvbench::state& state) {
  const int tokens = static_cast<int>(state.get_int64("Tokens"));
  const double density = state.get_float64("Density");
  const std::string kernel = state.get_string("Kernel");
  setenv("SKETCHWALK_PREFILL_ARCH", kernel.c_str(), 1);
  AttentionInputs in(1, tokens, tokens, density);
  const cudaError_t first = run_sparse_prefill(in.params, DType::kBFloat16, nullptr);
  if (first == cudaErrorNotSupported) {
    state.skip("the " + kernel + " kernel cannot run on this device or build");
    return;
  }
  check_cuda(first, "run_sparse_prefill");
  check_cuda(cudaDeviceSynchronize(), "run_sparse_prefill sync");

  const double flops = 4.0 * kHeadDim * kQHeads * static_cast<double>(in.host_index.kept_causal_pairs);
  const int num_q_blocks = in.params.num_q_blocks;
  const double causal_blocks = 0.5 * num_q_blocks * (num_q_blocks + 1.0);
  auto& kept = state.add_summary("sketchwalk/block_density");
  kept.set_string("name", "KeptBlocks");
  kept.set_string("hint", "percentage");
  kept.set_string("description", "kept blocks / causal blocks of the host-built index");
  kept.set_float64("value", static_cast<double>(in.host_index.total_selected) / causal_blocks);

  state.add_element_count(static_cast<size_t>(tokens), "Tokens");
  state.add_global_memory_reads(in.q.bytes() + in.k.bytes() + in.v.bytes(), "qkv");
  state.add_global_memory_writes(in.out.bytes(), "out");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_sparse_prefill(in.params, DType::kBFloat16, launch.get_stream()),
               "run_sparse_prefill");
  });
  add_flop_summaries(state, flops, FlopUnit::kTensorBF16);
}

}  // namespace

NVBENCH_BENCH(sparse_prefill)
    .set_name("sparse_prefill")
    .add_int64_power_of_two_axis("Tokens", {13, 15, 17})
    .add_float64_axis("Density", {0.2, 1.0})
    .add_string_axis("Kernel", {"sm90", "sm80"});

}  // namespace sketchwalk::bench
