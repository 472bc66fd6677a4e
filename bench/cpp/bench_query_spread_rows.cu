// nvbench: query_spread_rows (each query block's spread over a Llama-3.1-8B query tensor, bf16
// [1, 32, tokens, 128], then the 3/32 of the blocks of largest spread per row: the dense rows of
// docs/spec.md section 13). Bytes = q read once + the flags written (the float32 spread scratch,
// 4 B a block, left out). The choice is O(blocks^2) compares per row, stopped at the wanted rank.
#include "bench_utils.cuh"
#include "launch.h"

namespace sketchwalk::bench {
namespace {

constexpr int kHeads = 32, kHeadDim = 128, kBlockSize = 64;

void query_spread_rows(nvbench::state& state) {
  const int tokens = static_cast<int>(state.get_int64("Tokens"));
  const int width = ceil_div(tokens, kBlockSize);

  DeviceBuffer<__nv_bfloat16> q(static_cast<size_t>(kHeads) * tokens * kHeadDim);
  DeviceBuffer<float> spread(width);
  DeviceBuffer<bool> dense_rows(width);
  fill_uniform(q, 3);

  QuerySpreadParams p{};
  p.q = q.get();
  p.q_head_stride = static_cast<int64_t>(tokens) * kHeadDim;
  p.q_batch_stride = kHeads * p.q_head_stride;
  p.q_token_stride = kHeadDim;
  p.spread = spread.get();
  p.dense_rows = dense_rows.get();
  p.rows = 1;
  p.heads = kHeads;
  p.tokens = tokens;
  p.head_dim = kHeadDim;
  p.block_size = kBlockSize;
  p.width = width;
  p.dense_last_q_blocks = 4;
  p.frac = 3.0 / 32;
  check_cuda(run_query_spread_rows(p, DType::kBFloat16, nullptr), "run_query_spread_rows");
  check_cuda(cudaDeviceSynchronize(), "run_query_spread_rows sync");

  state.add_element_count(static_cast<size_t>(width), "QueryBlocks");
  state.add_global_memory_reads(q.bytes(), "q");
  state.add_global_memory_writes(dense_rows.bytes(), "dense_rows");
  state.exec([&](nvbench::launch& launch) {
    check_cuda(run_query_spread_rows(p, DType::kBFloat16, launch.get_stream()),
               "run_query_spread_rows");
  });
}

}  // namespace

// 8K, 32K, 128K tokens.
NVBENCH_BENCH(query_spread_rows)
    .set_name("query_spread_rows")
    .add_int64_power_of_two_axis("Tokens", {13, 15, 17});

}  // namespace sketchwalk::bench
