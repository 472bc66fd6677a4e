// nvbench: sparse_decode (split-KV decode over a block index + combine) at the Llama-3.1-8B
// shape: Hq = 32, Hkv = 8, head_dim 128, bf16, one query per sequence, Tk = tokens. Each batch
// row keeps its last block plus each earlier block with probability Density. Memory-bound:
// bytes = the kept K/V blocks + q read, out written (split partials stay in L2 and are left
// out, so %BW is against the bytes the algorithm must move).
#include "bench_attention.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

void sparse_decode(nvbench::state& state) {
  const int tokens = static_cast<int>(state.get_int64("Tokens"));
  const int batch = static_cast<int>(state.get_int64("Batch"));
  const double density = state.get_float64("Density");
  AttentionInputs in(batch, 1, tokens, density);
  DeviceBuffer<float> workspace(sparse_decode_workspace_floats(in.params));
  check_cuda(run_sparse_decode(in.params, DType::kBFloat16, workspace.get(), nullptr),
             "run_sparse_decode");
  check_cuda(cudaDeviceSynchronize(), "run_sparse_decode sync");

  // Kept keys per sequence: tokens is a multiple of 64, so every kept block is full.
  const size_t kept_keys = static_cast<size_t>(in.host_index.total_selected) * kBlockSize;
  const size_t kv_bytes = 2 * kept_keys * kKvHeads * kHeadDim * sizeof(Element);
  state.add_element_count(kept_keys, "KeptKeys");
  state.add_global_memory_reads(kv_bytes + in.q.bytes() + in.block_index.bytes(), "kv+q");
  state.add_global_memory_writes(in.out.bytes(), "out");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_sparse_decode(in.params, DType::kBFloat16, workspace.get(), launch.get_stream()),
               "run_sparse_decode");
  });
}

}  // namespace

NVBENCH_BENCH(sparse_decode)
    .set_name("sparse_decode")
    .add_int64_power_of_two_axis("Tokens", {15, 17})
    .add_int64_axis("Batch", {1, 8})
    .add_float64_axis("Density", {0.2});

}  // namespace sketchwalk::bench
