// nvbench: update_block_matrix (decode-time row/column blend of the block transition matrix,
// in place) on [1, N, N] fp32 with a fresh r [1, N]. alpha = 1/17 (17th token of the newest
// block, the blending case). Bytes = the matrix read and written once + r.
#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

void update_block_matrix(nvbench::state& state) {
  const int n = static_cast<int>(state.get_int64("NumBlocks"));

  DeviceBuffer<float> transition(static_cast<size_t>(n) * n);
  DeviceBuffer<float> r(n);
  fill_uniform(transition, 6, 1e-6f, 1.f);
  fill_uniform(r, 7, 1e-6f, 1.f);
  const float alpha = 1.f / 17.f;
  const int64_t stride = n;
  check_cuda(run_update_block_matrix(transition.get(), stride * n, stride, r.get(), 1, n, alpha,
                                     nullptr),
             "run_update_block_matrix");
  check_cuda(cudaDeviceSynchronize(), "run_update_block_matrix sync");

  state.add_element_count(static_cast<size_t>(n) * n, "Entries");
  state.add_global_memory_reads(transition.bytes() + r.bytes(), "transition+r");
  state.add_global_memory_writes(transition.bytes(), "transition");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_update_block_matrix(transition.get(), stride * n, stride, r.get(), 1, n, alpha,
                                       launch.get_stream()),
               "run_update_block_matrix");
  });
}

}  // namespace

NVBENCH_BENCH(update_block_matrix)
    .set_name("update_block_matrix")
    .add_int64_power_of_two_axis("NumBlocks", {7, 9, 11});

}  // namespace sketchwalk::bench
