// run_sparse_prefill: checks what the CUDA path supports and dispatches on dtype x head_dim
// to the instantiations in sparse_prefill_{fp16,bf16}_hdim{64,128}.cu.
#include "launch.h"
#include "sketchwalk/sparse_prefill.cuh"

namespace sketchwalk {

extern template cudaError_t launch_sparse_prefill_hdim<__half, 64>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_hdim<__half, 128>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_hdim<__nv_bfloat16, 64>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_hdim<__nv_bfloat16, 128>(const SparseAttentionParams&, cudaStream_t);

// Supported: dtype {fp16, bf16}, head_dim {64, 128}, block_size 64 (the CTA's query tile
// and key tile are one index block each). Anything else returns cudaErrorInvalidValue;
// the host wrapper checks first and names the value.
cudaError_t run_sparse_prefill(const SparseAttentionParams& params, DType dtype,
                               cudaStream_t stream) {
  if (params.block_size != 64 || params.num_kv_heads <= 0 ||
      params.num_q_heads % params.num_kv_heads != 0 ||
      (params.index_heads != 1 && params.index_heads != params.num_kv_heads) ||
      params.num_queries > params.num_keys || params.num_queries <= 0 ||
      params.num_q_blocks != ceil_div(params.num_queries, 64)) {
    return cudaErrorInvalidValue;
  }
  if (params.batch == 0 || params.num_q_heads == 0) return cudaSuccess;
  const bool bf16 = dtype == DType::kBFloat16;
  if (dtype != DType::kFloat16 && !bf16) return cudaErrorInvalidValue;
  switch (params.head_dim) {
    case 64:
      return bf16 ? launch_sparse_prefill_hdim<__nv_bfloat16, 64>(params, stream)
                  : launch_sparse_prefill_hdim<__half, 64>(params, stream);
    case 128:
      return bf16 ? launch_sparse_prefill_hdim<__nv_bfloat16, 128>(params, stream)
                  : launch_sparse_prefill_hdim<__half, 128>(params, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace sketchwalk
