// Host side of the sm90 prefill (include/sketchwalk/sparse_prefill_sm90.cuh): the TMA tensor
// maps of Q, K and V, and whether this build and device can run the kernel. Instantiations live
// in sparse_prefill_sm90_{fp16,bf16}_hdim{64,128}.cu; dispatch in sparse_prefill.cu.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "sketchwalk/sparse_prefill_sm90.cuh"

namespace sketchwalk {
namespace {

// cuTensorMapEncodeTiled through the runtime's driver entry point (no link to libcuda).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault,
                                         &status) != cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(ptr);
  }();
  return fn;
}

// [batch, heads, tokens, head_dim] with element strides -> a 4-D map (head_dim, tokens, heads,
// batch), box (64 elements = 128 bytes, 64 tokens, 1, 1), 128-byte swizzle, zero fill outside.
bool encode(CUtensorMap* map, const void* base, CUtensorMapDataType type, int head_dim, int tokens,
            int heads, int batch, int64_t token_stride, int64_t head_stride, int64_t batch_stride) {
  auto fn = tensor_map_encoder();
  if (fn == nullptr) return false;
  constexpr int64_t kElemBytes = 2;
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(tokens),
                              static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(token_stride * kElemBytes),
                                 static_cast<cuuint64_t>(head_stride * kElemBytes),
                                 static_cast<cuuint64_t>(batch_stride * kElemBytes)};
  const cuuint32_t box[4] = {64, 64, 1, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  return fn(map, type, 4, const_cast<void*>(base), dims, strides, box, elem_strides,
            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
            CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

bool make_prefill_tensor_maps(const SparseAttentionParams& p, DType dtype, PrefillTensorMaps* maps) {
  if (dtype != DType::kFloat16 && dtype != DType::kBFloat16) return false;
  const auto type = dtype == DType::kBFloat16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                              : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  // Packed ragged tokens: one outer slice spanning all of them (its stride is never stepped).
  // A paged cache: the pool as one slice of num_pages x 64 token rows (k_batch_stride steps
  // pages), so its pages must follow each other at 64 token strides; else the sm80 kernel.
  const bool paged = p.page_table != nullptr;
  if (paged && (p.k_batch_stride != kIndexBlockSize * p.k_token_stride ||
                p.v_batch_stride != kIndexBlockSize * p.v_token_stride)) {
    return false;
  }
  const bool packed_q = p.cu_seqlens_q != nullptr, packed_k = p.cu_seqlens_k != nullptr || paged;
  const int q_outer = packed_q ? 1 : p.batch, k_outer = packed_k ? 1 : p.batch;
  auto outer_stride = [](bool packed, int64_t batch_stride, int64_t token_stride, int tokens) {
    return packed ? token_stride * tokens : batch_stride;
  };
  return encode(&maps->q, p.q, type, p.head_dim, p.num_queries, p.num_q_heads, q_outer,
                p.q_token_stride, p.q_head_stride,
                outer_stride(packed_q, p.q_batch_stride, p.q_token_stride, p.num_queries)) &&
         encode(&maps->k, p.k, type, p.head_dim, p.num_keys, p.num_kv_heads, k_outer,
                p.k_token_stride, p.k_head_stride,
                outer_stride(packed_k, p.k_batch_stride, p.k_token_stride, p.num_keys)) &&
         encode(&maps->v, p.v, type, p.head_dim, p.num_keys, p.num_kv_heads, k_outer,
                p.v_token_stride, p.v_head_stride,
                outer_stride(packed_k, p.v_batch_stride, p.v_token_stride, p.num_keys));
}

bool sparse_prefill_sm90_available() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      major != 9) {
    return false;
  }
  // The kernel body exists only in sm_90a code (CMakeLists.txt defines SKETCHWALK_HAS_SM90A
  // when SKETCHWALK_CUDA_ARCHS holds 9.0a); a plain sm_90 build holds an empty kernel.
#if defined(SKETCHWALK_HAS_SM90A)
  return true;
#else
  return false;
#endif
}

}  // namespace sketchwalk
