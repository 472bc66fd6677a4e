// update_block_sketch_, CUDA host wrapper (ATen): checks and params
// (csrc/checks/update_block_sketch.h), launch (csrc/cuda/update_block_sketch.cu).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "checks/update_block_sketch.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"

namespace sketchwalk {

void update_block_sketch_cuda(const at::Tensor& block_sketch, const at::Tensor& token_sketch,
                              int64_t num_tokens_before, int64_t block_size) {
  check_cuda(block_sketch, "update_block_sketch_", "block_sketch");
  check_update_block_sketch_args(block_sketch, token_sketch, num_tokens_before, block_size);
  const c10::cuda::CUDAGuard guard(block_sketch.device());
  check_launch(run_update_block_sketch(update_block_sketch_params(block_sketch, token_sketch,
                                                                  num_tokens_before, block_size),
                                       c10::cuda::getCurrentCUDAStream()),
               "update_block_sketch_");
}

}  // namespace sketchwalk
