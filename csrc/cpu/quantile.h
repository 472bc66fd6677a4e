// The keep rule's threshold on the CPU, shared by select_blocks and select_blocks_keys4:
// torch.quantile(values, q, interpolation='linear') in float64, NaN when there is no
// candidate or a candidate is NaN (as torch.quantile; a NaN threshold keeps nothing, the
// same rule as the CUDA kernels' include/sketchwalk/topk.cuh).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace sketchwalk::cpu {

inline double candidate_threshold(std::vector<double>& values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  for (double v : values) {
    if (std::isnan(v)) return std::numeric_limits<double>::quiet_NaN();
  }
  std::sort(values.begin(), values.end());
  // volatile: each product rounded on its own, never fused into an fma by a compiler that
  // contracts (an FMA target), so thresholds match the reference bit for bit.
  const volatile double pos = q * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double weight = pos - static_cast<double>(lo);
  // torch.lerp's two-sided form, so thresholds match the reference bit for bit.
  const double a = values[lo], b = values[hi];
  if (weight < 0.5) {
    const volatile double step = weight * (b - a);
    return a + step;
  }
  const volatile double step = (b - a) * (1.0 - weight);
  return b - step;
}

}  // namespace sketchwalk::cpu
