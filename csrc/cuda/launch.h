// Host entry points of the CUDA kernels: raw pointers + params structs + stream, no torch
// (csrc/cuda/*.cpp fill the params from tensors and call these). Each returns the launch's
// cudaError_t; the caller turns a failure into a TORCH_CHECK naming the op.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "sketchwalk/params.h"

namespace sketchwalk {

// device_info.cu: multiprocessors of the current device (grid-size heuristics).
int current_device_sm_count();

// hadamard_sketch.cu: fused block mean-pool + sign flip + FWHT + subsample + scale.
cudaError_t run_hadamard_sketch(const HadamardSketchParams& params, DType dtype,
                                cudaStream_t stream);

// score_blocks.cu: fused sketched logits -> per-head softmax over key blocks -> head sum -> row normalize.
cudaError_t run_score_blocks(const ScoreBlocksParams& params, cudaStream_t stream);

// select_blocks.cu: warp-level quantile top-k + sink/window/dense-row rules -> block index.
cudaError_t run_select_blocks(const SelectBlocksParams& params, cudaStream_t stream);

// query_spread_rows.cu: each query block's spread over q, then per row the dense-row flags.
cudaError_t run_query_spread_rows(const QuerySpreadParams& params, DType dtype,
                                  cudaStream_t stream);

// update_block_matrix.cu: decode-time row/column blend of the block transition matrix, in place.
// transition [batch, n, n] with strides (batch_stride, row_stride, 1); r [batch, n] contiguous.
cudaError_t run_update_block_matrix(float* transition, int64_t batch_stride, int64_t row_stride,
                                    const float* r, int batch, int n, float alpha,
                                    cudaStream_t stream);

// update_block_sketch.cu: one token's sketch folded into its key block's running mean, in place.
cudaError_t run_update_block_sketch(const UpdateBlockSketchParams& params, cudaStream_t stream);

// update_window_logits.cu: decode window logits (rows [row_begin, row_end) over every block,
// plus the last block's column when asked), in place. window_block_scores.cu: r from them;
// run_window_block_scores needs params.row_offset to hold batch * num_q_heads * window_fill
// floats of scratch.
cudaError_t run_update_window_logits(const WindowLogitsParams& params, cudaStream_t stream);
cudaError_t run_window_block_scores(const WindowScoresParams& params, cudaStream_t stream);

// select_decode_blocks.cu: the decode walk of one row per sequence over transition [batch, n, n]
// (strided rows), r [batch, n] contiguous -> out [batch, n]. The caller allocates
// `workspace` with decode_walk_workspace_floats(batch, n) floats.
size_t decode_walk_workspace_floats(int batch, int n);
cudaError_t run_decode_walk(const float* r, const float* transition, int64_t batch_stride,
                            int64_t row_stride, int batch, int n, int degree, float damping,
                            float* workspace, float* out, cudaStream_t stream);

// sparse_prefill.cu: FlashAttention-style block-sparse attention (fp16/bf16, head_dim 64/128).
cudaError_t run_sparse_prefill(const SparseAttentionParams& params, DType dtype,
                               cudaStream_t stream);

// sparse_attention_fp32.cu: the float32 path of the three attention ops (any layout of
// SparseAttentionParams), scalar FMAs: a correctness path.
cudaError_t run_sparse_attention_fp32(const SparseAttentionParams& params, cudaStream_t stream);

// sparse_decode.cu: split-KV block-sparse decode (num_queries == 1) + combine.
// The caller allocates `workspace` with sparse_decode_workspace_floats(params) floats.
size_t sparse_decode_workspace_floats(const SparseAttentionParams& params);
cudaError_t run_sparse_decode(const SparseAttentionParams& params, DType dtype, float* workspace,
                              cudaStream_t stream);

// quantize_keys4.cu: quantize_keys4_ (4-bit key cache rows, include/sketchwalk/keys4.h).
cudaError_t run_quantize_keys4(const QuantizeKeys4Params& params, DType dtype, cudaStream_t stream);

// score_blocks_keys4.cu: score_blocks_keys4 (fp16/bf16 q, head_dim 64/128). The caller allocates
// `workspace` with score_keys4_workspace_floats(params) floats (same params, same device);
// params.block_max / block_sum are set from it.
size_t score_keys4_workspace_floats(const ScoreKeys4Params& params);
cudaError_t run_score_keys4(const ScoreKeys4Params& params, DType dtype, float* workspace,
                            cudaStream_t stream);

// score_blocks_sampled_rows.cu: the sampled-row block scorer (fp16/bf16, head_dim 64/128, at
// most kMaxSampledRowsPerGroup rows per KV group); params.scores is written in full.
cudaError_t run_score_sampled_rows(const SampledRowsParams& params, DType dtype,
                                   cudaStream_t stream);

// select_blocks_keys4.cu: select_blocks_keys4 (sink, window and quantile rule per kv group).
cudaError_t run_select_blocks_keys4(const SelectKeys4Params& params, cudaStream_t stream);

}  // namespace sketchwalk
