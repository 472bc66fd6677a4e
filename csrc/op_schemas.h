// Every torch.ops.sketchwalk.* schema, one entry each (docs/ops.md has the semantics): the one
// list both op tables define from, csrc/registration.cpp (the C++ ABI) and
// csrc/stable/registration.cpp (the stable ABI). Torch-free.
#pragma once

namespace sketchwalk {

inline constexpr const char* kOpSchemas[] = {
  // Block mean-pool + subsampled randomized Hadamard transform: [B,H,T,D] -> [B,H,ceil(T/b),m] fp32.
  "hadamard_sketch(Tensor x, Tensor signs, Tensor coords, int block_size, bool validate=True) -> Tensor",
  // The same for packed sequences [total,H,D] (cu_seqlens [S+1] int32): -> [S,H,max_blocks,m]
  // fp32, zeros past each sequence's blocks.
  "hadamard_sketch_varlen(Tensor x, Tensor signs, Tensor coords, int block_size, "
      "Tensor cu_seqlens, int max_blocks, bool validate=True) -> Tensor",
  // Row-stochastic block transition matrix from sketches, summed over heads: -> [B,rows,cols] fp32.
  // num_kv_blocks [B] int32 (optional): row b's softmax over its first num_kv_blocks[b] columns.
  "score_blocks(Tensor q_sketch, Tensor k_sketch, float logit_scale, "
      "Tensor? num_kv_blocks=None, bool validate=True) -> Tensor",
  // Damped walk: state = (1-damping)*base + damping*state@transition, `degree` times.
  "walk_blocks(Tensor base, Tensor transition, Tensor? init, int degree, float damping) -> Tensor",
  // Quantile top-k + sink/window/dense-row rules -> (block_index [B,1,Nq,Nk] int32, num_selected [B,1,Nq] int32).
  // dense_rows [B,Nq] bool (optional): flagged query blocks keep every causal block; with
  // dense_rows_in_budget their sequence's other rows keep less to pay for them.
  "select_blocks(Tensor scores, int num_queries, int num_keys, int block_size, float keep_frac, "
      "int window_tokens, int exclude_sink_tokens, int attend_sink_tokens, int dense_last_q_blocks, "
      "Tensor? dense_rows=None, bool dense_rows_in_budget=False) "
      "-> (Tensor block_index, Tensor num_selected)",
  // The same over padded scores of a ragged batch; seq_args [B,5] int32 holds each row's
  // (num_queries, num_keys, window_tokens, exclude_sink_tokens, attend_sink_tokens).
  "select_blocks_varlen(Tensor scores, Tensor seq_args, int block_size, float keep_frac, "
      "int dense_last_q_blocks, bool validate=True, Tensor? dense_rows=None, "
      "bool dense_rows_in_budget=False) -> (Tensor block_index, Tensor num_selected)",
  // Per sequence row, its query blocks of largest query spread (docs/spec.md section 13) as
  // dense_rows flags for select_blocks: q [B,H,T,D], or packed (B = 1) rows by cu_seqlens.
  "query_spread_rows(Tensor q, int block_size, float frac, int dense_last_q_blocks, "
      "Tensor? cu_seqlens=None, int max_blocks=-1, Tensor? seq_q_blocks=None, "
      "bool validate=True) -> Tensor",
  // Block-sparse causal attention over the block index -> (out like q, lse [B,Hq,Tq] fp32).
  "sparse_prefill(Tensor q, Tensor k, Tensor v, Tensor block_index, Tensor num_selected, "
      "float? softmax_scale=None, bool validate=True) -> (Tensor out, Tensor lse)",
  // A ragged batch in one call: packed queries [total_q,Hq,D] (cu_seqlens_q) against packed keys
  // [total_k,Hkv,D] (cu_seqlens_k) or a paged cache [pages,64,Hkv,D] (page_table, seq_lens_k)
  // -> (out like q, lse [Hq,total_q] fp32). Chunks (fewer queries than keys) end at the last key.
  "sparse_prefill_varlen(Tensor q, Tensor k, Tensor v, Tensor block_index, Tensor num_selected, "
      "Tensor cu_seqlens_q, Tensor? cu_seqlens_k=None, Tensor? seq_lens_k=None, "
      "Tensor? page_table=None, float? softmax_scale=None, bool validate=True) "
      "-> (Tensor out, Tensor lse)",
  // Block-sparse attention of one new query per sequence against a KV cache (split-KV on CUDA).
  // seq_lens [B] int32 (optional): keys per sequence of a fixed-capacity cache (CUDA graphs).
  // page_table [B,max_pages] int32 (optional, with seq_lens): k/v_cache are page pools
  // [pages,64,Hkv,D] and key block j of sequence b is page page_table[b,j].
  // seq_starts [B] int32 (optional, with seq_lens): a left-padded cache, row b's keys from seq_starts[b].
  "sparse_decode(Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_index, "
      "Tensor num_selected, float? softmax_scale=None, bool validate=True, Tensor? seq_lens=None, "
      "Tensor? page_table=None, Tensor? seq_starts=None) -> (Tensor out, Tensor lse)",
  // Running mean of one new token's sketch into its key block's sketch, in place.
  "update_block_sketch_(Tensor(a!) block_sketch, Tensor token_sketch, int num_tokens_before, "
      "int block_size) -> ()",
  // Ring-buffer write of one query sketch into the recent-query window, slot position % W.
  "push_query_window_(Tensor(a!) window, Tensor q_sketch, int position) -> ()",
  // Decode-time row/column blend of the block transition matrix with scores r, in place.
  "update_block_matrix_(Tensor(a!) transition, Tensor r, int num_keys, int block_size) -> ()",
  // Cached sketched logits of the recent queries: row `slot` (every row when slot == -1) over
  // every live block, plus the last live block's column for every slot, in place.
  "update_window_logits_(Tensor(a!) window_logits, Tensor query_window, Tensor key_blocks, "
      "int num_blocks, int slot, float logit_scale) -> ()",
  // Decode block scores from the cached logits: mean over heads and live slots of the softmax rows.
  "window_block_scores(Tensor window_logits, int window_fill, int num_blocks) -> Tensor",
  // One decode step's selection (sketch new q/k, state updates, scores, walk, select) in one call.
  "select_decode_blocks_(Tensor q, Tensor k, Tensor(a!) key_blocks, Tensor(b!) query_window, "
      "Tensor(c!) window_logits, Tensor(d!) transition, Tensor signs, Tensor coords, int window_fill, "
      "int pushes, int block_size, "
      "int degree, float damping, float logit_scale, float keep_frac, int window_tokens, "
      "int exclude_sink_tokens, int attend_sink_tokens) -> (Tensor block_index, Tensor num_selected)",
  // keys4 decode scorer (docs/spec.md section 7). 4-bit key cache rows [seq_lens - T, seq_lens) from k.
  // page_table [B,max_pages] (optional, with seq_lens): codes/scales are page pools [pages,Hkv,64,..].
  "quantize_keys4_(Tensor(a!) codes, Tensor(b!) scales, Tensor k, Tensor? seq_lens=None, "
      "bool validate=True, Tensor? page_table=None) -> ()",
  // Block attention mass of the current query per kv group from the 4-bit keys: [B,Hkv,ceil(cap/64)].
  "score_blocks_keys4(Tensor q, Tensor codes, Tensor scales, Tensor? seq_lens=None, "
      "float? softmax_scale=None, bool validate=True, Tensor? page_table=None) -> Tensor",
  // Sampled-row prefill block scores (docs/spec.md section 11): per kv group, `rows` query rows of
  // each 64-query block and head, their exact causal softmax summed per key block, rows
  // normalized -> [B,Hkv,ceil(Tq/64),ceil(Tk/64)] fp32.
  "score_blocks_sampled_rows(Tensor q, Tensor k, int rows, float? softmax_scale=None) -> Tensor",
  // Sink + window + quantile rule per kv group -> (block_index [B,Hkv,1,W], num_selected [B,Hkv,1]).
  "select_blocks_keys4(Tensor mass, Tensor? seq_lens, float keep_frac, float window_frac, "
      "float sink_frac, bool validate=True) -> (Tensor block_index, Tensor num_selected)",
};

}  // namespace sketchwalk
