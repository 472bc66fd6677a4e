// The CPU update_block_sketch_ kernel (params.h, UpdateBlockSketchParams), shared by the ATen op
// (csrc/cpu/update_block_sketch.cpp) and the stable-ABI one (csrc/stable/update_block_sketch.cpp):
// each coordinate's product, sum and quotient rounded to float32 one at a time, as the CUDA
// kernel's round-to-nearest intrinsics (csrc/cuda/update_block_sketch.cu): volatile stores keep
// the compiler from contracting them into an FMA, so both kernels agree bit for bit.
#pragma once

#include <cstdint>

#include "sketchwalk/params.h"

namespace sketchwalk {

inline void update_block_sketch_cpu_rows(const UpdateBlockSketchParams& p) {
  const float count = static_cast<float>(p.count);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.heads; ++h) {
      float* dst = p.block + b * p.block_batch_stride + h * p.block_head_stride;
      const float* tok = p.token + b * p.token_batch_stride + h * p.token_head_stride;
      for (int64_t d = 0; d < p.sketch_dim; ++d) {
        const float t = tok[d * p.token_dim_stride];
        float& v = dst[d * p.block_dim_stride];
        if (p.count == 0) {
          v = t;
        } else {
          const volatile float scaled = v * count;  // volatile: one rounding per operation
          const volatile float sum = scaled + t;
          v = sum / (count + 1.0f);
        }
      }
    }
  }
}

}  // namespace sketchwalk
