// The CPU update_block_matrix_ kernel on raw pointers, shared by the ATen op
// (csrc/cpu/update_block_matrix.cpp) and the stable-ABI one (csrc/stable/update_block_matrix.cpp):
// the decode-time blend of the transition matrix with the new block scores r, in the authors'
// order (docs/ops.md op 7): row blend + row normalize, column blend, then every row
// renormalized. Sums in fp64, clamped below at 1e-12.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sketchwalk {

struct UpdateBlockMatrixCpuArgs {
  float* transition;  // [batch, n, n], last dim contiguous, updated in place
  const float* r;     // [batch, n], contiguous
  int64_t batch_stride, row_stride;
  int64_t batch, n, num_keys, block_size;
};

// The kernel's arguments from the op's tensors (at::Tensor or torch::stable::Tensor); r_contig
// is r made contiguous.
template <typename T>
UpdateBlockMatrixCpuArgs update_block_matrix_cpu_args(const T& transition, const T& r_contig,
                                                      int64_t num_keys, int64_t block_size) {
  UpdateBlockMatrixCpuArgs a{};
  a.transition = transition.template mutable_data_ptr<float>();
  a.r = r_contig.template const_data_ptr<float>();
  a.batch_stride = transition.stride(0), a.row_stride = transition.stride(1);
  a.batch = transition.size(0), a.n = transition.size(1);
  a.num_keys = num_keys, a.block_size = block_size;
  return a;
}

// parallel_for(begin, end, grain, fn(begin, end)): at::parallel_for or torch::stable's.
template <typename ParallelFor>
void update_block_matrix_cpu_rows(const UpdateBlockMatrixCpuArgs& a, ParallelFor&& parallel_for) {
  constexpr double kMinRowSum = 1e-12;
  const int64_t n = a.n, c = n - 1;
  const int64_t step_in_block = (a.num_keys - 1) % a.block_size;
  const double alpha = 1.0 / static_cast<double>(step_in_block + 1);
  for (int64_t b = 0; b < a.batch; ++b) {
    float* A = a.transition + b * a.batch_stride;
    const float* rb = a.r + b * n;
    // 1. row c
    float* row_c = A + c * a.row_stride;
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
    parallel_for(int64_t{0}, n, int64_t{64}, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float* row = A + i * a.row_stride;
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
