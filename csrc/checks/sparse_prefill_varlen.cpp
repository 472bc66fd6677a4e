// Argument checks of sparse_prefill_varlen (a ragged batch: packed NHD queries with
// cu_seqlens_q; keys packed with cu_seqlens_k, or in a paged cache with page_table and
// seq_lens_k), in two steps like sparse_prefill's: check_sparse_prefill_varlen_args (ranks,
// dtypes, devices, shapes: no memory read), then check_sparse_prefill_varlen_values (with
// validate and no graph capture: the lengths, page ids and each sequence's block index rows;
// copies the small length arrays to the host, one sync on CUDA). varlen_spans gives the CPU
// version each sequence's spans.
#include <ATen/ATen.h>

#include "checks.h"
#include "sketchwalk/block_index.h"

namespace sketchwalk {

namespace {

constexpr const char* kOp = "sparse_prefill_varlen";

void check_lengths_tensor(const at::Tensor& t, const char* arg, const char* dims, int64_t size,
                          const at::Tensor& q) {
  check_tensor(t, kOp, arg, 1, dims, {at::kInt});
  check_same_device(t, q, kOp, arg, "q");
  check_size(t, kOp, arg, 0, size, dims);
}

}  // namespace

VarlenAttentionShape check_sparse_prefill_varlen_args(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& block_index,
    const at::Tensor& num_selected, const at::Tensor& cu_seqlens_q,
    const std::optional<at::Tensor>& cu_seqlens_k, const std::optional<at::Tensor>& seq_lens_k,
    const std::optional<at::Tensor>& page_table, std::optional<double> softmax_scale) {
  check_rank(q, kOp, "q", 3, "[total_q, num_q_heads, head_dim] (packed tokens, NHD)");
  check_dtype(q, kOp, "q", {at::kHalf, at::kBFloat16, at::kFloat});
  const bool paged = page_table.has_value();
  SW_CHECK_ARG(paged != cu_seqlens_k.has_value(), kOp, "cu_seqlens_k",
               "must be given for packed keys and omitted for a paged cache (page_table); got ",
               cu_seqlens_k.has_value() ? "both" : "neither");
  SW_CHECK_ARG(paged == seq_lens_k.has_value(), kOp, "seq_lens_k",
               "must be given with page_table (the keys of each sequence) and only then");
  const char* kv_dims = paged ? "[num_pages, 64, num_kv_heads, head_dim] (a paged cache)"
                              : "[total_k, num_kv_heads, head_dim] (packed tokens, NHD)";
  check_rank(k, kOp, "k", paged ? 4 : 3, kv_dims);
  check_rank(v, kOp, "v", paged ? 4 : 3, kv_dims);
  check_rank(block_index, kOp, "block_index", 4,
             "[num_seqs, index_heads, num_q_blocks, max_selected]");
  check_rank(num_selected, kOp, "num_selected", 3, "[num_seqs, index_heads, num_q_blocks]");
  for (auto [t, name] : {std::pair{&k, "k"}, {&v, "v"}}) {
    SW_CHECK_ARG(t->scalar_type() == q.scalar_type(), kOp, name, "must have the dtype of 'q' (",
                 c10::toString(q.scalar_type()), "), got ", c10::toString(t->scalar_type()));
    check_same_device(*t, q, kOp, name, "q");
  }
  check_dtype(block_index, kOp, "block_index", {at::kInt});
  check_dtype(num_selected, kOp, "num_selected", {at::kInt});
  check_same_device(block_index, q, kOp, "block_index", "q");
  check_same_device(num_selected, q, kOp, "num_selected", "q");
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"},
                         {&block_index, "block_index"}, {&num_selected, "num_selected"}}) {
    check_last_dim_contiguous(*t, kOp, name);
  }
  VarlenAttentionShape vs{};
  AttentionShape& s = vs.shape;
  vs.paged = paged;
  s.batch = block_index.size(0);
  s.num_q_heads = q.size(1);
  s.head_dim = q.size(2);
  s.num_queries = q.size(0);
  s.num_kv_heads = k.size(paged ? 2 : 1);
  SW_CHECK_ARG(is_attention_head_dim(s.head_dim), kOp, "q", "has unsupported head_dim ",
               s.head_dim, "; supported head_dim values are {", kAttentionHeadDimSmall, ", ",
               kAttentionHeadDimLarge, "}");
  check_size(k, kOp, "k", k.dim() - 1, s.head_dim, "head_dim of 'q'");
  if (paged) {
    check_size(k, kOp, "k", 1, kIndexBlockSize, "tokens per page = the block size, 64");
    vs.num_pages = k.size(0);
    s.num_keys = vs.num_pages * kIndexBlockSize;
  } else {
    s.num_keys = k.size(0);
  }
  SW_CHECK_ARG(v.sizes() == k.sizes(), kOp, "v", "must have the shape of 'k' ", k.sizes(),
               ", got ", v.sizes());
  SW_CHECK_ARG(s.num_kv_heads >= 1 && s.num_q_heads % s.num_kv_heads == 0, kOp, "k", "has ",
               s.num_kv_heads, " heads, which must divide the ", s.num_q_heads,
               " heads of 'q' (GQA)");
  check_int32(s.num_queries, kOp, "q", 0);
  check_int32(s.num_keys, kOp, "k", 0);
  s.block_size = kIndexBlockSize;
  s.num_q_blocks = block_index.size(2);
  s.index_heads = block_index.size(1);
  s.max_selected = block_index.size(3);
  SW_CHECK_ARG(s.index_heads == 1 || s.index_heads == s.num_kv_heads, kOp, "block_index",
               "must have index_heads (dim 1) equal to 1 or num_kv_heads=", s.num_kv_heads,
               ", got ", s.index_heads);
  SW_CHECK_ARG(num_selected.sizes() == block_index.sizes().slice(0, 3), kOp, "num_selected",
               "must have shape ", block_index.sizes().slice(0, 3),
               " (the first 3 dims of 'block_index'), got ", num_selected.sizes());
  check_lengths_tensor(cu_seqlens_q, "cu_seqlens_q", "[num_seqs + 1]", s.batch + 1, q);
  if (paged) {
    check_lengths_tensor(*seq_lens_k, "seq_lens_k", "[num_seqs]", s.batch, q);
    check_tensor(*page_table, kOp, "page_table", 2, "[num_seqs, max_pages]", {at::kInt});
    check_same_device(*page_table, q, kOp, "page_table", "q");
    check_size(*page_table, kOp, "page_table", 0, s.batch, "num_seqs");
  } else {
    check_lengths_tensor(*cu_seqlens_k, "cu_seqlens_k", "[num_seqs + 1]", s.batch + 1, q);
  }
  check_softmax_scale(softmax_scale, kOp);
  return vs;
}

std::vector<VarlenSpan> varlen_spans(const VarlenAttentionShape& vs, const at::Tensor& cu_seqlens_q,
                                     const std::optional<at::Tensor>& cu_seqlens_k,
                                     const std::optional<at::Tensor>& seq_lens_k,
                                     const std::optional<at::Tensor>& page_table) {
  const AttentionShape& s = vs.shape;
  const auto cq = cu_seqlens_q.to(at::kCPU).contiguous();
  const int* cq_p = cq.data_ptr<int>();
  at::Tensor ck, lk;
  if (vs.paged) {
    lk = seq_lens_k->to(at::kCPU).contiguous();
  } else {
    ck = cu_seqlens_k->to(at::kCPU).contiguous();
  }
  SW_CHECK_ARG(cq_p[0] == 0 && cq_p[s.batch] == s.num_queries, kOp, "cu_seqlens_q",
               "must start at 0 and end at total_q=", s.num_queries, " (the tokens of 'q'), got ",
               cq_p[0], " and ", cq_p[s.batch]);
  if (!vs.paged) {
    const int* ck_p = ck.data_ptr<int>();
    SW_CHECK_ARG(ck_p[0] == 0 && ck_p[s.batch] == s.num_keys, kOp, "cu_seqlens_k",
                 "must start at 0 and end at total_k=", s.num_keys, " (the tokens of 'k'), got ",
                 ck_p[0], " and ", ck_p[s.batch]);
  }
  const int64_t max_pages = vs.paged ? page_table->size(1) : 0;
  std::vector<VarlenSpan> spans(static_cast<size_t>(s.batch));
  for (int64_t b = 0; b < s.batch; ++b) {
    VarlenSpan& sp = spans[static_cast<size_t>(b)];
    sp.q0 = cq_p[b];
    sp.num_queries = cq_p[b + 1] - cq_p[b];
    SW_CHECK_ARG(sp.num_queries >= 0, kOp, "cu_seqlens_q", "must be non-decreasing, got ",
                 cq_p[b], " then ", cq_p[b + 1], " at sequence ", b);
    if (vs.paged) {
      sp.k0 = 0;
      sp.num_keys = lk.data_ptr<int>()[b];
      SW_CHECK_ARG(sp.num_keys >= 0 && sp.num_keys <= max_pages * kIndexBlockSize, kOp,
                   "seq_lens_k", "must hold lengths in [0, 64 * max_pages=",
                   max_pages * kIndexBlockSize, "] (the pages of 'page_table'), got ",
                   sp.num_keys, " at sequence ", b);
    } else {
      const int* ck_p = ck.data_ptr<int>();
      sp.k0 = ck_p[b];
      sp.num_keys = ck_p[b + 1] - ck_p[b];
      SW_CHECK_ARG(sp.num_keys >= 0, kOp, "cu_seqlens_k", "must be non-decreasing, got ",
                   ck_p[b], " then ", ck_p[b + 1], " at sequence ", b);
    }
    SW_CHECK_ARG(sp.num_queries <= sp.num_keys, kOp, "cu_seqlens_q", "gives sequence ", b, " ",
                 sp.num_queries, " queries, more than its ", sp.num_keys,
                 " keys (queries end at the last key)");
    SW_CHECK_ARG((sp.num_queries + kIndexBlockSize - 1) / kIndexBlockSize <= s.num_q_blocks, kOp,
                 "block_index", "has ", s.num_q_blocks, " rows (dim 2), fewer than the ",
                 (sp.num_queries + kIndexBlockSize - 1) / kIndexBlockSize,
                 " query blocks of sequence ", b);
  }
  return spans;
}

AttentionShape sequence_shape(const VarlenAttentionShape& vs, const VarlenSpan& sp) {
  AttentionShape s = vs.shape;
  s.batch = 1;
  s.num_queries = sp.num_queries;
  s.num_keys = sp.num_keys;
  s.num_q_blocks = (sp.num_queries + kIndexBlockSize - 1) / kIndexBlockSize;
  return s;
}

void check_sparse_prefill_varlen_values(const VarlenAttentionShape& vs, const at::Tensor& q,
                                        const at::Tensor& block_index,
                                        const at::Tensor& num_selected,
                                        const at::Tensor& cu_seqlens_q,
                                        const std::optional<at::Tensor>& cu_seqlens_k,
                                        const std::optional<at::Tensor>& seq_lens_k,
                                        const std::optional<at::Tensor>& page_table,
                                        bool validate) {
  if (!read_values(validate, q)) return;
  const auto spans = varlen_spans(vs, cu_seqlens_q, cu_seqlens_k, seq_lens_k, page_table);
  for (size_t b = 0; b < spans.size(); ++b) {
    const VarlenSpan& sp = spans[b];
    if (sp.num_queries == 0) continue;  // no row of this sequence is read
    const int64_t bi = static_cast<int64_t>(b);
    const AttentionShape s = sequence_shape(vs, sp);
    validate_block_index(kOp, block_index.slice(0, bi, bi + 1).slice(2, 0, s.num_q_blocks),
                         num_selected.slice(0, bi, bi + 1).slice(2, 0, s.num_q_blocks), s);
    if (vs.paged) {
      const int64_t pages = (sp.num_keys + kIndexBlockSize - 1) / kIndexBlockSize;
      const auto row = page_table->select(0, bi).slice(0, 0, pages);
      SW_CHECK_ARG(pages == 0 || at::all(at::logical_and(row >= 0, row < vs.num_pages)).item<bool>(),
                   kOp, "page_table", "holds a page id out of [0, num_pages=", vs.num_pages,
                   ") among the ", pages, " pages of sequence ", bi);
    }
  }
}

}  // namespace sketchwalk
