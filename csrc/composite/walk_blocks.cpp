// walk_blocks, one implementation for every device: the damped walk as `degree` batched GEMMs
// (at::baddbmm: cuBLAS/BLAS, which is the right tool for it).
// Checks: csrc/checks/walk_blocks.h.
#include <ATen/ATen.h>

#include "checks.h"
#include "checks/walk_blocks.h"
#include "ops.h"

namespace sketchwalk {

at::Tensor walk_blocks(const at::Tensor& base, const at::Tensor& transition,
                       const std::optional<at::Tensor>& init, int64_t degree, double damping) {
  check_walk_blocks_args(base, transition, init, degree, damping);
  at::Tensor state = init.has_value() ? init->clone(at::MemoryFormat::Contiguous)
                                      : base.clone(at::MemoryFormat::Contiguous);
  for (int64_t step = 0; step < degree; ++step) {
    state = at::baddbmm(base, state, transition, /*beta=*/1.0 - damping, /*alpha=*/damping);
  }
  return state;
}

}  // namespace sketchwalk
