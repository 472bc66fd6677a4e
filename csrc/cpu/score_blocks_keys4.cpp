// CPU versions of the keys4 decode ops (docs/spec.md section 7, docs/ops.md op 8):
// quantize_keys4_ writes 4-bit key rows by the rule of include/sketchwalk/keys4.h (the same
// float32 operations as the CUDA kernel, so the codes agree bit for bit); score_blocks_keys4
// computes each head's softmax over the dequantized keys in float64 and sums it per key block
// and kv group; select_blocks_keys4 applies the sink, window and quantile rule per row.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "ops.h"
#include "quantile.h"
#include "sketchwalk/block_index.h"
#include "sketchwalk/keys4.h"

namespace sketchwalk {

namespace {

constexpr int64_t kBlockSize = kIndexBlockSize;  // block_index.h

template <typename scalar_t>
void quantize_rows(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                   const int* seq_lens, const Keys4CacheShape& s) {
  const int64_t tokens = k.size(2), pairs = s.head_dim / 2;
  const scalar_t* kp = k.data_ptr<scalar_t>();
  uint8_t* cp = codes.data_ptr<uint8_t>();
  float* sp = scales.data_ptr<float>();
  at::parallel_for(0, s.batch * s.num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.num_kv_heads, g = bg % s.num_kv_heads;
      const int64_t first = (seq_lens != nullptr ? seq_lens[b] : tokens) - tokens;
      for (int64_t t = 0; t < tokens; ++t) {
        const scalar_t* x = kp + b * k.stride(0) + g * k.stride(1) + t * k.stride(2);
        float amax = 0.f;
        for (int64_t d = 0; d < s.head_dim; ++d) amax = std::fmax(amax, std::fabs(static_cast<float>(x[d])));
        const float scale = keys4_scale(amax);
        const int64_t pos = first + t;
        uint8_t* row = cp + b * codes.stride(0) + g * codes.stride(1) + pos * codes.stride(2);
        for (int64_t i = 0; i < pairs; ++i) {
          row[i] = static_cast<uint8_t>(keys4_nibble(static_cast<float>(x[2 * i]), scale) |
                                        (keys4_nibble(static_cast<float>(x[2 * i + 1]), scale) << 4));
        }
        sp[b * scales.stride(0) + g * scales.stride(1) + pos] = scale;
      }
    }
  });
}

template <typename scalar_t>
void score_rows(const at::Tensor& q, const at::Tensor& codes, const at::Tensor& scales,
                const int* seq_lens, const Keys4CacheShape& s, double scale, at::Tensor& mass) {
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
      const uint8_t* rows = cp + b * codes.stride(0) + g * codes.stride(1);
      const float* row_scales = sp + b * scales.stride(0) + g * scales.stride(1);
      std::fill(acc.begin(), acc.end(), 0.0);
      logits.assign(len, 0.0);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const scalar_t* qh = qp + b * q.stride(0) + h * q.stride(1);
        for (int64_t d = 0; d < s.head_dim; ++d) qd[d] = static_cast<double>(static_cast<float>(qh[d]));
        double mx = -std::numeric_limits<double>::infinity();
        bool nan = false;
        for (int64_t t = 0; t < len; ++t) {
          const uint8_t* row = rows + t * codes.stride(2);
          double dot = 0.0;
          for (int64_t i = 0; i < s.head_dim / 2; ++i) {
            dot += qd[2 * i] * static_cast<double>(static_cast<int>(row[i] & 15) - kKeys4Offset);
            dot += qd[2 * i + 1] * static_cast<double>(static_cast<int>(row[i] >> 4) - kKeys4Offset);
          }
          logits[t] = scale * static_cast<double>(row_scales[t]) * dot;
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

void quantize_keys4_cpu(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                        const std::optional<at::Tensor>& seq_lens, bool validate) {
  // Always validated on the CPU: reading the lengths costs no device sync.
  const Keys4CacheShape s = check_quantize_keys4_args(codes, scales, k, seq_lens, true);
  (void)validate;
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* sl_p = sl.defined() ? sl.data_ptr<int>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, k.scalar_type(), "quantize_keys4_", [&] {
    quantize_rows<scalar_t>(codes, scales, k, sl_p, s);
  });
}

at::Tensor score_blocks_keys4_cpu(const at::Tensor& q, const at::Tensor& codes,
                                  const at::Tensor& scales,
                                  const std::optional<at::Tensor>& seq_lens,
                                  std::optional<double> softmax_scale, bool validate) {
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, true);
  (void)validate;
  const double scale = softmax_scale_or_default(softmax_scale, s.head_dim);
  const int64_t width = (s.capacity + kBlockSize - 1) / kBlockSize;
  auto mass = at::zeros({s.batch, s.num_kv_heads, width}, q.options().dtype(at::kFloat));
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* sl_p = sl.defined() ? sl.data_ptr<int>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "score_blocks_keys4", [&] {
    score_rows<scalar_t>(q, codes, scales, sl_p, s, scale, mass);
  });
  return mass;
}

std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cpu(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate) {
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, true);
  (void)validate;
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  auto block_index = at::full({batch, heads, 1, width}, kBlockIndexPad, mass.options().dtype(at::kInt));
  auto num_selected = at::zeros({batch, heads, 1}, mass.options().dtype(at::kInt));
  const auto sl = seq_lens.has_value() ? seq_lens->contiguous() : at::Tensor();
  const int* sl_p = sl.defined() ? sl.data_ptr<int>() : nullptr;
  const float* mp = mass.data_ptr<float>();
  int* bi = block_index.data_ptr<int>();
  int* ns = num_selected.data_ptr<int>();
  const double q = 1.0 - keep_frac;
  at::parallel_for(0, batch * heads, 16, [&](int64_t begin, int64_t end) {
    std::vector<double> cand;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / heads;
      const int len = sl_p != nullptr ? sl_p[b] : static_cast<int>(width * kBlockSize);
      const Keys4Budget budget = keys4_budget(len, kBlockSize, window_frac, sink_frac);
      const int64_t n = std::min<int64_t>(budget.num_blocks, width);
      const int64_t lo = budget.sink_blocks, hi = n - budget.window_blocks;  // candidates [lo, hi)
      const float* m = mp + row * width;
      cand.clear();
      for (int64_t j = lo; j < hi; ++j) cand.push_back(static_cast<double>(m[j]));
      const double th = cpu::candidate_threshold(cand, q);  // NaN: the rule keeps nothing
      int count = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (j < lo || j >= hi || static_cast<double>(m[j]) > th) bi[row * width + count++] = static_cast<int>(j);
      }
      ns[row] = count;
    }
  });
  return {block_index, num_selected};
}

}  // namespace sketchwalk
