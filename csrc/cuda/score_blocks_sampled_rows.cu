// score_blocks_sampled_rows, CUDA: launches the tensor-core scorer of
// include/sketchwalk/sampled_rows_score.cuh with dispatch on dtype x head_dim x m16 tiles
// (query blocks per CTA x the group's query heads x sampled rows, rounded up to 1, 2, 4 or 8
// tiles). Kernel-only.
#include <cstdlib>

#include "launch.h"
#include "sketchwalk/sampled_rows_score.cuh"

namespace sketchwalk {
namespace {

// SKETCHWALK_SAMPLED_ROWS_BLOCKS (read per call; for benchmarks and tests): query blocks per CTA,
// rounded down to a power of two and capped to what fits (sampled_rows_q_blocks_per_cta);
// unset or not a positive number: the launcher's choice.
int requested_q_blocks_per_cta() {
  const char* env = std::getenv("SKETCHWALK_SAMPLED_ROWS_BLOCKS");
  return env == nullptr ? 0 : std::atoi(env);
}

template <typename Element, int kHeadDim, int kMTiles>
cudaError_t launch_tiles(const SampledRowsParams& p, cudaStream_t stream) {
  using T = sampled_rows::Traits<kHeadDim, kMTiles, Element>;
  auto* kernel = sampled_rows::sampled_rows_kernel<T>;
  // Dynamic + static shared memory past 48 KiB needs the opt-in, even when the dynamic part
  // alone fits (the default dynamic limit is 48 KiB minus the static arrays).
  if (T::kSmemBytes + T::kStaticSmemBytes > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(T::kSmemBytes));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid((p.num_q_blocks + p.q_blocks_per_cta - 1) / p.q_blocks_per_cta, p.num_kv_heads, p.batch);
  kernel<<<grid, T::kNumThreads, T::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename Element, int kHeadDim>
cudaError_t launch_hdim(const SampledRowsParams& p, cudaStream_t stream) {
  const int rows = p.q_blocks_per_cta * (p.num_q_heads / p.num_kv_heads) * p.rows;
  if (rows <= 16) return launch_tiles<Element, kHeadDim, 1>(p, stream);
  if (rows <= 32) return launch_tiles<Element, kHeadDim, 2>(p, stream);
  if (rows <= 64) return launch_tiles<Element, kHeadDim, 4>(p, stream);
  return launch_tiles<Element, kHeadDim, 8>(p, stream);
}

}  // namespace

cudaError_t run_score_sampled_rows(const SampledRowsParams& params, DType dtype, cudaStream_t stream) {
  if (params.batch == 0 || params.num_kv_heads == 0 || params.num_q_blocks == 0) return cudaSuccess;
  if (params.batch > kMaxGridYZ || params.num_kv_heads > kMaxGridYZ ||
      params.num_q_heads < params.num_kv_heads || params.num_q_heads % params.num_kv_heads != 0 ||
      params.rows < 1 || params.rows > kMaxSampledRows ||
      (params.num_q_heads / params.num_kv_heads) * params.rows > kMaxSampledRowsPerGroup ||
      params.num_queries > params.num_keys)
    return cudaErrorInvalidValue;
  SampledRowsParams p = params;
  p.q_blocks_per_cta = sampled_rows_q_blocks_per_cta(
      p.num_q_blocks, (p.num_q_heads / p.num_kv_heads) * p.rows, p.batch * p.num_kv_heads,
      current_device_sm_count(), requested_q_blocks_per_cta());
  if (dtype == DType::kBFloat16) {
    if (p.head_dim == 64) return launch_hdim<__nv_bfloat16, 64>(p, stream);
    if (p.head_dim == 128) return launch_hdim<__nv_bfloat16, 128>(p, stream);
  } else if (dtype == DType::kFloat16) {
    if (p.head_dim == 64) return launch_hdim<__half, 64>(p, stream);
    if (p.head_dim == 128) return launch_hdim<__half, 128>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace sketchwalk
