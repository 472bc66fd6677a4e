// score_blocks_keys4, CUDA: launches the two kernels of include/sketchwalk/keys4_score.cuh
// (per-(head, block) softmax statistics on tensor cores, then the per-group block mass) with
// dispatch on dtype x head_dim. The caller passes the statistics workspace. Kernel-only.
#include "launch.h"
#include "sketchwalk/keys4_score.cuh"

namespace sketchwalk {
namespace {

template <typename Element, int kHeadDim>
cudaError_t launch_stats(const ScoreKeys4Params& p, cudaStream_t stream) {
  const dim3 grid(ceil_div(p.num_blocks, keys4::kStatsWarps), p.num_kv_heads, p.batch);
  if (p.num_q_heads / p.num_kv_heads <= 8) {
    keys4::keys4_block_stats_kernel<Element, kHeadDim, true>
        <<<grid, 32 * keys4::kStatsWarps, 0, stream>>>(p);
  } else {
    keys4::keys4_block_stats_kernel<Element, kHeadDim, false>
        <<<grid, 32 * keys4::kStatsWarps, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

size_t score_keys4_workspace_floats(int batch, int num_q_heads, int num_blocks) {
  return 2 * static_cast<size_t>(batch) * num_q_heads * num_blocks;
}

cudaError_t run_score_keys4(const ScoreKeys4Params& params, DType dtype, cudaStream_t stream) {
  const ScoreKeys4Params& p = params;
  if (p.batch == 0 || p.num_kv_heads == 0 || p.num_blocks == 0) return cudaSuccess;
  if (p.batch > 65535 || p.num_kv_heads > 65535 || p.num_q_heads % p.num_kv_heads != 0)
    return cudaErrorInvalidValue;
  cudaError_t err = cudaErrorInvalidValue;
  if (dtype == DType::kBFloat16) {
    if (p.head_dim == 64) err = launch_stats<__nv_bfloat16, 64>(p, stream);
    if (p.head_dim == 128) err = launch_stats<__nv_bfloat16, 128>(p, stream);
  } else if (dtype == DType::kFloat16) {
    if (p.head_dim == 64) err = launch_stats<__half, 64>(p, stream);
    if (p.head_dim == 128) err = launch_stats<__half, 128>(p, stream);
  }
  if (err != cudaSuccess) return err;
  const int group = p.num_q_heads / p.num_kv_heads;
  const size_t smem = 2 * sizeof(float) * static_cast<size_t>(group);
  keys4::keys4_block_mass_kernel<<<dim3(p.num_kv_heads, p.batch), keys4::kMassThreads, smem,
                                   stream>>>(p);
  return cudaGetLastError();
}

}  // namespace sketchwalk
