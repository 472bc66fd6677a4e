// Online-softmax helpers in the log2 domain shared by the sparse attention kernels.
// Scores enter pre-multiplied by softmax_scale * log2(e), so p = exp2(s - m).
// -inf cases: a state that has seen no visible key has m = -inf and l = 0; rescaling uses
// `max_or_zero(m)` as the subtrahend so that exp2(-inf - -inf) = NaN never happens, and a
// final l == 0 means "no visible key": output 0 and log-sum-exp -inf (docs/ops.md).
#pragma once

#include <cmath>

#include "sketchwalk/common.h"

namespace sketchwalk {

constexpr float kLn2 = 0.6931471805599453f;  // ln(2): ln(x) == log2(x) * kLn2

/// \brief The max to subtract: 0 when nothing is visible yet (m == -inf), else m.
SW_DEVICE float max_or_zero(float m) { return m == -INFINITY ? 0.f : m; }

/// \brief Merge weight of a partial state (m, l) against the merged max `m_total`
/// (log2 domain); 0 for an empty partial.
SW_DEVICE float merge_weight(float m, float m_total) {
  return m == -INFINITY ? 0.f : exp2f(m - m_total);
}

}  // namespace sketchwalk
