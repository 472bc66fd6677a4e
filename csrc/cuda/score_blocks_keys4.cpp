// score_blocks_keys4, CUDA host wrapper: checks (csrc/checks/score_blocks_keys4.cpp), the
// CUDA-only limits (fp16/bf16 q, head_dim 64 or 128, aligned code rows), params, launch
// (csrc/cuda/score_blocks_keys4.cu). With validate=false, or while a CUDA graph is captured, the lengths
// in seq_lens are trusted (no device sync); every shape, dtype, device and alignment check still
// runs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "checks.h"
#include "cuda/host.h"
#include "cuda/launch.h"
#include "ops.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

}  // namespace

at::Tensor score_blocks_keys4_cuda(const at::Tensor& q, const at::Tensor& codes,
                                   const at::Tensor& scales,
                                   const std::optional<at::Tensor>& seq_lens,
                                   std::optional<double> softmax_scale, bool validate,
                                   const std::optional<at::Tensor>& page_table) {
  constexpr const char* op = "score_blocks_keys4";
  check_cuda(q, op, "q");
  const Keys4CacheShape s =
      check_score_blocks_keys4_args(q, codes, scales, seq_lens, softmax_scale, validate, page_table);
  SW_CHECK_ARG(q.scalar_type() != at::kFloat, op, "q",
               "must be float16 or bfloat16 on CUDA (the scorer runs on tensor cores), got float32");
  SW_CHECK_ARG(is_attention_head_dim(s.head_dim), op, "q", "has unsupported head_dim ",
               s.head_dim, " on CUDA; supported head_dim values are {", kAttentionHeadDimSmall,
               ", ", kAttentionHeadDimLarge, "}");
  SW_CHECK_ARG(s.batch <= kMaxGridYZ && s.num_kv_heads <= kMaxGridYZ, op, "codes",
               "must have batch and num_kv_heads <= ", kMaxGridYZ, " on CUDA, got batch ", s.batch,
               " and shape ", codes.sizes());
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
  copy_strides(qc, p.q_batch_stride, p.q_head_stride);
  copy_strides(codes, p.codes_batch_stride, p.codes_head_stride, p.codes_token_stride);
  copy_strides(scales, p.scales_batch_stride, p.scales_head_stride);
  p.batch = static_cast<int>(s.batch);
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(s.num_kv_heads);
  p.head_dim = static_cast<int>(s.head_dim);
  p.capacity = static_cast<int>(s.capacity);
  p.num_blocks = static_cast<int>(width);
  p.softmax_scale = static_cast<float>(softmax_scale_or_default(softmax_scale, s.head_dim));
  if (page_table.has_value()) {  // pools [pages, heads, 64, ...]: the batch strides step pages
    p.page_table = page_table->data_ptr<int>();
    p.page_table_stride = page_table->stride(0);
  }
  auto workspace = at::empty({static_cast<int64_t>(score_keys4_workspace_floats(p))},
                             q.options().dtype(at::kFloat));
  check_launch(run_score_keys4(p, to_dtype(q.scalar_type()), workspace.data_ptr<float>(),
                               c10::cuda::getCurrentCUDAStream()),
               op);
  return mass;
}

}  // namespace sketchwalk
