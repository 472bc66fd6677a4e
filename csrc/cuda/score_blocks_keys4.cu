// score_blocks_keys4, CUDA: launches the two kernels of include/sketchwalk/keys4_score.cuh
// (per-(head, block) softmax statistics on tensor cores, then the per-group block mass) with
// dispatch on dtype x head_dim. The caller allocates the workspace. Kernel-only.
#include "launch.h"
#include "sketchwalk/keys4_score.cuh"

namespace sketchwalk {
namespace {

int plan_splits(const ScoreKeys4Params& p) {
  return keys4::keys4_score_splits(p.batch, p.num_kv_heads, p.num_blocks, current_device_sm_count());
}

template <typename Element, int kHeadDim, bool kOneTile>
cudaError_t launch_stats_kernel(const ScoreKeys4Params& p, int splits, float* head_max,
                                float* head_sum, cudaStream_t stream) {
  const dim3 grid(splits, p.num_kv_heads, p.batch);
  const size_t smem = keys4::keys4_stats_smem_bytes<kHeadDim>(p.num_q_heads / p.num_kv_heads);
  auto* kernel = keys4::keys4_block_stats_kernel<Element, kHeadDim, kOneTile>;
  if (smem > 48 * 1024) {  // only groups of hundreds of heads need the opt-in
    const cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  kernel<<<grid, 32 * keys4::kStatsWarps, smem, stream>>>(p, head_max, head_sum);
  return cudaGetLastError();
}

template <typename Element, int kHeadDim>
cudaError_t launch_stats(const ScoreKeys4Params& p, int splits, float* head_max, float* head_sum,
                         cudaStream_t stream) {
  if (p.num_q_heads / p.num_kv_heads <= 8)
    return launch_stats_kernel<Element, kHeadDim, true>(p, splits, head_max, head_sum, stream);
  return launch_stats_kernel<Element, kHeadDim, false>(p, splits, head_max, head_sum, stream);
}

}  // namespace

// Floats of run_score_keys4's workspace: per (head, block) max and sum, then per (head, split).
size_t score_keys4_workspace_floats(const ScoreKeys4Params& params) {
  const size_t heads = static_cast<size_t>(params.batch) * params.num_q_heads;
  return 2 * heads * (static_cast<size_t>(params.num_blocks) + plan_splits(params));
}

cudaError_t run_score_keys4(const ScoreKeys4Params& params, DType dtype, float* workspace,
                            cudaStream_t stream) {
  if (params.batch == 0 || params.num_kv_heads == 0 || params.num_blocks == 0) return cudaSuccess;
  if (params.batch > kMaxGridYZ || params.num_kv_heads > kMaxGridYZ ||
      params.num_q_heads % params.num_kv_heads != 0)
    return cudaErrorInvalidValue;
  const int splits = plan_splits(params);
  const size_t heads = static_cast<size_t>(params.batch) * params.num_q_heads;
  ScoreKeys4Params p = params;
  p.block_max = workspace;
  p.block_sum = workspace + heads * p.num_blocks;
  float* head_max = workspace + 2 * heads * p.num_blocks;
  float* head_sum = head_max + heads * splits;
  cudaError_t err = cudaErrorInvalidValue;
  if (dtype == DType::kBFloat16) {
    if (p.head_dim == 64) err = launch_stats<__nv_bfloat16, 64>(p, splits, head_max, head_sum, stream);
    if (p.head_dim == 128) err = launch_stats<__nv_bfloat16, 128>(p, splits, head_max, head_sum, stream);
  } else if (dtype == DType::kFloat16) {
    if (p.head_dim == 64) err = launch_stats<__half, 64>(p, splits, head_max, head_sum, stream);
    if (p.head_dim == 128) err = launch_stats<__half, 128>(p, splits, head_max, head_sum, stream);
  }
  if (err != cudaSuccess) return err;
  const int group = p.num_q_heads / p.num_kv_heads;
  const dim3 grid(ceil_div(p.num_blocks, keys4::kMassThreads), p.num_kv_heads, p.batch);
  keys4::keys4_block_mass_kernel<<<grid, keys4::kMassThreads, 2 * sizeof(float) * group, stream>>>(
      p, head_max, head_sum, splits);
  return cudaGetLastError();
}

}  // namespace sketchwalk
