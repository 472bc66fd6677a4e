// sparse_prefill instantiation: bf16, head_dim 64 (one TU per dtype x head_dim so the
// build parallelizes; dispatch lives in sparse_prefill.cu).
#include "sketchwalk/sparse_prefill_sm80.cuh"

namespace sketchwalk {
template cudaError_t launch_sparse_prefill_hdim<__nv_bfloat16, 64>(const SparseAttentionParams&,
                                                              cudaStream_t);
}  // namespace sketchwalk
