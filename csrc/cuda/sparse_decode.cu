// run_sparse_decode / sparse_decode_workspace_floats: split-count planning and dispatch on
// dtype x head_dim for the tensor-core split kernel of sparse_decode_mma.cuh (and the combine
// kernel of sparse_decode.cuh).
#include "launch.h"
#include "sketchwalk/sparse_decode.cuh"
#include "sketchwalk/sparse_decode_mma.cuh"

namespace sketchwalk {
namespace {

int plan_splits(const SparseAttentionParams& params) {
  const int group = params.num_q_heads / params.num_kv_heads;
  const int head_chunks = ceil_div(group, SparseDecodeMmaTraits<64, __half>::kRows);
  return decode_num_splits(params.batch, params.num_kv_heads, head_chunks, params.max_selected,
                           current_device_sm_count());
}

bool decode_supported(const SparseAttentionParams& params) {
  return params.block_size == 64 && params.num_queries == 1 && params.num_q_blocks == 1 &&
         params.num_kv_heads > 0 && params.num_q_heads % params.num_kv_heads == 0 &&
         (params.index_heads == 1 || params.index_heads == params.num_kv_heads) &&
         is_attention_head_dim(params.head_dim) && params.num_keys >= 1;
}

}  // namespace

// Floats the caller allocates for run_sparse_decode (same params, same device).
size_t sparse_decode_workspace_floats(const SparseAttentionParams& params) {
  if (!decode_supported(params)) return 0;
  return decode_workspace_floats(params.batch, params.num_q_heads, plan_splits(params),
                                 params.head_dim);
}

// Supported: fp16/bf16, head_dim {64, 128}, block_size 64, num_queries 1; else
// cudaErrorInvalidValue (the host wrapper checks first and names the value).
cudaError_t run_sparse_decode(const SparseAttentionParams& params, DType dtype, float* workspace,
                              cudaStream_t stream) {
  if (!decode_supported(params)) return cudaErrorInvalidValue;
  if (params.batch == 0 || params.num_q_heads == 0) return cudaSuccess;
  const int splits = plan_splits(params);
  if (dtype == DType::kBFloat16) {
    return params.head_dim == 64 ? launch_sparse_decode_mma<__nv_bfloat16, 64>(params, workspace, splits, stream)
                                 : launch_sparse_decode_mma<__nv_bfloat16, 128>(params, workspace, splits, stream);
  }
  if (dtype == DType::kFloat16) {
    return params.head_dim == 64 ? launch_sparse_decode_mma<__half, 64>(params, workspace, splits, stream)
                                 : launch_sparse_decode_mma<__half, 128>(params, workspace, splits, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace sketchwalk
