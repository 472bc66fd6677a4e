// sparse_prefill sm90 instantiation: bf16, head_dim 64 (one TU per dtype x head_dim so the
// build parallelizes; dispatch lives in sparse_prefill.cu).
#include "sketchwalk/sparse_prefill_sm90.cuh"

namespace sketchwalk {
template cudaError_t launch_sparse_prefill_sm90<__nv_bfloat16, 64>(const SparseAttentionParams&,
                                                          const PrefillTensorMaps&, cudaStream_t);
}  // namespace sketchwalk
