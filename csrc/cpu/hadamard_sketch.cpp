// CPU hadamard_sketch: block mean-pool -> zero-pad -> sign flip -> unnormalized FWHT ->
// gather coords -> scale 1/sqrt(m). fp32 arithmetic; one (batch, head, block) per task.
// hadamard_sketch_varlen: the same per (sequence, head, block) of packed tokens.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

namespace {

// In-place unnormalized Walsh-Hadamard transform of a power-of-two length vector.
void fwht_inplace(float* v, int n) {
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

// x's element (b, h, t, d) at b * sb + h * sh + t * st + d; with cu (packed sequences) batch
// row b's tokens are t in [cu[b], cu[b + 1]) and blocks past its end are zeros.
template <typename T>
void sketch_blocks(const T* xp, int64_t sb, int64_t sh, int64_t st, const int* cu,
                   const float* signs, const int64_t* coords, const SketchShape& s, float* out) {
  const int n = static_cast<int>(s.sketch_pow2), m = static_cast<int>(s.sketch_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(m));
  const int64_t tasks = s.batch * s.heads * s.num_blocks;
  at::parallel_for(0, tasks, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(n);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t blk = task % s.num_blocks;
      const int64_t h = (task / s.num_blocks) % s.heads;
      const int64_t b = task / (s.num_blocks * s.heads);
      const int64_t seq0 = cu != nullptr ? cu[b] : 0;
      const int64_t seq_tokens = cu != nullptr ? cu[b + 1] - seq0 : s.tokens;
      float* dst = out + task * m;  // out is contiguous [batch, heads, num_blocks, m]
      const int64_t t0 = blk * s.block_size;
      if (t0 >= seq_tokens) {
        std::fill(dst, dst + m, 0.0f);
        continue;
      }
      const int64_t t1 = std::min(t0 + s.block_size, seq_tokens);
      std::fill(buf.begin(), buf.end(), 0.0f);
      for (int64_t t = t0; t < t1; ++t) {
        const T* row = xp + b * sb + h * sh + (seq0 + t) * st;
        for (int64_t d = 0; d < s.head_dim; ++d) buf[d] += static_cast<float>(row[d]);
      }
      const float inv_count = 1.0f / static_cast<float>(t1 - t0);
      for (int d = 0; d < n; ++d) buf[d] *= inv_count * signs[d];
      fwht_inplace(buf.data(), n);
      for (int c = 0; c < m; ++c) dst[c] = buf[coords[c]] * scale;
    }
  });
}

// Dispatch on x's dtype; see sketch_blocks for the strides.
at::Tensor sketch_cpu(const at::Tensor& x, int64_t sb, int64_t sh, int64_t st, const int* cu,
                      const at::Tensor& signs, const at::Tensor& coords, const SketchShape& s) {
  auto out = at::empty({s.batch, s.heads, s.num_blocks, s.sketch_dim}, x.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  const auto signs_c = signs.contiguous();
  const auto coords_c = coords.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "hadamard_sketch_cpu", [&] {
    sketch_blocks<scalar_t>(x.data_ptr<scalar_t>(), sb, sh, st, cu, signs_c.data_ptr<float>(),
                            coords_c.data_ptr<int64_t>(), s, out.data_ptr<float>());
  });
  return out;
}

}  // namespace

at::Tensor hadamard_sketch_cpu(const at::Tensor& x, const at::Tensor& signs,
                               const at::Tensor& coords, int64_t block_size, bool validate) {
  // Always validated on the CPU (no device sync to save): validate=false is CUDA's trusted path.
  (void)validate;
  const SketchShape s = check_hadamard_sketch_args(x, signs, coords, block_size, true);
  return sketch_cpu(x, x.stride(0), x.stride(1), x.stride(2), nullptr, signs, coords, s);
}

at::Tensor hadamard_sketch_varlen_cpu(const at::Tensor& x, const at::Tensor& signs,
                                      const at::Tensor& coords, int64_t block_size,
                                      const at::Tensor& cu_seqlens, int64_t max_blocks,
                                      bool validate) {
  (void)validate;  // always validated on the CPU, as hadamard_sketch
  const SketchShape s = check_hadamard_sketch_varlen_args(x, signs, coords, block_size,
                                                          cu_seqlens, max_blocks, true);
  const auto cu = cu_seqlens.contiguous();
  return sketch_cpu(x, 0, x.stride(1), x.stride(0), cu.data_ptr<int>(), signs, coords, s);
}

}  // namespace sketchwalk
