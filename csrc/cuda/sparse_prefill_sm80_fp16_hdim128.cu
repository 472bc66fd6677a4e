// sparse_prefill instantiation: fp16, head_dim 128 (one TU per dtype x head_dim so the
// build parallelizes; dispatch lives in sparse_prefill.cu).
#include "sketchwalk/sparse_prefill_sm80.cuh"

namespace sketchwalk {
template cudaError_t launch_sparse_prefill_hdim<__half, 128>(const SparseAttentionParams&,
                                                              cudaStream_t);
}  // namespace sketchwalk
