// score_blocks_sampled_rows, CUDA: launches the tensor-core scorer of
// include/sketchwalk/sampled_rows_score.cuh with dispatch on dtype x head_dim x m16 tiles
// (the group's query heads x sampled rows, rounded up to 1, 2, 4 or 8 tiles). Kernel-only.
#include "launch.h"
#include "sketchwalk/sampled_rows_score.cuh"

namespace sketchwalk {
namespace {

template <typename Element, int kHeadDim, int kMTiles>
cudaError_t launch_tiles(const SampledRowsParams& p, cudaStream_t stream) {
  using T = sampled_rows::Traits<kHeadDim, kMTiles, Element>;
  auto* kernel = sampled_rows::sampled_rows_kernel<T>;
  if (T::kSmemBytes > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(T::kSmemBytes));
    if (err != cudaSuccess) return err;
  }
  const dim3 grid(p.num_q_blocks, p.num_kv_heads, p.batch);
  kernel<<<grid, T::kNumThreads, T::kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

template <typename Element, int kHeadDim>
cudaError_t launch_hdim(const SampledRowsParams& p, cudaStream_t stream) {
  const int rows = (p.num_q_heads / p.num_kv_heads) * p.rows;
  if (rows <= 16) return launch_tiles<Element, kHeadDim, 1>(p, stream);
  if (rows <= 32) return launch_tiles<Element, kHeadDim, 2>(p, stream);
  if (rows <= 64) return launch_tiles<Element, kHeadDim, 4>(p, stream);
  return launch_tiles<Element, kHeadDim, 8>(p, stream);
}

}  // namespace

cudaError_t run_score_sampled_rows(const SampledRowsParams& p, DType dtype, cudaStream_t stream) {
  if (p.batch == 0 || p.num_kv_heads == 0 || p.num_q_blocks == 0) return cudaSuccess;
  if (p.batch > kMaxGridYZ || p.num_kv_heads > kMaxGridYZ || p.num_q_heads % p.num_kv_heads != 0 ||
      p.rows < 1 || p.rows > kMaxSampledRows ||
      (p.num_q_heads / p.num_kv_heads) * p.rows > kMaxSampledRowsPerGroup ||
      p.num_queries > p.num_keys)
    return cudaErrorInvalidValue;
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
