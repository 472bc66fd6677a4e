// The CPU hadamard_sketch kernel on raw pointers, shared by the ATen ops
// (csrc/cpu/hadamard_sketch.cpp) and the stable-ABI ones (csrc/stable/hadamard_sketch.cpp):
// block mean-pool -> zero-pad -> sign flip -> unnormalized FWHT -> gather coords -> scale
// 1/sqrt(m), fp32 arithmetic, one (batch, head, block) per task. With cu_seqlens (packed
// sequences, hadamard_sketch_varlen) batch row b's tokens are [cu[b], cu[b + 1]) and blocks past
// its end are zeros.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "checks/hadamard_sketch.h"

namespace sketchwalk {

namespace detail {

// In-place unnormalized Walsh-Hadamard transform of a power-of-two length vector.
inline void fwht_inplace(float* v, int n) {
  for (int h = 1; h < n; h <<= 1) {
    for (int i = 0; i < n; i += 2 * h) {
      for (int j = i; j < i + h; ++j) {
        const float a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
}

}  // namespace detail

// x's element (b, h, t, d) at x + b * sb + h * sh + t * st + d; cu: the packed sequences'
// offsets or nullptr; signs [sketch_pow2] and coords [sketch_dim] contiguous; out contiguous
// [batch, heads, num_blocks, sketch_dim]. parallel_for(begin, end, grain, fn(begin, end)):
// at::parallel_for or torch::stable's.
template <typename scalar_t, typename ParallelFor>
void hadamard_sketch_cpu_rows(const scalar_t* x, int64_t sb, int64_t sh, int64_t st,
                              const int* cu, const float* signs, const int64_t* coords,
                              const SketchShape& s, float* out, ParallelFor&& parallel_for) {
  const int n = static_cast<int>(s.sketch_pow2), m = static_cast<int>(s.sketch_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(m));
  const int64_t tasks = s.batch * s.heads * s.num_blocks;
  parallel_for(int64_t{0}, tasks, int64_t{16}, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(n);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t blk = task % s.num_blocks;
      const int64_t h = (task / s.num_blocks) % s.heads;
      const int64_t b = task / (s.num_blocks * s.heads);
      const int64_t seq0 = cu != nullptr ? cu[b] : 0;
      const int64_t seq_tokens = cu != nullptr ? cu[b + 1] - seq0 : s.tokens;
      float* dst = out + task * m;
      const int64_t t0 = blk * s.block_size;
      if (t0 >= seq_tokens) {
        std::fill(dst, dst + m, 0.0f);
        continue;
      }
      const int64_t t1 = std::min(t0 + s.block_size, seq_tokens);
      std::fill(buf.begin(), buf.end(), 0.0f);
      for (int64_t t = t0; t < t1; ++t) {
        const scalar_t* row = x + b * sb + h * sh + (seq0 + t) * st;
        for (int64_t d = 0; d < s.head_dim; ++d) buf[d] += static_cast<float>(row[d]);
      }
      const float inv_count = 1.0f / static_cast<float>(t1 - t0);
      for (int d = 0; d < n; ++d) buf[d] *= inv_count * signs[d];
      detail::fwht_inplace(buf.data(), n);
      for (int c = 0; c < m; ++c) dst[c] = buf[coords[c]] * scale;
    }
  });
}

}  // namespace sketchwalk
