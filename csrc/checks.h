// Argument checks of every op, shared by its CPU, CUDA and composite versions. Every failure
// throws std::runtime_error (a Python RuntimeError) whose message names the op, the argument
// and what was expected, e.g. "sketchwalk.sparse_prefill: argument 'k' must have 4 dims
// [batch, num_kv_heads, num_keys, head_dim], got 3".
// Where: op X's check_X_args in csrc/checks/X.cpp (X without its trailing '_'), the helpers
// they share in csrc/checks/common.cpp. Limits of the CUDA kernels alone (grid sizes, dtypes,
// alignment) are checked in the CUDA host wrappers, csrc/cuda/*.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "message.h"
#include "tensor_checks.h"
#include "checks/keys4_cache.h"
#include "checks/sparse_decode.h"
#include "checks/sparse_prefill.h"
#include "checks/sparse_prefill_varlen.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

// Messages are assembled by csrc/message.h (never through std::ostream: it says why); its
// message_piece overloads for c10 types.
namespace detail {
inline std::string message_piece(piece_tag, c10::ScalarType t) { return c10::toString(t); }
inline std::string message_piece(piece_tag, const c10::Device& d) { return d.str(); }
inline std::string message_piece(piece_tag, c10::IntArrayRef a) {
  std::string out = "[";
  for (size_t i = 0; i < a.size(); ++i) out += (i ? ", " : "") + std::to_string(a[i]);
  return out + "]";
}
}  // namespace detail

// ---- shared helpers ------------------------------------------------------------------
// SW_CHECK_ARG, check_rank, check_dtype, check_last_dim_contiguous, check_tensor,
// check_same_device, check_size and check_finite: csrc/tensor_checks.h (one definition for
// at::Tensor and torch::stable::Tensor); the rest below, in csrc/checks/common.cpp.

// kMaxWalkDegree: csrc/checks/walk_blocks.h.

// An optional softmax_scale: finite when given. The one default, 1 / sqrt(head_dim), for the
// attention and keys4 ops on every device.
// check_softmax_scale, softmax_scale_or_default: csrc/tensor_checks.h (torch-free).
// An integer argument the kernels index with int: lo <= value <= INT32_MAX.
// check_int32: csrc/tensor_checks.h (torch-free).

// True while the current CUDA stream of `t`'s device is capturing a graph (false for CPU
// tensors; csrc/cuda/stream_capture.cpp, or common.cpp in a CPU-only build).
bool current_stream_is_capturing(const at::Tensor& t);
// Whether checks that read tensor values (one sync on CUDA) run: validate is set and no CUDA
// graph is being captured on t's device.
bool read_values(bool validate, const at::Tensor& t);
// The shared checks' hooks (csrc/tensor_checks.h) for at::Tensor.
inline bool read_values(tensor_world, bool validate, const at::Tensor& t) {
  return read_values(validate, t);
}
std::pair<int64_t, int64_t> int_range(tensor_world, const at::Tensor& t);
at::Tensor host_contiguous(tensor_world, const at::Tensor& t);
// A contiguous copy on t's device, or t (params_fill.h's seq_lens_ptr, the launch templates).
inline at::Tensor contiguous_of(tensor_world, const at::Tensor& t) { return t.contiguous(); }

// AttentionShape, check_attention_args, validate_block_index: csrc/checks/attention.h (templates
// shared with csrc/stable/).

// Keys4CacheShape, check_keys4_cache, check_keys4_cache_maybe_paged, check_keys4_page_ids,
// check_seq_lens_tensor, check_seq_lens_values: csrc/checks/keys4_cache.h (templates shared
// with csrc/stable/).

// check_cu_seqlens_values: csrc/checks/hadamard_sketch.h (shared with csrc/stable/).

// ---- one check_X_args per op (csrc/checks/X.cpp) ---------------------------------------
// Each checks op X's arguments before any output or state is written (some return sizes
// their callers use); the CPU, CUDA and composite versions of X call the same function.

// SketchShape, check_hadamard_sketch_args, check_hadamard_sketch_varlen_args,
// check_sketch_transform_values: csrc/checks/hadamard_sketch.h (shared with csrc/stable/).
// check_score_blocks_args: csrc/checks/score_blocks.h (shared with csrc/stable/).
// check_walk_blocks_args: csrc/checks/walk_blocks.h (shared with csrc/stable/).
// check_select_blocks_args, check_select_blocks_varlen_args: csrc/checks/select_blocks.h
// (shared with csrc/stable/).
// sparse_prefill, sparse_decode and sparse_prefill_varlen check in two steps, so that their CUDA
// wrappers can check what the kernels alone need in between: the arguments (..._args), then the
// values (..._index / ..._values; only with validate and no capture):
// csrc/checks/sparse_prefill.h, sparse_decode.h, sparse_prefill_varlen.h (shared with
// csrc/stable/).
// check_update_block_sketch_args: csrc/checks/update_block_sketch.h (shared with csrc/stable/).
// check_push_query_window_args: csrc/checks/push_query_window.h (shared with csrc/stable/).
// check_update_block_matrix_args: csrc/checks/update_block_matrix.h (shared with csrc/stable/).
// check_update_window_logits_args: csrc/checks/update_window_logits.h, and
// check_window_block_scores_args: csrc/checks/window_block_scores.h (shared with csrc/stable/).
// check_select_decode_blocks_args: csrc/checks/select_decode_blocks.h (shared with csrc/stable/).
// check_quantize_keys4_args: csrc/checks/quantize_keys4.h (shared with csrc/stable/).
// check_score_blocks_keys4_args: csrc/checks/score_blocks_keys4.h (shared with csrc/stable/).
// check_select_blocks_keys4_args: csrc/checks/select_blocks_keys4.h (shared with csrc/stable/).

}  // namespace sketchwalk
