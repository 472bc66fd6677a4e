// nvbench: hadamard_sketch (block mean-pool + sign flip + FWHT + subsample) on a Llama-3.1-8B
// query tensor, bf16 [1, 32, tokens, 128] -> fp32 [1, 32, tokens / block_size, 128].
// block_size 64 is the prefill sketch, block_size 1 the per-token sketch (decode window).
// Memory-bound: bytes = x read + out write (signs and coords are 1.5 KiB and left out).
#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

constexpr int kHeads = 32, kHeadDim = 128, kSketchDim = 128;  // m = n = 128 (config default)

void hadamard_sketch(nvbench::state& state) {
  const int tokens = static_cast<int>(state.get_int64("Tokens"));
  const int block_size = static_cast<int>(state.get_int64("BlockSize"));
  const int num_blocks = ceil_div(tokens, block_size);

  DeviceBuffer<__nv_bfloat16> x(static_cast<size_t>(kHeads) * tokens * kHeadDim);
  DeviceBuffer<float> out(static_cast<size_t>(kHeads) * num_blocks * kSketchDim);
  DeviceBuffer<float> signs(kHeadDim);
  DeviceBuffer<int64_t> coords(kSketchDim);
  fill_uniform(x, 1);
  std::mt19937_64 rng(2);
  std::vector<float> host_signs(kHeadDim);
  for (auto& s : host_signs) s = (rng() & 1) ? 1.f : -1.f;
  std::vector<int64_t> host_coords(kSketchDim);
  for (int i = 0; i < kSketchDim; ++i) host_coords[i] = i;
  std::shuffle(host_coords.begin(), host_coords.end(), rng);
  signs.copy_from_host(host_signs);
  coords.copy_from_host(host_coords);

  HadamardSketchParams p{};
  p.x = x.get();
  p.signs = signs.get();
  p.coords = coords.get();
  p.out = out.get();
  p.x_head_stride = static_cast<int64_t>(tokens) * kHeadDim;
  p.x_batch_stride = kHeads * p.x_head_stride;
  p.x_token_stride = kHeadDim;
  p.out_block_stride = kSketchDim;  // contiguous [1, heads, num_blocks, m]
  p.out_head_stride = static_cast<int64_t>(num_blocks) * kSketchDim;
  p.out_batch_stride = kHeads * p.out_head_stride;
  p.batch = 1;
  p.heads = kHeads;
  p.tokens = tokens;
  p.head_dim = kHeadDim;
  p.block_size = block_size;
  p.num_blocks = num_blocks;
  p.sketch_pow2 = kHeadDim;
  p.sketch_dim = kSketchDim;
  p.scale = 1.f / std::sqrt(static_cast<float>(kSketchDim));
  check_cuda(run_hadamard_sketch(p, DType::kBFloat16, nullptr), "run_hadamard_sketch");
  check_cuda(cudaDeviceSynchronize(), "run_hadamard_sketch sync");

  state.add_element_count(static_cast<size_t>(kHeads) * tokens, "Rows");
  state.add_global_memory_reads(x.bytes(), "x");
  state.add_global_memory_writes(out.bytes(), "out");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_hadamard_sketch(p, DType::kBFloat16, launch.get_stream()),
               "run_hadamard_sketch");
  });
}

}  // namespace

NVBENCH_BENCH(hadamard_sketch)
    .set_name("hadamard_sketch")
    .add_int64_power_of_two_axis("Tokens", {13, 15, 17})
    .add_int64_axis("BlockSize", {64, 1});

}  // namespace sketchwalk::bench
