// The op table on the C++ ABI: every torch.ops.sketchwalk.* schema (csrc/op_schemas.h), then
// the CPU, CUDA and device-generic implementations. Nothing else. The stable-ABI build
// (SKETCHWALK_STABLE_ABI_OPS) compiles csrc/stable/registration.cpp instead.
#include <torch/library.h>

#include "op_schemas.h"
#include "ops.h"

TORCH_LIBRARY(sketchwalk, m) {
  for (const char* schema : sketchwalk::kOpSchemas) m.def(schema);
}

TORCH_LIBRARY_IMPL(sketchwalk, CPU, m) {
  m.impl("sparse_prefill", &sketchwalk::sparse_prefill_cpu);
  m.impl("sparse_prefill_varlen", &sketchwalk::sparse_prefill_varlen_cpu);
  m.impl("sparse_decode", &sketchwalk::sparse_decode_cpu);
  m.impl("update_block_sketch_", &sketchwalk::update_block_sketch_cpu);
  m.impl("update_window_logits_", &sketchwalk::update_window_logits_cpu);
  m.impl("window_block_scores", &sketchwalk::window_block_scores_cpu);
  m.impl("hadamard_sketch", &sketchwalk::hadamard_sketch_cpu);
  m.impl("hadamard_sketch_varlen", &sketchwalk::hadamard_sketch_varlen_cpu);
  m.impl("score_blocks", &sketchwalk::score_blocks_cpu);
  m.impl("select_blocks", &sketchwalk::select_blocks_cpu);
  m.impl("select_blocks_varlen", &sketchwalk::select_blocks_varlen_cpu);
  m.impl("query_spread_rows", &sketchwalk::query_spread_rows_cpu);
  m.impl("update_block_matrix_", &sketchwalk::update_block_matrix_cpu);
  m.impl("quantize_keys4_", &sketchwalk::quantize_keys4_cpu);
  m.impl("score_blocks_keys4", &sketchwalk::score_blocks_keys4_cpu);
  m.impl("score_blocks_sampled_rows", &sketchwalk::score_blocks_sampled_rows_cpu);
  m.impl("select_blocks_keys4", &sketchwalk::select_blocks_keys4_cpu);
}

#ifdef SKETCHWALK_WITH_CUDA
TORCH_LIBRARY_IMPL(sketchwalk, CUDA, m) {
  m.impl("sparse_prefill", &sketchwalk::sparse_prefill_cuda);
  m.impl("sparse_prefill_varlen", &sketchwalk::sparse_prefill_varlen_cuda);
  m.impl("sparse_decode", &sketchwalk::sparse_decode_cuda);
  m.impl("select_decode_blocks_", &sketchwalk::select_decode_blocks_cuda);
  m.impl("update_block_sketch_", &sketchwalk::update_block_sketch_cuda);
  m.impl("update_window_logits_", &sketchwalk::update_window_logits_cuda);
  m.impl("window_block_scores", &sketchwalk::window_block_scores_cuda);
  m.impl("hadamard_sketch", &sketchwalk::hadamard_sketch_cuda);
  m.impl("hadamard_sketch_varlen", &sketchwalk::hadamard_sketch_varlen_cuda);
  m.impl("score_blocks", &sketchwalk::score_blocks_cuda);
  m.impl("select_blocks", &sketchwalk::select_blocks_cuda);
  m.impl("select_blocks_varlen", &sketchwalk::select_blocks_varlen_cuda);
  m.impl("query_spread_rows", &sketchwalk::query_spread_rows_cuda);
  m.impl("update_block_matrix_", &sketchwalk::update_block_matrix_cuda);
  m.impl("quantize_keys4_", &sketchwalk::quantize_keys4_cuda);
  m.impl("score_blocks_keys4", &sketchwalk::score_blocks_keys4_cuda);
  m.impl("score_blocks_sampled_rows", &sketchwalk::score_blocks_sampled_rows_cuda);
  m.impl("select_blocks_keys4", &sketchwalk::select_blocks_keys4_cuda);
}
#endif

// Built from ATen ops, so one implementation serves every device (select_decode_blocks_ has a
// fused CUDA version above; this composition defines it and serves the CPU).
TORCH_LIBRARY_IMPL(sketchwalk, CompositeExplicitAutograd, m) {
  m.impl("push_query_window_", &sketchwalk::push_query_window_);
  m.impl("walk_blocks", &sketchwalk::walk_blocks);
  m.impl("select_decode_blocks_", &sketchwalk::select_decode_blocks_);
}
