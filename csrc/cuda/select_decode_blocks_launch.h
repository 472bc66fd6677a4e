// select_decode_blocks_, fused CUDA, for either tensor type: the ATen wrapper
// (csrc/cuda/select_decode_blocks.cpp) and the stable-ABI one
// (csrc/stable/select_decode_blocks_cuda.cpp). The same steps as the device-generic composition
// (csrc/composite/select_decode_blocks.cpp, which defines the semantics), issued as eight kernel
// launches and five allocations with no tensor op in between; at batch 1 a decode step is bound
// by host issue time, so the launch count is the cost:
//   1. sketch the new query straight into its window slot;
//   2. sketch the new key and fold it into its key block's running mean in the same pass;
//   3. refresh the cached window logits (the new row, the open block's column);
//   4-5. r from the cached logits (row logsumexp, column sums);
//   6. blend r into A (row and column of the open block, row renormalization);
//   7. the walk over A (one launch per degree + one to finish), deterministic;
//   8. the quantile selection.
// Views and allocations go through three hooks per tensor type, found by argument-dependent
// lookup on tensor_world: narrow_of(w, t, dim, start, length) and empty_of(w, like, shape, dtype)
// (on like's device; csrc/cuda/host.h for at::Tensor, csrc/stable/cuda.h for the stable tensor)
// and contiguous_of(w, t) (csrc/checks.h, csrc/stable/common.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <tuple>

#include "checks/hadamard_sketch.h"
#include "checks/select_decode_blocks.h"
#include "checks/update_window_logits.h"
#include "cuda/hadamard_sketch_launch.h"
#include "cuda/launch.h"
#include "cuda/launch_common.h"
#include "cuda/select_blocks_launch.h"
#include "cuda/update_block_matrix_launch.h"
#include "cuda/update_window_logits_launch.h"
#include "cuda/window_block_scores_launch.h"
#include "sketchwalk/common.h"

namespace sketchwalk {

// What the checks found: the block count, the new query's window slot and the sketch shapes.
struct DecodeSelectionShape {
  int64_t n, num_keys, slot;
  SketchShape sq, sk;
};

// Every host-side check of the composed ops, before anything is launched.
template <typename T>
DecodeSelectionShape check_select_decode_blocks_cuda_args(
    const T& q, const T& k, const T& key_blocks, const T& query_window, const T& window_logits,
    const T& transition, const T& signs, const T& coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens) {
  constexpr const char* op = "select_decode_blocks_";
  check_cuda(q, op, "q");
  DecodeSelectionShape d{};
  d.n = check_select_decode_blocks_args(q, k, key_blocks, query_window, window_logits,
                                        transition, signs, coords, window_fill, pushes,
                                        block_size, degree, damping, logit_scale, keep_frac,
                                        window_tokens, exclude_sink_tokens, attend_sink_tokens);
  d.num_keys = k.size(2);
  // Sizes for the sketch launches (the shared check above already named any bad argument).
  d.sq = check_hadamard_sketch_args(q, signs, coords, 1, false);
  d.sk = check_hadamard_sketch_args(narrow_of(tensor_world{}, k, 2, d.num_keys - 1, 1), signs,
                                    coords, 1, false);
  SW_CHECK_ARG(d.sq.batch <= kMaxGridYZ, op, "q", "must have batch <= ", kMaxGridYZ,
               " on CUDA, got ", d.sq.batch);
  d.slot = pushes % query_window.size(2);
  check_update_window_logits_args(window_logits, query_window, key_blocks, d.n, d.slot,
                                  logit_scale);
  return d;
}

// The launches, after check_select_decode_blocks_cuda_args, under the caller's device guard.
template <typename T>
std::tuple<T, T> launch_select_decode_blocks(
    const T& q, const T& k, const T& key_blocks, const T& query_window, const T& window_logits,
    const T& transition, const T& signs, const T& coords, int64_t window_fill, int64_t block_size,
    int64_t degree, double damping, double logit_scale, double keep_frac, int64_t window_tokens,
    int64_t exclude_sink_tokens, int64_t attend_sink_tokens, const DecodeSelectionShape& d,
    cudaStream_t stream) {
  using ScalarType = detail::scalar_type_of<T>;
  constexpr const char* op = "select_decode_blocks_";
  const tensor_world w{};
  const int64_t n = d.n, num_keys = d.num_keys, batch = d.sq.batch;
  const T k_new = narrow_of(w, k, 2, num_keys - 1, 1);
  const T a = narrow_of(w, narrow_of(w, transition, 1, 0, n), 2, 0, n);
  const T signs_c = contiguous_of(w, signs);
  const T coords_c = contiguous_of(w, coords);
  const auto into_row = [](const T& buf, int64_t row) {
    return buf.template mutable_data_ptr<float>() + row * buf.stride(2);
  };
  launch_hadamard_sketch(q, d.sq, signs_c, coords_c, into_row(query_window, d.slot),
                         query_window.stride(0), query_window.stride(1), query_window.stride(2),
                         0, stream, op);
  const int64_t key_block = (num_keys - 1) / block_size;
  launch_hadamard_sketch(k_new, d.sk, signs_c, coords_c, into_row(key_blocks, key_block),
                         key_blocks.stride(0), key_blocks.stride(1), key_blocks.stride(2),
                         static_cast<int>((num_keys - 1) % block_size), stream, op);
  launch_update_window_logits(window_logits, query_window, key_blocks, n, d.slot, logit_scale,
                              stream);
  const T r = empty_of(w, q, {batch, n}, ScalarType::Float);
  const T row_offset =
      empty_of(w, q, {batch * window_logits.size(1) * window_fill}, ScalarType::Float);
  launch_window_block_scores(window_logits, window_fill, n, r, row_offset, stream);
  launch_update_block_matrix(a, r, num_keys, block_size, stream);
  const T walked = empty_of(w, q, {batch, 1, n}, ScalarType::Float);
  const T workspace = empty_of(
      w, q, {static_cast<int64_t>(decode_walk_workspace_floats(static_cast<int>(batch),
                                                               static_cast<int>(n)))},
      ScalarType::Float);
  check_launch(run_decode_walk(r.template const_data_ptr<float>(),
                               a.template const_data_ptr<float>(), a.stride(0), a.stride(1),
                               static_cast<int>(batch), static_cast<int>(n),
                               static_cast<int>(degree), static_cast<float>(damping),
                               workspace.template mutable_data_ptr<float>(),
                               walked.template mutable_data_ptr<float>(), stream),
               op);
  const T block_index = empty_of(w, q, {batch, 1, 1, n}, ScalarType::Int);
  const T num_selected = empty_of(w, q, {batch, 1, 1}, ScalarType::Int);
  if (batch == 0) return {block_index, num_selected};
  launch_select_blocks("select_blocks", walked, block_index, num_selected, block_size, keep_frac,
                       0, std::optional<T>{}, false,
                       select_blocks_rule(1, num_keys, window_tokens, exclude_sink_tokens,
                                          attend_sink_tokens),
                       stream);
  return {block_index, num_selected};
}

}  // namespace sketchwalk
