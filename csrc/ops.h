// Tensor-level host entry points of every op (docs/ops.md is the contract). The CPU versions
// live in csrc/cpu/<op>.cpp, the CUDA host wrappers in csrc/cuda/<op>.cpp, the device-generic
// compositions (built from ATen ops, any device) in csrc/composite/<op>.cpp, every op's
// argument checks in csrc/checks/<op>.cpp (declared in csrc/checks.h).
// csrc/registration.cpp binds them to torch.ops.sketchwalk.*.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace sketchwalk {

// ---- CPU ----------------------------------------------------------------------------
at::Tensor hadamard_sketch_cpu(const at::Tensor& x, const at::Tensor& signs,
                               const at::Tensor& coords, int64_t block_size, bool validate);
at::Tensor hadamard_sketch_varlen_cpu(const at::Tensor& x, const at::Tensor& signs,
                                      const at::Tensor& coords, int64_t block_size,
                                      const at::Tensor& cu_seqlens, int64_t max_blocks,
                                      bool validate);
at::Tensor score_blocks_cpu(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                            double logit_scale, const std::optional<at::Tensor>& num_kv_blocks,
                            bool validate);
std::tuple<at::Tensor, at::Tensor> select_blocks_cpu(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks,
    const std::optional<at::Tensor>& dense_rows, bool dense_rows_in_budget);
std::tuple<at::Tensor, at::Tensor> select_blocks_varlen_cpu(
    const at::Tensor& scores, const at::Tensor& seq_args, int64_t block_size, double keep_frac,
    int64_t dense_last_q_blocks, bool validate, const std::optional<at::Tensor>& dense_rows,
    bool dense_rows_in_budget);
at::Tensor query_spread_rows_cpu(const at::Tensor& q, int64_t block_size, double frac,
                                 int64_t dense_last_q_blocks,
                                 const std::optional<at::Tensor>& cu_seqlens, int64_t max_blocks,
                                 const std::optional<at::Tensor>& seq_q_blocks, bool validate);
std::tuple<at::Tensor, at::Tensor> sparse_prefill_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, std::optional<double> softmax_scale, bool validate);
std::tuple<at::Tensor, at::Tensor> sparse_prefill_varlen_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const at::Tensor& cu_seqlens_q,
    const std::optional<at::Tensor>& cu_seqlens_k, const std::optional<at::Tensor>& seq_lens_k,
    const std::optional<at::Tensor>& page_table, std::optional<double> softmax_scale,
    bool validate);
std::tuple<at::Tensor, at::Tensor> sparse_decode_cpu(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens,
    const std::optional<at::Tensor>& page_table,
    const std::optional<at::Tensor>& seq_starts);
void update_block_matrix_cpu(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                             int64_t block_size);
void update_window_logits_cpu(const at::Tensor& window_logits, const at::Tensor& query_window,
                              const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                              double logit_scale);
at::Tensor window_block_scores_cpu(const at::Tensor& window_logits, int64_t window_fill,
                                   int64_t num_blocks);
void quantize_keys4_cpu(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                        const std::optional<at::Tensor>& seq_lens, bool validate,
    const std::optional<at::Tensor>& page_table);
at::Tensor score_blocks_keys4_cpu(const at::Tensor& q, const at::Tensor& codes,
                                  const at::Tensor& scales,
                                  const std::optional<at::Tensor>& seq_lens,
                                  std::optional<double> softmax_scale, bool validate,
    const std::optional<at::Tensor>& page_table);
at::Tensor score_blocks_sampled_rows_cpu(const at::Tensor& q, const at::Tensor& k, int64_t rows,
                                         std::optional<double> softmax_scale);
std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cpu(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate);
void update_block_sketch_cpu(const at::Tensor& block_sketch, const at::Tensor& token_sketch,
                             int64_t num_tokens_before, int64_t block_size);

// ---- CUDA (csrc/cuda/*.cpp; compiled only with SKETCHWALK_WITH_CUDA) ------------------
at::Tensor hadamard_sketch_cuda(const at::Tensor& x, const at::Tensor& signs,
                                const at::Tensor& coords, int64_t block_size, bool validate);
at::Tensor hadamard_sketch_varlen_cuda(const at::Tensor& x, const at::Tensor& signs,
                                       const at::Tensor& coords, int64_t block_size,
                                       const at::Tensor& cu_seqlens, int64_t max_blocks,
                                       bool validate);
at::Tensor score_blocks_cuda(const at::Tensor& q_sketch, const at::Tensor& k_sketch,
                             double logit_scale, const std::optional<at::Tensor>& num_kv_blocks,
                             bool validate);
std::tuple<at::Tensor, at::Tensor> select_blocks_cuda(
    const at::Tensor& scores, int64_t num_queries, int64_t num_keys, int64_t block_size,
    double keep_frac, int64_t window_tokens, int64_t exclude_sink_tokens,
    int64_t attend_sink_tokens, int64_t dense_last_q_blocks,
    const std::optional<at::Tensor>& dense_rows, bool dense_rows_in_budget);
std::tuple<at::Tensor, at::Tensor> select_blocks_varlen_cuda(
    const at::Tensor& scores, const at::Tensor& seq_args, int64_t block_size, double keep_frac,
    int64_t dense_last_q_blocks, bool validate, const std::optional<at::Tensor>& dense_rows,
    bool dense_rows_in_budget);
at::Tensor query_spread_rows_cuda(const at::Tensor& q, int64_t block_size, double frac,
                                  int64_t dense_last_q_blocks,
                                  const std::optional<at::Tensor>& cu_seqlens, int64_t max_blocks,
                                  const std::optional<at::Tensor>& seq_q_blocks, bool validate);
std::tuple<at::Tensor, at::Tensor> sparse_prefill_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, std::optional<double> softmax_scale, bool validate);
std::tuple<at::Tensor, at::Tensor> sparse_prefill_varlen_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const at::Tensor& cu_seqlens_q,
    const std::optional<at::Tensor>& cu_seqlens_k, const std::optional<at::Tensor>& seq_lens_k,
    const std::optional<at::Tensor>& page_table, std::optional<double> softmax_scale,
    bool validate);
std::tuple<at::Tensor, at::Tensor> sparse_decode_cuda(
    const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
    const at::Tensor& block_index, const at::Tensor& num_selected,
    std::optional<double> softmax_scale, bool validate, const std::optional<at::Tensor>& seq_lens,
    const std::optional<at::Tensor>& page_table,
    const std::optional<at::Tensor>& seq_starts);
void update_block_matrix_cuda(const at::Tensor& transition, const at::Tensor& r, int64_t num_keys,
                              int64_t block_size);
void update_window_logits_cuda(const at::Tensor& window_logits, const at::Tensor& query_window,
                               const at::Tensor& key_blocks, int64_t num_blocks, int64_t slot,
                               double logit_scale);
at::Tensor window_block_scores_cuda(const at::Tensor& window_logits, int64_t window_fill,
                                    int64_t num_blocks);
std::tuple<at::Tensor, at::Tensor> select_decode_blocks_cuda(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes,
    int64_t block_size, int64_t degree, double damping, double logit_scale, double keep_frac,
    int64_t window_tokens, int64_t exclude_sink_tokens, int64_t attend_sink_tokens);
void quantize_keys4_cuda(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& k,
                         const std::optional<at::Tensor>& seq_lens, bool validate,
    const std::optional<at::Tensor>& page_table);
at::Tensor score_blocks_keys4_cuda(const at::Tensor& q, const at::Tensor& codes,
                                   const at::Tensor& scales,
                                   const std::optional<at::Tensor>& seq_lens,
                                   std::optional<double> softmax_scale, bool validate,
    const std::optional<at::Tensor>& page_table);
at::Tensor score_blocks_sampled_rows_cuda(const at::Tensor& q, const at::Tensor& k, int64_t rows,
                                          std::optional<double> softmax_scale);
std::tuple<at::Tensor, at::Tensor> select_blocks_keys4_cuda(
    const at::Tensor& mass, const std::optional<at::Tensor>& seq_lens, double keep_frac,
    double window_frac, double sink_frac, bool validate);
void update_block_sketch_cuda(const at::Tensor& block_sketch, const at::Tensor& token_sketch,
                              int64_t num_tokens_before, int64_t block_size);

// ---- any device (ATen compositions, csrc/composite/<op>.cpp) --------------------------
at::Tensor walk_blocks(const at::Tensor& base, const at::Tensor& transition,
                       const std::optional<at::Tensor>& init, int64_t degree, double damping);
void push_query_window_(const at::Tensor& window, const at::Tensor& q_sketch, int64_t position);
std::tuple<at::Tensor, at::Tensor> select_decode_blocks_(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_blocks,
    const at::Tensor& query_window, const at::Tensor& window_logits, const at::Tensor& transition,
    const at::Tensor& signs, const at::Tensor& coords, int64_t window_fill, int64_t pushes, int64_t block_size,
    int64_t degree, double damping, double logit_scale, double keep_frac, int64_t window_tokens,
    int64_t exclude_sink_tokens, int64_t attend_sink_tokens);


}  // namespace sketchwalk
