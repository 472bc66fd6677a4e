// CUDA host wrappers of the keys4 decode ops: check (csrc/checks/<op>.cpp), fill the params
// of include/sketchwalk/params.h, launch on the current stream (csrc/cuda/keys4_*.cu). With
// validate=false, or while a CUDA graph is captured, the lengths in seq_lens are trusted (no
// device sync); every shape, dtype, device and alignment check still runs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/launch.h"
#include "cuda/host.h"
#include "ops.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The cache strides of QuantizeKeys4Params and ScoreKeys4Params (same field names).
template <typename Params>
void set_cache_strides(Params& p, const at::Tensor& codes, const at::Tensor& scales) {
  p.codes_batch_stride = codes.stride(0);
  p.codes_head_stride = codes.stride(1);
  p.codes_token_stride = codes.stride(2);
  p.scales_batch_stride = scales.stride(0);
  p.scales_head_stride = scales.stride(1);
}

const int* seq_lens_ptr(const std::optional<at::Tensor>& seq_lens, at::Tensor& holder) {
  if (!seq_lens.has_value()) return nullptr;
  holder = seq_lens->contiguous();
  return holder.data_ptr<int>();
}

}  // namespace

void quantize_keys4_cuda(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                         const std::optional<at::Tensor>& seq_lens, bool validate) {
  constexpr const char* op = "quantize_keys4_";
  check_cuda(k, op, "k");
  const Keys4CacheShape s = check_quantize_keys4_args(codes, scales, k, seq_lens, validate);
  const c10::cuda::CUDAGuard guard(k.device());
  at::Tensor lens;
  QuantizeKeys4Params p{};
  p.k = k.data_ptr();
  p.codes = codes.data_ptr<uint8_t>();
  p.scales = scales.data_ptr<float>();
  p.seq_lens = seq_lens_ptr(seq_lens, lens);
  p.k_batch_stride = k.stride(0);
  p.k_head_stride = k.stride(1);
  p.k_token_stride = k.stride(2);
  set_cache_strides(p, codes, scales);
  p.batch = static_cast<int>(s.batch);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.tokens = static_cast<int>(k.size(2));
  p.head_dim = static_cast<int>(s.head_dim);
  p.capacity = static_cast<int>(s.capacity);
  check_launch(run_quantize_keys4(p, to_dtype(k.scalar_type()), c10::cuda::getCurrentCUDAStream()), op);
}

at::Tensor score_blocks_keys4_cuda(const at::Tensor& q, const at::Tensor& codes,
                                   const at::Tensor& scales,
                                   const std::optional<at::Tensor>& seq_lens,
                                   std::optional<double> softmax_scale, bool validate) {
  constexpr const char* op = "score_blocks_keys4";
  check_cuda(q, op, "q");
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, validate);
  SW_CHECK_ARG(q.scalar_type() != at::kFloat, op, "q",
               "must be float16 or bfloat16 on CUDA (the scorer runs on tensor cores), got float32");
  SW_CHECK_ARG(s.head_dim == 64 || s.head_dim == 128, op, "q", "has unsupported head_dim ",
               s.head_dim, " on CUDA; supported head_dim values are {64, 128}");
  SW_CHECK_ARG(s.batch <= 65535 && s.num_kv_heads <= 65535, op, "codes",
               "must have batch and num_kv_heads <= 65535 on CUDA, got shape ", codes.sizes());
  // Each lane reads head_dim / 8 contiguous bytes of a code row: rows aligned to that.
  const int64_t row_align = s.head_dim / 8;
  SW_CHECK_ARG(aligned(codes.data_ptr(), 16) && codes.stride(2) % row_align == 0 &&
                   codes.stride(1) % row_align == 0 && codes.stride(0) % row_align == 0,
               op, "codes", "must start 16-byte aligned with strides that are multiples of ",
               row_align, " bytes, got strides ", codes.strides());
  const c10::cuda::CUDAGuard guard(q.device());
  // q is read 16 bytes at a time: a misaligned view (rare; it is tiny) is copied.
  const bool q_ok = aligned(q.data_ptr(), 16) && q.stride(0) % 8 == 0 && q.stride(1) % 8 == 0;
  const at::Tensor qc = q_ok ? q : q.contiguous().clone();
  const int64_t width = (s.capacity + kIndexBlockSize - 1) / kIndexBlockSize;
  auto mass = at::empty({s.batch, s.num_kv_heads, width}, q.options().dtype(at::kFloat));
  if (mass.numel() == 0) return mass;
  const int64_t num_q_heads = q.size(1);
  at::Tensor lens;
  ScoreKeys4Params p{};
  p.q = qc.data_ptr();
  p.codes = codes.data_ptr<uint8_t>();
  p.scales = scales.data_ptr<float>();
  p.seq_lens = seq_lens_ptr(seq_lens, lens);
  p.mass = mass.data_ptr<float>();
  p.q_batch_stride = qc.stride(0);
  p.q_head_stride = qc.stride(1);
  set_cache_strides(p, codes, scales);
  p.batch = static_cast<int>(s.batch);
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.head_dim = static_cast<int>(s.head_dim);
  p.capacity = static_cast<int>(s.capacity);
  p.num_blocks = static_cast<int>(width);
  p.softmax_scale = static_cast<float>(softmax_scale_or_default(softmax_scale, s.head_dim));
  auto workspace = at::empty({static_cast<int64_t>(score_keys4_workspace_floats(p))},
                             q.options().dtype(at::kFloat));
  check_launch(run_score_keys4(p, to_dtype(q.scalar_type()), workspace.data_ptr<float>(),
                               c10::cuda::getCurrentCUDAStream()),
               op);
  return mass;
}

std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cuda(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate) {
  constexpr const char* op = "select_blocks_keys4";
  check_cuda(mass, op, "mass");
  check_select_blocks_keys4_args(mass, seq_lens, keep_frac, window_frac, sink_frac, validate);
  SW_CHECK_ARG(mass.size(0) <= 65535 && mass.size(1) <= 65535, op, "mass",
               "must have batch and num_kv_heads <= 65535 on CUDA, got shape ", mass.sizes());
  const c10::cuda::CUDAGuard guard(mass.device());
  const int64_t batch = mass.size(0), heads = mass.size(1), width = mass.size(2);
  auto block_index = at::empty({batch, heads, 1, width}, mass.options().dtype(at::kInt));
  auto num_selected = at::empty({batch, heads, 1}, mass.options().dtype(at::kInt));
  if (batch * heads == 0) return {block_index, num_selected};
  if (width == 0) {
    num_selected.zero_();
    return {block_index, num_selected};
  }
  at::Tensor lens;
  SelectKeys4Params p{};
  p.mass = mass.data_ptr<float>();
  p.seq_lens = seq_lens_ptr(seq_lens, lens);
  p.block_index = block_index.data_ptr<int>();
  p.num_selected = num_selected.data_ptr<int>();
  p.batch = static_cast<int>(batch);
  p.num_kv_heads = static_cast<int>(heads);
  p.width = static_cast<int>(width);
  p.keep_frac = keep_frac;
  p.window_frac = window_frac;
  p.sink_frac = sink_frac;
  check_launch(run_select_blocks_keys4(p, c10::cuda::getCurrentCUDAStream()), op);
  return {block_index, num_selected};
}

}  // namespace sketchwalk
