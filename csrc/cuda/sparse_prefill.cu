// run_sparse_prefill: checks what the CUDA path supports and dispatches on arch, then dtype x
// head_dim, to the instantiations in sparse_prefill_sm80_{fp16,bf16}_hdim{64,128}.cu (mma.sync)
// and sparse_prefill_sm90_{fp16,bf16}_hdim{64,128}.cu (sm90a: TMA + wgmma).
#include <cstdlib>
#include <cstring>

#include "launch.h"
#include "sketchwalk/sparse_prefill_sm80.cuh"
#include "sketchwalk/sparse_prefill_sm90.cuh"

namespace sketchwalk {

extern template cudaError_t launch_sparse_prefill_hdim<__half, 64>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_hdim<__half, 128>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_hdim<__nv_bfloat16, 64>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_hdim<__nv_bfloat16, 128>(const SparseAttentionParams&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_sm90<__half, 64>(const SparseAttentionParams&, const PrefillTensorMaps&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_sm90<__half, 128>(const SparseAttentionParams&, const PrefillTensorMaps&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_sm90<__nv_bfloat16, 64>(const SparseAttentionParams&, const PrefillTensorMaps&, cudaStream_t);
extern template cudaError_t launch_sparse_prefill_sm90<__nv_bfloat16, 128>(const SparseAttentionParams&, const PrefillTensorMaps&, cudaStream_t);

namespace {

// SKETCHWALK_PREFILL_ARCH (read per call; for benchmarks and tests): "sm80" runs the mma.sync
// kernel on any device; "sm90" demands the Hopper kernel (cudaErrorNotSupported where it cannot
// run); unset or anything else: the Hopper kernel where it can run, else sm80.
enum class ArchChoice { kAuto, kSm80, kSm90 };

ArchChoice arch_choice() {
  const char* env = std::getenv("SKETCHWALK_PREFILL_ARCH");
  if (env == nullptr) return ArchChoice::kAuto;
  if (std::strcmp(env, "sm80") == 0) return ArchChoice::kSm80;
  if (std::strcmp(env, "sm90") == 0) return ArchChoice::kSm90;
  return ArchChoice::kAuto;
}

// The Hopper kernel packs 2 query heads of one KV head per CTA: the group size must be even.
cudaError_t run_sm90(const SparseAttentionParams& params, DType dtype, bool bf16,
                     cudaStream_t stream, bool* ran) {
  *ran = false;
  const int group = params.num_q_heads / params.num_kv_heads;
  PrefillTensorMaps maps;
  if (group % 2 != 0 || !sparse_prefill_sm90_available() ||
      !make_prefill_tensor_maps(params, dtype, &maps)) {
    return cudaSuccess;
  }
  *ran = true;
  if (params.head_dim == 64) {
    return bf16 ? launch_sparse_prefill_sm90<__nv_bfloat16, 64>(params, maps, stream)
                : launch_sparse_prefill_sm90<__half, 64>(params, maps, stream);
  }
  return bf16 ? launch_sparse_prefill_sm90<__nv_bfloat16, 128>(params, maps, stream)
              : launch_sparse_prefill_sm90<__half, 128>(params, maps, stream);
}

}  // namespace

// Supported: dtype {fp16, bf16}, head_dim {64, 128}, block_size 64 (the CTA's query tile
// and key tile are one index block each). Anything else returns cudaErrorInvalidValue;
// the host wrapper checks first and names the value.
cudaError_t run_sparse_prefill(const SparseAttentionParams& params, DType dtype,
                               cudaStream_t stream) {
  if (params.block_size != 64 || params.num_kv_heads <= 0 ||
      params.num_q_heads % params.num_kv_heads != 0 ||
      (params.index_heads != 1 && params.index_heads != params.num_kv_heads) ||
      params.num_queries <= 0 ||
      // Dense: one length pair for every sequence. Ragged: per sequence (SeqInfo::make),
      // checked by the host wrapper with validate.
      (params.cu_seqlens_q == nullptr && (params.num_queries > params.num_keys ||
                                          params.num_q_blocks != ceil_div(params.num_queries, 64)))) {
    return cudaErrorInvalidValue;
  }
  // A ragged batch reads its keys from cu_seqlens_k or, paged, from its pages with their counts.
  if (params.cu_seqlens_q != nullptr &&
      ((params.cu_seqlens_k == nullptr && params.page_table == nullptr) ||
       (params.page_table != nullptr && params.seq_lens == nullptr) || params.num_q_blocks < 1)) {
    return cudaErrorInvalidValue;
  }
  if (params.batch == 0 || params.num_q_heads == 0) return cudaSuccess;
  const bool bf16 = dtype == DType::kBFloat16;
  if (dtype != DType::kFloat16 && !bf16) return cudaErrorInvalidValue;
  if (params.head_dim != 64 && params.head_dim != 128) return cudaErrorInvalidValue;
  const ArchChoice choice = arch_choice();
  if (choice != ArchChoice::kSm80) {
    bool ran = false;
    const cudaError_t err = run_sm90(params, dtype, bf16, stream, &ran);
    if (ran) return err;
    if (choice == ArchChoice::kSm90) return cudaErrorNotSupported;
  }
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
