// Every kernel-family params struct, shared by the CPU and CUDA kernels and the
// benchmarks. Torch-free. Strides are in elements, never bytes; sizes are int, strides
// and offsets int64_t (1M tokens x 32 heads x 128 dims passes 2^31).
//
// Glossary (one name per dimension, used everywhere):
//   batch, num_q_heads, num_kv_heads (num_q_heads % num_kv_heads == 0), num_queries (Tq),
//   num_keys (Tk), head_dim (D), block_size (b), num_q_blocks = ceil(Tq/b),
//   num_kv_blocks = ceil(Tk/b), sketch_dim (m), sketch_pow2 (n = next_pow2(D)),
//   index_heads (1 or num_kv_heads), max_selected (width of the block index).
#pragma once

#include <cstdint>

namespace sketchwalk {

// Element type of a kernel's half-precision or float inputs (the host maps at::ScalarType to it).
enum class DType { kFloat16, kBFloat16, kFloat32 };

// hadamard_sketch: x [batch, heads, tokens, head_dim] -> out [batch, heads, num_blocks, sketch_dim]
struct HadamardSketchParams {
  const void* __restrict__ x;           // fp16 / bf16 / fp32, last dim contiguous
  const float* __restrict__ signs;      // [sketch_pow2], +-1
  const int64_t* __restrict__ coords;   // [sketch_dim], distinct, in [0, sketch_pow2)
  float* __restrict__ out;              // [batch, heads, num_blocks, sketch_dim], last dim contiguous
  int64_t x_batch_stride, x_head_stride, x_token_stride;  // elements
  int64_t out_batch_stride, out_head_stride, out_block_stride;  // elements
  // 0: out = sketch. c > 0: out = (out * c + sketch) / (c + 1), the running mean of a key
  // block that already holds c tokens (decode; same float32 operation order as
  // update_block_sketch_).
  int blend_count;
  int batch, heads, tokens, head_dim;
  int block_size, num_blocks;           // num_blocks = ceil(tokens / block_size)
  int sketch_pow2, sketch_dim;          // n, m
  float scale;                          // 1 / sqrt(m)
  // Packed sequences (hadamard_sketch_varlen): int32 [batch + 1] offsets into x's token axis
  // (x_batch_stride 0), num_blocks the padded count; a block past its sequence's end is written
  // as zeros. nullptr: every batch row holds `tokens` tokens.
  const int* __restrict__ cu_seqlens;
};

// score_blocks: q_sketch [batch, num_q_heads, rows, m], k_sketch [batch, num_kv_heads, cols, m]
// -> out [batch, rows, cols], row-stochastic.
struct ScoreBlocksParams {
  const float* __restrict__ q_sketch;
  const float* __restrict__ k_sketch;
  float* __restrict__ out;              // [batch, rows, cols], contiguous
  int64_t q_batch_stride, q_head_stride, q_row_stride;  // elements
  int64_t k_batch_stride, k_head_stride, k_row_stride;  // elements
  int batch, num_q_heads, num_kv_heads, rows, cols, sketch_dim;
  float logit_scale;                    // m^1.5 / (100 n) for Sketch&Walk
  // int32 [batch]: batch row b's softmax runs over its first col_counts[b] (>= 1) columns; the
  // others are written as 0 (padded sketches of a ragged batch). nullptr: all `cols`.
  const int* __restrict__ col_counts;
};

// Decode window logits (update_window_logits.cu, window_block_scores.cu): the cached sketched logits of the recent queries,
//   logits[b, h, s, j] = logit_scale * <query_window[b, h, s], key_blocks[b, h / g, j]>,
// refreshed per step for the new query's row and the open key block's column only.
struct WindowLogitsParams {
  float* __restrict__ logits;           // [batch, num_q_heads, W, capacity], last dim contiguous
  const float* __restrict__ query_window;  // [batch, num_q_heads, W, m], last dim contiguous
  const float* __restrict__ key_blocks;    // [batch, num_kv_heads, >= num_blocks, m], idem
  int64_t l_batch_stride, l_head_stride, l_row_stride;  // elements
  int64_t q_batch_stride, q_head_stride, q_row_stride;  // elements
  int64_t k_batch_stride, k_head_stride, k_row_stride;  // elements
  int batch, num_q_heads, num_kv_heads, window, num_blocks, sketch_dim;
  int row_begin, row_end;               // rows recomputed over every block; [0, W) seeds all
  bool refresh_last_column;             // also recompute column num_blocks - 1 for every row
  float logit_scale;
};

// window_block_scores: r[b, j] = mean over (h, s < window_fill) of softmax_j(logits[b, h, s, :n]).
struct WindowScoresParams {
  const float* __restrict__ logits;     // as WindowLogitsParams::logits
  float* __restrict__ row_offset;       // workspace [batch, num_q_heads, window_fill]
  float* __restrict__ r;                // [batch, num_blocks], contiguous
  int64_t l_batch_stride, l_head_stride, l_row_stride;
  int batch, num_q_heads, window_fill, num_blocks;
};

// select_blocks: scores [batch, num_q_blocks, num_kv_blocks] -> block index (block_index.h)
struct SelectBlocksParams {
  const float* __restrict__ scores;     // [batch, num_q_blocks, num_kv_blocks]
  int64_t scores_batch_stride, scores_row_stride;  // elements
  int* __restrict__ block_index;        // [batch, 1, num_q_blocks, num_kv_blocks], contiguous
  int* __restrict__ num_selected;       // [batch, 1, num_q_blocks], contiguous
  int batch, num_queries, num_keys, block_size, num_q_blocks, num_kv_blocks;
  double keep_frac;                     // fraction of candidates kept by the quantile rule; float64
                                        // because the quantile level 1 - keep_frac must match the
                                        // reference's Python float arithmetic exactly
  int window_tokens;                    // w >= 1
  int exclude_sink_tokens;              // sink tokens removed from the candidate set
  int attend_sink_tokens;               // leading tokens every query attends
  int dense_last_q_blocks;              // trailing query blocks that keep every causal block
  // bool [batch, num_q_blocks] (row stride dense_rows_stride): flagged query blocks keep every
  // causal block too. nullptr: none flagged.
  const bool* __restrict__ dense_rows;
  int64_t dense_rows_stride;
  // The flagged rows' extra blocks come out of the keep fraction of their sequence's other rows
  // (sketchwalk/dense_rows_budget.h). false: they add to it.
  bool dense_rows_in_budget;
  // select_blocks_varlen: int32 [batch, kSelectSeqArgs], each row's (num_queries, num_keys,
  // window_tokens, exclude_sink_tokens, attend_sink_tokens) in place of the scalars above
  // (num_q_blocks / num_kv_blocks are then the padded maxima; rows past a sequence's query
  // blocks select nothing). nullptr: the scalars for every row.
  const int* __restrict__ seq_args;
};

// query_spread_rows: each sequence row's query blocks of largest spread as dense-row flags
// (sketchwalk/query_spread.h has the rule).
struct QuerySpreadParams {
  const void* __restrict__ q;           // fp16 / bf16 / fp32 [batch, heads, tokens, head_dim]
  int64_t q_batch_stride, q_head_stride, q_token_stride;  // elements; last dim contiguous
  // int32 [rows + 1]: row r's tokens are q[0, :, cu_seqlens[r] : cu_seqlens[r + 1]]. nullptr:
  // row r is batch row r, tokens [0, tokens).
  const int* __restrict__ cu_seqlens;
  // int32 [rows]: row r ranks its first min(seq_q_blocks[r], its own blocks) query blocks (0:
  // none). nullptr: every row ranks all of its own blocks.
  const int* __restrict__ seq_q_blocks;
  float* __restrict__ spread;           // [rows, width] scratch (each row's own blocks written)
  bool* __restrict__ dense_rows;        // [rows, width], the output
  int rows, heads, tokens, head_dim, block_size, width, dense_last_q_blocks;
  double frac;                          // fraction of the ranked blocks kept dense
};

// Columns of select_blocks_varlen's seq_args.
constexpr int kSelectSeqArgs = 5;

// sparse_prefill / sparse_decode: q [batch, num_q_heads, num_queries, head_dim],
// k, v [batch, num_kv_heads, num_keys, head_dim] -> out like q, lse [batch, num_q_heads, num_queries]
struct SparseAttentionParams {
  const void* __restrict__ q;
  const void* __restrict__ k;
  const void* __restrict__ v;
  void* __restrict__ out;
  float* __restrict__ lse;              // natural log; -inf for a query with no visible key
  int64_t q_batch_stride, q_head_stride, q_token_stride;      // elements
  int64_t k_batch_stride, k_head_stride, k_token_stride;      // elements
  int64_t v_batch_stride, v_head_stride, v_token_stride;      // elements
  int64_t out_batch_stride, out_head_stride, out_token_stride;  // elements
  int64_t lse_batch_stride, lse_head_stride;                  // elements; token stride is 1
  const int* __restrict__ block_index;  // see block_index.h
  const int* __restrict__ num_selected;
  int64_t index_batch_stride, index_head_stride, index_row_stride;  // elements; last dim contiguous
  int64_t count_batch_stride, count_head_stride;                    // elements; last dim contiguous
  int index_heads;                      // 1 or num_kv_heads
  int batch, num_q_heads, num_kv_heads, num_queries, num_keys, head_dim;
  int block_size, num_q_blocks, max_selected;
  float softmax_scale;
  // Keys per sequence [batch] (device), or nullptr. sparse_decode: a fixed-capacity cache (keys
  // at or past seq_lens[b] are never attended, as in a CUDA-graph loop); the paged layout: the
  // sequence's key count. Overrides num_keys and cu_seqlens_k's lengths.
  const int* __restrict__ seq_lens;
  // Ragged batches (sparse_prefill_varlen), read through SeqInfo::make (attention_core.cuh):
  // sequence b's queries are tokens [cu_seqlens_q[b], cu_seqlens_q[b + 1]) of q / out / lse
  // (q_batch_stride = 0: packed [total_q, heads, D] tokens), and with cu_seqlens_k its keys are
  // tokens [cu_seqlens_k[b], cu_seqlens_k[b + 1]) of k / v. num_queries / num_keys then hold
  // the packed buffers' token counts (total_q, total_k: the tensor maps' extents) and
  // num_q_blocks the block index's rows, ceil(longest query span / 64) or more: the grid's
  // extent. nullptr: dense.
  const int* __restrict__ cu_seqlens_q;  // [batch + 1] or nullptr
  const int* __restrict__ cu_seqlens_k;  // [batch + 1] or nullptr
  // Paged K / V (page = one 64-key block): k / v are page pools [num_pages, 64, num_kv_heads,
  // head_dim] and key block j of sequence b lives in page page_table[b * page_table_stride + j];
  // k_batch_stride / v_batch_stride are then the strides between pages and seq_lens gives the
  // key counts. nullptr: k / v rows of sequence b are its batch row (dense) or its cu_seqlens_k
  // span (packed).
  const int* __restrict__ page_table;    // [batch, max_pages] or nullptr
  int64_t page_table_stride;             // elements between the rows of page_table
  // sparse_decode over a left-padded dense cache: sequence b's first key is token k_starts[b]
  // of its batch row (its keys [k_starts[b], k_starts[b] + seq_lens[b]); block j of the index
  // starts at key 64 j of the sequence). nullptr: 0.
  const int* __restrict__ k_starts;      // [batch] or nullptr
};

// quantize_keys4_: k [batch, num_kv_heads, tokens, head_dim] -> rows [L_b - tokens, L_b) of the
// 4-bit key cache (layout and rule in keys4.h), L_b = seq_lens[b], or tokens when seq_lens is null.
struct QuantizeKeys4Params {
  const void* __restrict__ k;           // fp16 / bf16 / fp32, last dim contiguous
  uint8_t* __restrict__ codes;          // [batch, num_kv_heads, capacity, head_dim / 2]
  float* __restrict__ scales;           // [batch, num_kv_heads, capacity]
  const int* __restrict__ seq_lens;     // [batch] or nullptr
  int64_t k_batch_stride, k_head_stride, k_token_stride;        // elements
  int64_t codes_batch_stride, codes_head_stride, codes_token_stride;  // bytes (= elements)
  int64_t scales_batch_stride, scales_head_stride;              // elements; token stride 1
  int batch, num_kv_heads, tokens, head_dim, capacity;
  // A paged cache (keys4_slot, keys4.h): codes / scales are page pools [num_pages, num_kv_heads,
  // 64, ...] (their batch strides step pages) and capacity is 64 * max_pages. nullptr: dense.
  const int* __restrict__ page_table;   // [batch, max_pages] or nullptr
  int64_t page_table_stride;            // elements between the rows of page_table
};

// score_blocks_keys4: block attention mass of one query per sequence from the 4-bit key cache,
//   mass[b, g, j] = sum over the query heads h of kv group g and the keys t < L_b of key
//                   block j of softmax_t(softmax_scale * <q[b, h], scales[b, g, t] * codes[b, g, t]>),
// in two passes: per (query head, key block) the block's max logit and its sum of exp2 against
// that max (block_max, block_sum, log2 domain), then per kv group the heads' totals and the mass.
struct ScoreKeys4Params {
  const void* __restrict__ q;           // [batch, num_q_heads, 1, head_dim] fp16 / bf16
  const uint8_t* __restrict__ codes;    // as QuantizeKeys4Params
  const float* __restrict__ scales;
  const int* __restrict__ seq_lens;     // [batch] or nullptr (= capacity)
  float* __restrict__ block_max;        // [batch, num_q_heads, num_blocks], set by run_score_keys4
  float* __restrict__ block_sum;        // from its workspace (csrc/cuda/launch.h)
  float* __restrict__ mass;             // [batch, num_kv_heads, num_blocks], contiguous
  int64_t q_batch_stride, q_head_stride;                        // elements
  int64_t codes_batch_stride, codes_head_stride, codes_token_stride;  // bytes
  int64_t scales_batch_stride, scales_head_stride;              // elements
  int batch, num_q_heads, num_kv_heads, head_dim, capacity;
  int num_blocks;                       // ceil(capacity / kIndexBlockSize); mass is 0 past L_b
  float softmax_scale;
  const int* __restrict__ page_table;   // as QuantizeKeys4Params
  int64_t page_table_stride;
};

// score_blocks_sampled_rows (docs/spec.md section 11): per (batch, kv group g, query block i),
// `rows` sampled query rows of each of the group's query heads, each row's exact causal softmax
// over every key, summed per key block over those rows and heads and divided by their count
// (group * rows): scores[b, g, i, c], every row summing to 1 over its causal blocks, 0 past them.
struct SampledRowsParams {
  const void* __restrict__ q;           // [batch, num_q_heads, num_queries, head_dim]
  const void* __restrict__ k;           // [batch, num_kv_heads, num_keys, head_dim]
  float* __restrict__ scores;           // [batch, num_kv_heads, num_q_blocks, num_k_blocks], contiguous
  int64_t q_batch_stride, q_head_stride, q_token_stride;  // elements; last dim contiguous
  int64_t k_batch_stride, k_head_stride, k_token_stride;  // elements; last dim contiguous
  int batch, num_q_heads, num_kv_heads, head_dim;
  int num_queries, num_keys;            // queries end at the last key (num_queries <= num_keys)
  int rows;                             // sampled rows per query block and head, 1..64
  int num_q_blocks, num_k_blocks;       // ceil(num_queries / 64), ceil(num_keys / 64)
  int q_blocks_per_cta;                 // consecutive query blocks one CTA scores (launcher's
                                        // choice, sampled_rows.h); their rows share each K tile
  float softmax_scale;
};

// select_blocks_keys4: per (batch, kv group) row of mass [batch, num_kv_heads, width], with
// n = ceil(L_b / 64) live blocks and the sink / window blocks of keys4_budget (keys4.h): keep
// [0, sink_blocks), [n - window_blocks, n) and the candidates between them whose mass is
// strictly above the (1 - keep_frac) linear quantile of the candidates' mass.
struct SelectKeys4Params {
  const float* __restrict__ mass;       // [batch, num_kv_heads, width], contiguous
  const int* __restrict__ seq_lens;     // [batch] or nullptr (= width * 64 keys)
  int* __restrict__ block_index;        // [batch, num_kv_heads, 1, width] (block_index.h)
  int* __restrict__ num_selected;       // [batch, num_kv_heads, 1]
  int batch, num_kv_heads, width;
  double keep_frac, window_frac, sink_frac;  // float64: budgets as Python computes them
};

// update_block_sketch_: folds one token's sketch into its key block's running mean, in place:
// block[b, h, d] = count == 0 ? token[b, h, d] : (block[b, h, d] * count + token[b, h, d]) /
// (count + 1), each operation rounded to float32 (the CPU and CUDA kernels agree bit for bit).
// `block` points at the token's block row.
struct UpdateBlockSketchParams {
  float* __restrict__ block;            // [batch, heads, sketch_dim] at the strides below
  const float* __restrict__ token;      // [batch, heads, sketch_dim] at the strides below
  int64_t block_batch_stride, block_head_stride, block_dim_stride;  // elements
  int64_t token_batch_stride, token_head_stride, token_dim_stride;  // elements
  int batch, heads, sketch_dim;
  int count;                            // tokens already in the block, in [0, block_size)
};

}  // namespace sketchwalk
