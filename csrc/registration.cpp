// The op table: every torch.ops.sketchwalk.* schema (one line each, docs/ops.md has the
// semantics), then the CPU, CUDA and device-generic implementations. Nothing else.
#include <torch/library.h>

#include "ops.h"

TORCH_LIBRARY(sketchwalk, m) {
  // Block mean-pool + subsampled randomized Hadamard transform: [B,H,T,D] -> [B,H,ceil(T/b),m] fp32.
  m.def("hadamard_sketch(Tensor x, Tensor signs, Tensor coords, int block_size, bool validate=True) -> Tensor");
  // The same for packed sequences [total,H,D] (cu_seqlens [S+1] int32): -> [S,H,max_blocks,m]
  // fp32, zeros past each sequence's blocks.
  m.def("hadamard_sketch_varlen(Tensor x, Tensor signs, Tensor coords, int block_size, "
        "Tensor cu_seqlens, int max_blocks, bool validate=True) -> Tensor");
  // Row-stochastic block transition matrix from sketches, summed over heads: -> [B,rows,cols] fp32.
  // num_kv_blocks [B] int32 (optional): row b's softmax over its first num_kv_blocks[b] columns.
  m.def("score_blocks(Tensor q_sketch, Tensor k_sketch, float logit_scale, "
        "Tensor? num_kv_blocks=None, bool validate=True) -> Tensor");
  // Damped walk: state = (1-damping)*base + damping*state@transition, `degree` times.
  m.def("walk_blocks(Tensor base, Tensor transition, Tensor? init, int degree, float damping) -> Tensor");
  // Quantile top-k + sink/window/dense-row rules -> (block_index [B,1,Nq,Nk] int32, num_selected [B,1,Nq] int32).
  m.def("select_blocks(Tensor scores, int num_queries, int num_keys, int block_size, float keep_frac, "
        "int window_tokens, int exclude_sink_tokens, int attend_sink_tokens, int dense_last_q_blocks) "
        "-> (Tensor block_index, Tensor num_selected)");
  // The same over padded scores of a ragged batch; seq_args [B,5] int32 holds each row's
  // (num_queries, num_keys, window_tokens, exclude_sink_tokens, attend_sink_tokens).
  m.def("select_blocks_varlen(Tensor scores, Tensor seq_args, int block_size, float keep_frac, "
        "int dense_last_q_blocks, bool validate=True) -> (Tensor block_index, Tensor num_selected)");
  // Block-sparse causal attention over the block index -> (out like q, lse [B,Hq,Tq] fp32).
  m.def("sparse_prefill(Tensor q, Tensor k, Tensor v, Tensor block_index, Tensor num_selected, "
        "float? softmax_scale=None, bool validate=True) -> (Tensor out, Tensor lse)");
  // A ragged batch in one call: packed queries [total_q,Hq,D] (cu_seqlens_q) against packed keys
  // [total_k,Hkv,D] (cu_seqlens_k) or a paged cache [pages,64,Hkv,D] (page_table, seq_lens_k);
  // -> (out like q, lse [Hq,total_q] fp32). Chunks (fewer queries than keys) end at the last key.
  m.def("sparse_prefill_varlen(Tensor q, Tensor k, Tensor v, Tensor block_index, Tensor num_selected, "
        "Tensor cu_seqlens_q, Tensor? cu_seqlens_k=None, Tensor? seq_lens_k=None, "
        "Tensor? page_table=None, float? softmax_scale=None, bool validate=True) "
        "-> (Tensor out, Tensor lse)");
  // Block-sparse attention of one new query per sequence against a KV cache (split-KV on CUDA).
  // seq_lens [B] int32 (optional): keys per sequence of a fixed-capacity cache (CUDA graphs).
  // page_table [B,max_pages] int32 (optional, with seq_lens): k/v_cache are page pools
  // [pages,64,Hkv,D] and key block j of sequence b is page page_table[b,j].
  // seq_starts [B] int32 (optional, with seq_lens): a left-padded cache, row b's keys from seq_starts[b].
  m.def("sparse_decode(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_index, "
        "Tensor num_selected, float? softmax_scale=None, bool validate=True, Tensor? seq_lens=None, "
        "Tensor? page_table=None, Tensor? seq_starts=None) -> (Tensor out, Tensor lse)");
  // Running mean of one new token's sketch into its key block's sketch, in place.
  m.def("update_block_sketch_(Tensor(a!) block_sketch, Tensor token_sketch, int num_tokens_before, "
        "int block_size) -> ()");
  // Ring-buffer write of one query sketch into the recent-query window, slot position % W.
  m.def("push_query_window_(Tensor(a!) window, Tensor q_sketch, int position) -> ()");
  // Decode-time row/column blend of the block transition matrix with scores r, in place.
  m.def("update_block_matrix_(Tensor(a!) transition, Tensor r, int num_keys, int block_size) -> ()");
  // Cached sketched logits of the recent queries: row `slot` (every row when slot == -1) over
  // every live block, plus the last live block's column for every slot, in place.
  m.def("update_window_logits_(Tensor(a!) window_logits, Tensor query_window, Tensor key_blocks, "
        "int num_blocks, int slot, float logit_scale) -> ()");
  // Decode block scores from the cached logits: mean over heads and live slots of the softmax rows.
  m.def("window_block_scores(Tensor window_logits, int window_fill, int num_blocks) -> Tensor");
  // One decode step's selection (sketch new q/k, state updates, scores, walk, select) in one call.
  m.def("select_decode_blocks_(Tensor q, Tensor k, Tensor(a!) key_blocks, Tensor(b!) query_window, "
        "Tensor(c!) window_logits, Tensor(d!) transition, Tensor signs, Tensor coords, int window_fill, "
        "int pushes, int block_size, "
        "int degree, float damping, float logit_scale, float keep_frac, int window_tokens, "
        "int exclude_sink_tokens, int attend_sink_tokens) -> (Tensor block_index, Tensor num_selected)");
  // keys4 decode scorer (docs/spec.md section 7). 4-bit key cache rows [seq_lens - T, seq_lens) from k.
  // page_table [B,max_pages] (optional, with seq_lens): codes/scales are page pools [pages,Hkv,64,..].
  m.def("quantize_keys4_(Tensor(a!) codes, Tensor(b!) scales, Tensor k, Tensor? seq_lens=None, "
        "bool validate=True, Tensor? page_table=None) -> ()");
  // Block attention mass of the current query per kv group from the 4-bit keys: [B,Hkv,ceil(cap/64)].
  m.def("score_blocks_keys4(Tensor q, Tensor codes, Tensor scales, Tensor? seq_lens=None, "
        "float? softmax_scale=None, bool validate=True, Tensor? page_table=None) -> Tensor");
  // Sink + window + quantile rule per kv group -> (block_index [B,Hkv,1,W], num_selected [B,Hkv,1]).
  m.def("select_blocks_keys4(Tensor mass, Tensor? seq_lens, float keep_frac, float window_frac, "
        "float sink_frac, bool validate=True) -> (Tensor block_index, Tensor num_selected)");
}

TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("sparse_prefill", &sketchwalk::sparse_prefill_cpu);
  m.impl("sparse_prefill_varlen", &sketchwalk::sparse_prefill_varlen_cpu);
  m.impl("sparse_decode", &sketchwalk::sparse_decode_cpu);
#if !SKETCHWALK_STABLE_ABI_OPS  // else csrc/stable/<op>.cpp (the varlen op beside its twin)
  m.impl("update_block_sketch_", &sketchwalk::update_block_sketch_cpu);
  m.impl("update_window_logits_", &sketchwalk::update_window_logits_cpu);
  m.impl("window_block_scores", &sketchwalk::window_block_scores_cpu);
  m.impl("hadamard_sketch", &sketchwalk::hadamard_sketch_cpu);
  m.impl("hadamard_sketch_varlen", &sketchwalk::hadamard_sketch_varlen_cpu);
  m.impl("score_blocks", &sketchwalk::score_blocks_cpu);
  m.impl("select_blocks", &sketchwalk::select_blocks_cpu);
  m.impl("select_blocks_varlen", &sketchwalk::select_blocks_varlen_cpu);
  m.impl("update_block_matrix_", &sketchwalk::update_block_matrix_cpu);
  m.impl("quantize_keys4_", &sketchwalk::quantize_keys4_cpu);
  m.impl("score_blocks_keys4", &sketchwalk::score_blocks_keys4_cpu);
  m.impl("select_blocks_keys4", &sketchwalk::select_blocks_keys4_cpu);
#endif
}

#ifdef SKETCHWALK_WITH_CUDA
TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("sparse_prefill", &sketchwalk::sparse_prefill_cuda);
  m.impl("sparse_prefill_varlen", &sketchwalk::sparse_prefill_varlen_cuda);
  m.impl("sparse_decode", &sketchwalk::sparse_decode_cuda);
#if !SKETCHWALK_STABLE_ABI_OPS  // else csrc/stable/<op>_cuda.cpp (the varlen op beside its twin)
  m.impl("select_decode_blocks_", &sketchwalk::select_decode_blocks_cuda);
  m.impl("update_block_sketch_", &sketchwalk::update_block_sketch_cuda);
  m.impl("update_window_logits_", &sketchwalk::update_window_logits_cuda);
  m.impl("window_block_scores", &sketchwalk::window_block_scores_cuda);
  m.impl("hadamard_sketch", &sketchwalk::hadamard_sketch_cuda);
  m.impl("hadamard_sketch_varlen", &sketchwalk::hadamard_sketch_varlen_cuda);
  m.impl("score_blocks", &sketchwalk::score_blocks_cuda);
  m.impl("select_blocks", &sketchwalk::select_blocks_cuda);
  m.impl("select_blocks_varlen", &sketchwalk::select_blocks_varlen_cuda);
  m.impl("update_block_matrix_", &sketchwalk::update_block_matrix_cuda);
  m.impl("quantize_keys4_", &sketchwalk::quantize_keys4_cuda);
  m.impl("score_blocks_keys4", &sketchwalk::score_blocks_keys4_cuda);
  m.impl("select_blocks_keys4", &sketchwalk::select_blocks_keys4_cuda);
#endif
}
#endif

// Built from ATen ops, so one implementation serves every device (select_decode_blocks_ has a
// fused CUDA version above; this composition defines it and serves the CPU). With
// SKETCHWALK_STABLE_ABI_OPS (CMakeLists.txt, off by default) push_query_window_ and
// select_decode_blocks_ (every device) and walk_blocks (CPU and CUDA kernels) are registered on
// the stable ABI instead, as are the kernels guarded above (csrc/stable/; docs/stable_abi.md,
// "Where it stands").
TORCH_LIBRARY_IMPL(sketchwalk, CompositeExplicitAutograd, m) {
#if !SKETCHWALK_STABLE_ABI_OPS  // else csrc/stable/push_query_window.cpp, walk_blocks{,_cuda}.cpp,
                                // select_decode_blocks.cpp
  m.impl("push_query_window_", &sketchwalk::push_query_window_);
  m.impl("walk_blocks", &sketchwalk::walk_blocks);
  m.impl("select_decode_blocks_", &sketchwalk::select_decode_blocks_);
#endif
}
