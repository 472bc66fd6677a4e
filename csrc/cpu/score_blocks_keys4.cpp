// score_blocks_keys4 on the CPU (docs/spec.md section 7, docs/ops.md section 9): each query
// head's softmax over the dequantized keys (include/sketchwalk/keys4.h) in float64, summed per
// key block and kv group.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "ops.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

namespace {

constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h

template <typename scalar_t>
void score_rows(const at::Tensor& q, const at::Tensor& codes, const at::Tensor& scales,
                const int* seq_lens, const int* page_table, int64_t page_table_stride,
                const Keys4CacheShape& s, double scale, at::Tensor& mass) {
  const int64_t num_q_heads = q.size(1), group = num_q_heads / s.num_kv_heads;
  const int64_t width = mass.size(2);
  const scalar_t* qp = q.data_ptr<scalar_t>();
  const uint8_t* cp = codes.data_ptr<uint8_t>();
  const float* sp = scales.data_ptr<float>();
  float* mp = mass.data_ptr<float>();
  at::parallel_for(0, s.batch * s.num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<double> logits, qd(s.head_dim), acc(width);
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.num_kv_heads, g = bg % s.num_kv_heads;
      const int64_t len = seq_lens != nullptr ? seq_lens[b] : s.capacity;
      // Token t of this (sequence, kv head): its batch row, or its page (keys4_slot).
      auto slot = [&](int64_t t) {
        return keys4_slot(page_table, page_table_stride, static_cast<int>(b), static_cast<int>(t));
      };
      std::fill(acc.begin(), acc.end(), 0.0);
      logits.assign(len, 0.0);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const scalar_t* qh = qp + b * q.stride(0) + h * q.stride(1);
        for (int64_t d = 0; d < s.head_dim; ++d) qd[d] = static_cast<double>(static_cast<float>(qh[d]));
        double mx = -std::numeric_limits<double>::infinity();
        bool nan = false;
        for (int64_t t = 0; t < len; ++t) {
          const Keys4Slot at = slot(t);
          const uint8_t* row = cp + at.outer * codes.stride(0) + g * codes.stride(1) +
                               at.slot * codes.stride(2);
          double dot = 0.0;
          for (int64_t i = 0; i < s.head_dim / 2; ++i) {
            dot += qd[2 * i] * static_cast<double>(static_cast<int>(row[i] & 15) - kKeys4Offset);
            dot += qd[2 * i + 1] * static_cast<double>(static_cast<int>(row[i] >> 4) - kKeys4Offset);
          }
          const float row_scale = sp[at.outer * scales.stride(0) + g * scales.stride(1) + at.slot];
          logits[t] = scale * static_cast<double>(row_scale) * dot;
          nan |= std::isnan(logits[t]);
          mx = std::fmax(mx, logits[t]);
        }
        if (nan) {  // one documented behaviour: a NaN logit makes the group's masses NaN
          std::fill(acc.begin(), acc.begin() + (len + kBlockSize - 1) / kBlockSize,
                    std::numeric_limits<double>::quiet_NaN());
          continue;
        }
        double total = 0.0;
        for (int64_t t = 0; t < len; ++t) total += std::exp(logits[t] - mx);
        for (int64_t t = 0; t < len; ++t) acc[t / kBlockSize] += std::exp(logits[t] - mx) / total;
      }
      float* out = mp + bg * width;
      for (int64_t j = 0; j < width; ++j) out[j] = static_cast<float>(acc[j]);
    }
  });
}

}  // namespace

at::Tensor score_blocks_keys4_cpu(const at::Tensor& q, const at::Tensor& codes,
                                  const at::Tensor& scales,
                                  const std::optional<at::Tensor>& seq_lens,
                                  std::optional<double> softmax_scale, bool validate,
                                  const std::optional<at::Tensor>& page_table) {
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, true, page_table);
  (void)validate;
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  const int64_t width = (s.capacity + kBlockSize - 1) / kBlockSize;
  auto mass = at::zeros({s.batch, s.num_kv_heads, width}, q.options().dtype(at::kFloat));
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* sl_p = sl.defined() ? sl.data_ptr<int>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "score_blocks_keys4", [&] {
    score_rows<scalar_t>(q, codes, scales, sl_p, page_table.has_value() ? page_table->data_ptr<int>() : nullptr,
                         page_table.has_value() ? page_table->stride(0) : 0, s, scale, mass);
  });
  return mass;
}

}  // namespace sketchwalk
