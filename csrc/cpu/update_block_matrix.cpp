// CPU update_block_matrix_: the decode-time blend of the transition matrix with the new
// block scores r, in the authors' order (docs/ops.md op 7): row blend + row normalize,
// column blend, then every row renormalized. Sums in fp64, clamped below at 1e-12.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "checks.h"
#include "ops.h"

namespace sketchwalk {

namespace {
constexpr double kMinRowSum = 1e-12;
}

void update_block_matrix_cpu(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                             int64_t block_size) {
  check_update_block_matrix_args(transition, r, num_keys, block_size);
  const int64_t batch = transition.size(0), n = transition.size(1);
  const int64_t c = n - 1;
  const int64_t step_in_block = (num_keys - 1) % block_size;
  const double alpha = 1.0 / static_cast<double>(step_in_block + 1);
  float* ap = transition.data_ptr<float>();
  const int64_t a_b = transition.stride(0), a_r = transition.stride(1);
  const auto r_c = r.contiguous();
  const float* rp = r_c.data_ptr<float>();
  for (int64_t b = 0; b < batch; ++b) {
    float* A = ap + b * a_b;
    const float* rb = rp + b * n;
    // 1. row c
    float* row_c = A + c * a_r;
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      // alpha == 1 (a new block) assigns: the buffer may hold garbage there, and 0 * NaN is NaN.
      row_c[j] = step_in_block == 0 ? rb[j]
                                    : static_cast<float>((1.0 - alpha) * row_c[j] + alpha * rb[j]);
      sum += row_c[j];
    }
    const double inv = 1.0 / std::max(sum, kMinRowSum);
    for (int64_t j = 0; j < n; ++j) row_c[j] = static_cast<float>(row_c[j] * inv);
    // 2. column c, 3. every row renormalized
    at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float* row = A + i * a_r;
        row[c] = step_in_block == 0 ? rb[i]
                                    : static_cast<float>((1.0 - alpha) * row[c] + alpha * rb[i]);
        double s = 0.0;
        for (int64_t j = 0; j < n; ++j) s += row[j];
        const double inv_s = 1.0 / std::max(s, kMinRowSum);
        for (int64_t j = 0; j < n; ++j) row[j] = static_cast<float>(row[j] * inv_s);
      }
    });
  }
}

}  // namespace sketchwalk
