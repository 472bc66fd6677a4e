// select_blocks' dense_rows_in_budget rule (docs/ops.md op 4, docs/spec.md section 13), the one
// definition for the CPU kernel (csrc/cpu/select_blocks_rows.h) and the CUDA one
// (csrc/cuda/select_blocks.cu); tests/reference.py::select_blocks is its float64 reference.
//
// A flagged dense row keeps all C_i candidates of its row where the quantile rule would keep
// about keep * C_i, so it adds (1 - keep) * C_i blocks. With the rule on, the sequence's other
// rows pay for them: over the rows i < seq_q_blocks - dense_last_q_blocks of one sequence,
// F = sum of C_i over the flagged rows and U = over the others, and the others keep
//
//     keep' = max(0, keep - (1 - keep) * (F / U))        (keep when U == 0 or F == 0)
//
// of their candidates, so the expected count of kept candidate blocks stays that of the plain
// rule (the window, sink and trailing dense rows are not candidates and do not move), unless
// keep' reaches 0: then the rest of the debt is added to the density. Every
// operation is one correctly rounded IEEE double operation, written so no compiler contracts
// them (an FMA would round once, not twice), so the kernels match the reference bit for bit.
#pragma once

#include <cstdint>

#include "sketchwalk/block_index.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

// C_i: query block i's candidates [sb, lim - wb] (section 4), given the sequence's window
// blocks wb and sink blocks sb.
SW_HOST_DEVICE int64_t select_candidate_count(int q_block_idx, int num_queries, int num_keys,
                                              int block_size, int window_blocks,
                                              int sink_blocks) {
  const int64_t lim = causal_limit_block(q_block_idx, num_queries, num_keys, block_size);
  const int64_t count = lim - window_blocks - sink_blocks + 1;  // int64: wb near 2^31
  return count > 0 ? count : 0;
}

// keep' above, from F (flagged) and U (unflagged) candidate counts.
SW_HOST_DEVICE double budgeted_keep_frac(double keep, int64_t flagged, int64_t unflagged) {
  if (flagged == 0 || unflagged == 0) return keep;
  const double ratio = static_cast<double>(flagged) / static_cast<double>(unflagged);
#ifdef __CUDA_ARCH__
  const double kept = __dsub_rn(keep, __dmul_rn(1.0 - keep, ratio));  // _rn: never fused
#else
  const volatile double taken = (1.0 - keep) * ratio;  // volatile: rounded, never fused
  const double kept = keep - taken;
#endif
  return kept > 0.0 ? kept : 0.0;
}

}  // namespace sketchwalk
