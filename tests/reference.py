"""Float64 pure-PyTorch reference for every torch.ops.sketchwalk op (the test oracle).

Written from docs/spec.md and docs/ops.md only; it never imports sketchwalk.
Every function takes tensors on any device, computes in float64 and returns float64
(or int32/bool for discrete outputs). Loops over blocks are used where they are clearer
than vectorized code. Shapes use the glossary of docs/ops.md:

    q [batch, num_q_heads, num_queries, head_dim], k/v [batch, num_kv_heads, num_keys, head_dim]
    block_index int32 [batch, index_heads, num_q_blocks, max_selected] (-1 padded)
    num_selected int32 [batch, index_heads, num_q_blocks]
"""

from __future__ import annotations

import math

import torch

F64 = torch.float64


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def next_pow2(x: int) -> int:
    n = 1
    while n < x:
        n *= 2
    return n


def logit_scale(sketch_dim: int, head_dim: int) -> float:
    """c = m^1.5 / (100 n), n = next_pow2(head_dim) (docs/spec.md section 2)."""
    return sketch_dim**1.5 / (100.0 * next_pow2(head_dim))


def causal_limit(i: int, num_queries: int, num_keys: int, block_size: int) -> int:
    """Key block holding the last query of query block i."""
    last_q = min((i + 1) * block_size, num_queries) - 1
    return (num_keys - num_queries + last_q) // block_size


# ---------------------------------------------------------------------------------------
# 1. Sketch
# ---------------------------------------------------------------------------------------


def hadamard_matrix(n: int, device=None) -> torch.Tensor:
    """Unnormalized Sylvester Hadamard matrix, H[i, j] = (-1)^popcount(i & j), float64 [n, n]."""
    idx = torch.arange(n, device=device)
    anded = idx[:, None] & idx[None, :]
    bits = torch.zeros_like(anded)
    for shift in range(max(1, n.bit_length())):
        bits += (anded >> shift) & 1
    return torch.where(bits % 2 == 0, 1.0, -1.0).to(F64)


def block_mean(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """Mean over blocks of `block_size` tokens on dim -2; a partial last block averages its
    valid tokens. x [..., tokens, d] -> [..., ceil(tokens / block_size), d] float64."""
    x = x.to(F64)
    tokens = x.shape[-2]
    nb = ceil_div(tokens, block_size)
    out = []
    for j in range(nb):
        out.append(x[..., j * block_size : min((j + 1) * block_size, tokens), :].mean(dim=-2))
    if not out:
        return x.new_zeros(*x.shape[:-2], 0, x.shape[-1])
    return torch.stack(out, dim=-2)


def hadamard_sketch(x, signs, coords, block_size: int) -> torch.Tensor:
    """x [batch, heads, tokens, head_dim]; signs [n] (+-1), n = next_pow2(head_dim);
    coords [m] int64. Returns [batch, heads, ceil(tokens/block_size), m] float64:
    P H diag(signs) pad(blockmean(x)) / sqrt(m), coordinates in the order of `coords`."""
    d = x.shape[-1]
    n = next_pow2(d)
    assert signs.numel() == n
    m = coords.numel()
    xb = block_mean(x, block_size)
    padded = torch.nn.functional.pad(xb, (0, n - d))
    signed = padded * signs.to(device=x.device, dtype=F64)
    h = hadamard_matrix(n, device=x.device)
    transformed = signed @ h.T  # H symmetric, .T for clarity
    return transformed[..., coords.to(x.device).long()] / math.sqrt(m)


def hadamard_sketch_varlen(x, signs, coords, block_size: int, cu_seqlens, max_blocks: int):
    """x [total_tokens, heads, head_dim] packed, sequence s at rows cu_seqlens[s] :
    cu_seqlens[s + 1] -> [num_seqs, heads, max_blocks, m] float64: each sequence's own
    hadamard_sketch (blocks from its first token), zeros past its blocks."""
    cu = [int(c) for c in cu_seqlens]
    out = torch.zeros(
        len(cu) - 1, x.shape[1], max_blocks, coords.numel(), dtype=F64, device=x.device
    )
    for s, (t0, t1) in enumerate(zip(cu[:-1], cu[1:])):
        seq = hadamard_sketch(x[t0:t1].transpose(0, 1)[None], signs, coords, block_size)[0]
        out[s, :, : seq.shape[1]] = seq
    return out


# ---------------------------------------------------------------------------------------
# 2. Block scores
# ---------------------------------------------------------------------------------------


def score_blocks(q_sketch, k_sketch, logit_scale_value: float, num_kv_blocks=None) -> torch.Tensor:
    """q_sketch [batch, Hq, rows, m], k_sketch [batch, Hkv, cols, m] -> A [batch, rows, cols]
    float64: softmax over all cols of <q, k> * scale per head (query head h reads kv head
    h // (Hq/Hkv)), summed over heads, each row divided by its sum. With num_kv_blocks [batch]
    (padded sketches), batch row b is score_blocks over its first num_kv_blocks[b] cols, the
    other cols 0."""
    if num_kv_blocks is not None:
        out = torch.zeros(
            q_sketch.shape[0],
            q_sketch.shape[2],
            k_sketch.shape[2],
            dtype=F64,
            device=q_sketch.device,
        )
        for b, n in enumerate(int(c) for c in num_kv_blocks):
            out[b, :, :n] = score_blocks(
                q_sketch[b : b + 1], k_sketch[b : b + 1, :, :n], logit_scale_value
            )[0]
        return out
    qs = q_sketch.to(F64)
    ks = k_sketch.to(F64)
    hq, hkv = qs.shape[1], ks.shape[1]
    group = hq // hkv
    total = None
    for h in range(hq):
        logits = qs[:, h] @ ks[:, h // group].transpose(-1, -2) * logit_scale_value
        p = torch.softmax(logits, dim=-1)
        total = p if total is None else total + p
    return total / total.sum(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------
# 3. Walk
# ---------------------------------------------------------------------------------------


def walk_blocks(base, transition, init, degree: int, damping: float) -> torch.Tensor:
    """base [batch, rows, n], transition [batch, n, n], init like base or None (= base).
    state = init; repeat degree times: state = (1-damping)*base + damping*state@transition."""
    base = base.to(F64)
    t = transition.to(F64)
    state = base.clone() if init is None else init.to(F64).clone()
    for _ in range(degree):
        state = (1.0 - damping) * base + damping * (state @ t)
    return state


# ---------------------------------------------------------------------------------------
# 4. Selection
# ---------------------------------------------------------------------------------------


def _row_thresholds(
    s64, num_queries, num_keys, block_size, keep_frac, window_tokens, exclude_sink_tokens
):
    """th [batch, Nq] float64: the (1 - keep) linear quantile of each row's candidates
    C = [sb, lim - wb] (a contiguous range once the sink and window blocks are removed);
    NaN when C is empty. keep_frac: a float, or one per batch row (a sequence of floats)."""
    batch, nq, nk = s64.shape
    b = block_size
    wb = max(1, ceil_div(window_tokens, b))
    sb = min(nk, max(1, ceil_div(exclude_sink_tokens, b)))
    keeps = [keep_frac] * batch if isinstance(keep_frac, float | int) else list(keep_frac)
    th = torch.full((batch, nq), float("nan"), dtype=F64, device=s64.device)
    for i in range(nq):
        lim = causal_limit(i, num_queries, num_keys, b)
        lo, hi = sb, lim - wb  # inclusive
        if hi >= lo:
            for r, keep in enumerate(keeps):
                th[r, i] = torch.quantile(
                    s64[r, i, lo : hi + 1], 1.0 - keep, dim=-1, interpolation="linear"
                )
    return th


def budgeted_keep_frac(
    keep_frac,
    flags,
    num_queries,
    num_keys,
    block_size,
    window_tokens,
    exclude_sink_tokens,
    dense_last_q_blocks,
) -> float:
    """docs/spec.md section 13 (select_blocks' dense_rows_in_budget): the keep fraction of one
    sequence's unflagged rows when its flagged rows (flags: bools over its query blocks) pay for
    their extra blocks: over rows i < Nq - dense_last_q_blocks with C_i = |[sb, lim_i - wb]|
    candidates, F = sum of the flagged C_i, U = of the others,
    keep' = max(0, keep - (1 - keep) * (F / U)); keep when F or U is 0."""
    b = block_size
    nq, nk = ceil_div(num_queries, b), ceil_div(num_keys, b)
    wb = max(1, ceil_div(window_tokens, b))
    sb = min(nk, max(1, ceil_div(exclude_sink_tokens, b)))
    flagged = unflagged = 0
    for i in range(nq - dense_last_q_blocks):
        c = max(0, causal_limit(i, num_queries, num_keys, b) - wb - sb + 1)
        if bool(flags[i]):
            flagged += c
        else:
            unflagged += c
    if flagged == 0 or unflagged == 0:
        return keep_frac
    return max(0.0, keep_frac - (1.0 - keep_frac) * (flagged / unflagged))


def _causal_block_mask(num_q_blocks, num_kv_blocks, num_queries, num_keys, block_size, device):
    lims = torch.tensor(
        [causal_limit(i, num_queries, num_keys, block_size) for i in range(num_q_blocks)],
        device=device,
    )
    return torch.arange(num_kv_blocks, device=device)[None, :] <= lims[:, None], lims


def select_blocks(
    scores,
    num_queries: int,
    num_keys: int,
    block_size: int,
    keep_frac: float,
    window_tokens: int,
    exclude_sink_tokens: int,
    attend_sink_tokens: int,
    dense_last_q_blocks: int,
    dense_rows=None,
    dense_rows_in_budget: bool = False,
):
    """scores [batch, num_q_blocks, num_kv_blocks] (float32 in the op) -> (keep bool
    [batch, Nq, Nk], block_index int32 [batch, 1, Nq, Nk], num_selected int32 [batch, 1, Nq]).

    Row i, lim = causal_limit(i), q_lo = Tk - Tq + i*b:
      wb = max(1, ceil(w/b)); sb = min(Nk, max(1, ceil(exclude_sink/b)))
      C = {j <= lim} - {j < sb} - {lim-wb+1 <= j <= lim}
      th = torch.quantile(float64(W[i, C]), 1 - keep_frac) (linear); NaN if C empty
      keep causal j with W[i, j] > th (strict: ties at th dropped; NaN keeps nothing)
      + j < ceil(attend_sink/b) (causal) + window blocks floor(max(0, q_lo-w+1)/b) .. lim
      + every causal block when i >= Nq - dense_last_q_blocks or dense_rows[batch, i]
        (dense_rows: bool [batch, Nq], optional).
    With dense_rows_in_budget each batch row's keep_frac is budgeted_keep_frac of its flags.
    Padding of block_index is -1; kept ids strictly increasing."""
    b = block_size
    w = window_tokens
    s64 = scores.to(F64)
    batch, nq, nk = s64.shape
    dev = scores.device
    causal, lims = _causal_block_mask(nq, nk, num_queries, num_keys, b, dev)
    keeps = keep_frac
    if dense_rows is not None and dense_rows_in_budget:
        keeps = [
            budgeted_keep_frac(
                keep_frac,
                dense_rows[r].tolist(),
                num_queries,
                num_keys,
                b,
                w,
                exclude_sink_tokens,
                dense_last_q_blocks,
            )
            for r in range(batch)
        ]
    th = _row_thresholds(s64, num_queries, num_keys, b, keeps, w, exclude_sink_tokens)
    keep = (s64 > th[..., None]) & causal  # NaN threshold compares False
    j = torch.arange(nk, device=dev)
    sink = j[None, :] < ceil_div(attend_sink_tokens, b)
    q_lo = torch.arange(nq, device=dev) * b + (num_keys - num_queries)
    win_lo = torch.clamp(q_lo - w + 1, min=0) // b
    window = j[None, :] >= win_lo[:, None]
    dense = (torch.arange(nq, device=dev) >= nq - dense_last_q_blocks)[None, :, None]
    if dense_rows is not None:
        dense = dense | dense_rows.to(dev, torch.bool)[..., None]
    keep = keep | (((sink | window) & causal)[None] | (dense & causal[None]))
    index, counts = mask_to_block_index(keep)
    return keep, index, counts


def select_blocks_varlen(
    scores,
    seq_args,
    block_size: int,
    keep_frac: float,
    dense_last_q_blocks: int,
    dense_rows=None,
    dense_rows_in_budget: bool = False,
):
    """scores [rows, Nq, Nk] padded, seq_args [rows, 5] = (num_queries, num_keys, window_tokens,
    exclude_sink_tokens, attend_sink_tokens) per row -> (block_index int32 [rows, 1, Nq, Nk],
    num_selected int32 [rows, 1, Nq]): row r's first ceil(nq / b) query blocks are
    select_blocks of scores[r, :ceil(nq / b), :ceil(nk / b)] with its own arguments (and
    dense_rows[r, :ceil(nq / b)], bool [rows, Nq] optional, and dense_rows_in_budget); its
    other query blocks select nothing."""
    rows, nq_max, nk_max = scores.shape
    index = torch.full((rows, 1, nq_max, nk_max), -1, dtype=torch.int32, device=scores.device)
    count = torch.zeros((rows, 1, nq_max), dtype=torch.int32, device=scores.device)
    for r in range(rows):
        tq, tk, w, exclude, attend = (int(a) for a in seq_args[r])
        nq, nk = ceil_div(tq, block_size), ceil_div(tk, block_size)
        _, idx, cnt = select_blocks(
            scores[r : r + 1, :nq, :nk],
            tq,
            tk,
            block_size,
            keep_frac,
            w,
            exclude,
            attend,
            dense_last_q_blocks,
            None if dense_rows is None else dense_rows[r : r + 1, :nq],
            dense_rows_in_budget,
        )
        index[r, :, :nq, :nk] = idx[0]
        count[r, :, :nq] = cnt[0]
    return index, count


def mask_to_block_index(keep: torch.Tensor, max_selected: int | None = None):
    """keep bool [batch, Nq, Nk] or [batch, G, Nq, Nk] -> (block_index int32
    [batch, G, Nq, S] sorted and -1 padded, num_selected int32 [batch, G, Nq])."""
    if keep.dim() == 3:
        keep = keep[:, None]
    nk = keep.shape[-1]
    s = nk if max_selected is None else max_selected
    counts = keep.sum(dim=-1).to(torch.int32)
    j = torch.arange(nk, device=keep.device)
    key = torch.where(keep, j, nk + j).sort(dim=-1).values
    index = torch.where(key < nk, key, -1).to(torch.int32)
    if s <= nk:
        assert int(counts.max()) <= s if counts.numel() else True
        index = index[..., :s].contiguous()
    else:
        pad = torch.full((*index.shape[:-1], s - nk), -1, dtype=torch.int32, device=keep.device)
        index = torch.cat([index, pad], dim=-1)
    return index, counts


def block_index_to_mask(block_index, num_selected, num_kv_blocks: int) -> torch.Tensor:
    """(block_index [batch, G, Nq, S], num_selected [batch, G, Nq]) -> bool [batch, G, Nq, Nk]."""
    batch, g, nq, s = block_index.shape
    # One spare column receives the padding slots, then is dropped.
    mask = torch.zeros(batch, g, nq, num_kv_blocks + 1, dtype=torch.bool, device=block_index.device)
    slot = torch.arange(s, device=block_index.device)
    valid = slot < num_selected.long()[..., None]
    ids = torch.where(valid, block_index.long(), num_kv_blocks)
    mask.scatter_(-1, ids, True)
    return mask[..., :num_kv_blocks]


def token_mask_reference(
    scores,
    num_queries: int,
    num_keys: int,
    block_size: int,
    keep_frac: float,
    window_tokens: int,
    exclude_sink_tokens: int,
    attend_sink_tokens: int,
    dense_last_q_blocks: int,
) -> torch.Tensor:
    """docs/spec.md section 4 at token granularity -> bool [batch, Tq, Tk]: query t (position
    p = Tk - Tq + t) keeps key s <= p when s's block passes the quantile rule of its query
    block, or p - w < s (its last w keys), or s < attend_sink_tokens (the first keys), or its
    query block is among the last dense_last_q_blocks. A block-granular selection must keep
    a superset of this."""
    b = block_size
    w = window_tokens
    s64 = scores.to(F64)
    batch, nq, nk = s64.shape
    dev = scores.device
    th = _row_thresholds(s64, num_queries, num_keys, b, keep_frac, w, exclude_sink_tokens)
    causal_b, _ = _causal_block_mask(nq, nk, num_queries, num_keys, b, dev)
    block_keep = (s64 > th[..., None]) & causal_b
    block_keep[:, max(0, nq - dense_last_q_blocks) :] |= causal_b[
        max(0, nq - dense_last_q_blocks) :
    ]
    t = torch.arange(num_queries, device=dev)
    key = torch.arange(num_keys, device=dev)
    pos = t + (num_keys - num_queries)
    tok = block_keep[:, t // b][:, :, key // b]  # [batch, Tq, Tk]
    causal = key[None, :] <= pos[:, None]
    window = key[None, :] > pos[:, None] - w
    sink = key[None, :] < attend_sink_tokens
    return (tok | (window | sink)[None]) & causal[None]


# ---------------------------------------------------------------------------------------
# 5. Sparse attention (dense masked softmax)
# ---------------------------------------------------------------------------------------


def token_mask_from_block_index(
    block_index,
    num_selected,
    num_queries: int,
    num_keys: int,
    block_size: int,
    q_start: int = 0,
    q_end: int | None = None,
):
    """bool [batch, G, q_end - q_start, Tk]: the block mask expanded to tokens AND the causal
    mask (query t at key position Tk - Tq + t)."""
    q_end = num_queries if q_end is None else q_end
    nk = ceil_div(num_keys, block_size)
    bm = block_index_to_mask(block_index, num_selected, nk)  # [B, G, Nq, Nk]
    dev = block_index.device
    t = torch.arange(q_start, q_end, device=dev)
    s = torch.arange(num_keys, device=dev)
    rows = bm[:, :, t // block_size]  # [B, G, tq, Nk]
    tok = rows[..., s // block_size]  # [B, G, tq, Tk]
    causal = s[None, :] <= (t + num_keys - num_queries)[:, None]
    return tok & causal


def masked_attention(q, k, v, mask, softmax_scale: float | None = None):
    """Dense float64 attention under a boolean mask [batch, G, Tq, Tk] where G is 1,
    num_kv_heads or num_q_heads. q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D].
    Returns (out float64 [B, Hq, Tq, D], lse float64 [B, Hq, Tq]); a query with no visible
    key gets out 0 and lse -inf."""
    bsz, hq, tq, d = q.shape
    hkv = k.shape[1]
    group = hq // hkv
    scale = 1.0 / math.sqrt(d) if softmax_scale is None else softmax_scale
    qf = q.to(F64).view(bsz, hkv, group, tq, d)
    kf = k.to(F64)
    vf = v.to(F64)
    logits = torch.einsum("bhgtd,bhsd->bhgts", qf, kf) * scale
    g = mask.shape[1]
    if g == 1:
        m = mask[:, :, None]  # [B, 1, 1, Tq, Tk]
    elif g == hkv:
        m = mask[:, :, None]
    else:
        assert g == hq
        m = mask.view(bsz, hkv, group, tq, -1)
    logits = logits.masked_fill(~m, float("-inf"))
    lse = torch.logsumexp(logits, dim=-1)
    p = torch.exp(logits - torch.where(torch.isinf(lse), 0.0, lse)[..., None])
    out = torch.einsum("bhgts,bhsd->bhgtd", p, vf)
    return out.reshape(bsz, hq, tq, d), lse.reshape(bsz, hq, tq)


def sparse_attention(
    q,
    k,
    v,
    block_index,
    num_selected,
    softmax_scale=None,
    block_size: int = 64,
    q_chunk_blocks: int | None = None,
):
    """Reference of sparse_prefill and sparse_decode: exact softmax attention of each query
    over the keys of its row's selected blocks, causal inside them. index_heads G = 1 (shared)
    or num_kv_heads (kv head g's query group reads row g). Computed chunk by chunk over query
    blocks (q_chunk_blocks blocks at a time) to bound memory. Returns float64 (out, lse)."""
    bsz, hq, tq, d = q.shape
    tk = k.shape[2]
    nq = ceil_div(tq, block_size)
    chunk = nq if q_chunk_blocks is None else q_chunk_blocks
    outs, lses = [], []
    for c0 in range(0, nq, chunk):
        t0 = c0 * block_size
        t1 = min(tq, (c0 + chunk) * block_size)
        mask = token_mask_from_block_index(block_index, num_selected, tq, tk, block_size, t0, t1)
        # Shift queries: masked_attention's causal is in the mask already.
        o, lse_t = masked_attention(q[:, :, t0:t1], k, v, mask, softmax_scale)
        outs.append(o)
        lses.append(lse_t)
    return torch.cat(outs, dim=2), torch.cat(lses, dim=2)


def pages_to_dense(pool, page_table):
    """A paged cache as dense per-sequence caches: pool [num_pages, block_size, H, D], page_table
    [batch, max_pages] -> [batch, H, max_pages * block_size, D] (page table row b in order;
    entries outside [0, num_pages) read page 0: callers never look past a sequence's keys)."""
    ids = page_table.long().clamp(0, pool.shape[0] - 1)
    return pool[ids].flatten(1, 2).transpose(1, 2)


def sparse_attention_varlen(
    q,
    k,
    v,
    block_index,
    num_selected,
    cu_seqlens_q,
    cu_seqlens_k=None,
    seq_lens_k=None,
    page_table=None,
    softmax_scale=None,
    block_size: int = 64,
):
    """Reference of sparse_prefill_varlen: a ragged batch as its sequences, one at a time.

    q [total_q, Hq, D] packed (NHD); sequence b's queries are rows cu_seqlens_q[b] ..
    cu_seqlens_q[b + 1] - 1. Its keys: rows cu_seqlens_k[b] .. of packed k / v
    [total_k, Hkv, D], or (paged) its first seq_lens_k[b] keys in pages page_table[b, 0],
    page_table[b, 1], ... of k / v [num_pages, block_size, Hkv, D]. Each sequence is
    sparse_attention (causal, queries ending at its last key) over its rows
    block_index[b, :, :ceil(Tq_b / block_size)]. Returns float64 (out [total_q, Hq, D],
    lse [Hq, total_q])."""
    total_q, hq, d = q.shape
    out = torch.zeros(total_q, hq, d, dtype=F64, device=q.device)
    lse = torch.full((hq, total_q), float("-inf"), dtype=F64, device=q.device)
    cq = cu_seqlens_q.tolist()
    for b in range(len(cq) - 1):
        q0, q1 = cq[b], cq[b + 1]
        if q1 == q0:
            continue
        if page_table is None:
            k0, k1 = int(cu_seqlens_k[b]), int(cu_seqlens_k[b + 1])
            kb, vb = k[k0:k1], v[k0:k1]
        else:
            length = int(seq_lens_k[b])
            pages = page_table[b, : ceil_div(length, block_size)].long()
            kb = k[pages].flatten(0, 1)[:length]
            vb = v[pages].flatten(0, 1)[:length]
        nq = ceil_div(q1 - q0, block_size)
        o, lse_b = sparse_attention(
            q[q0:q1].transpose(0, 1)[None],
            kb.transpose(0, 1)[None],
            vb.transpose(0, 1)[None],
            block_index[b : b + 1, :, :nq],
            num_selected[b : b + 1, :, :nq],
            softmax_scale,
            block_size,
        )
        out[q0:q1] = o[0].transpose(0, 1)
        lse[:, q0:q1] = lse_b[0]
    return out, lse


def dense_causal_attention(q, k, v, softmax_scale=None):
    """float64 dense causal attention (queries at the end of keys) via torch SDPA with a
    bottom-right causal mask; k/v GQA-expanded. Returns out float64 [B, Hq, Tq, D]."""
    hq, hkv = q.shape[1], k.shape[1]
    tq, tk = q.shape[2], k.shape[2]
    kf = k.to(F64).repeat_interleave(hq // hkv, dim=1)
    vf = v.to(F64).repeat_interleave(hq // hkv, dim=1)
    pos = torch.arange(tq, device=q.device) + (tk - tq)
    mask = torch.arange(tk, device=q.device)[None, :] <= pos[:, None]
    return torch.nn.functional.scaled_dot_product_attention(
        q.to(F64), kf, vf, attn_mask=mask, scale=softmax_scale
    )


def causal_block_mass(q, k, block_size: int = 64):
    """float64 [Nq, Nk] of a prefill of batch 1 (q [1, Hq, T, D], k [1, Hkv, T, D], GQA): per
    query block, the causal softmax probabilities (scale 1/sqrt(D)) summed over the query heads,
    the block's queries and each key block's keys, rows normalized to 1 (the eval tools' exact
    block mass)."""
    hq, tokens, d = q.shape[1], q.shape[2], q.shape[3]
    kr = k.to(F64).repeat_interleave(hq // k.shape[1], dim=1)
    logits = q.to(F64) @ kr.transpose(-1, -2) / math.sqrt(d)
    mask = torch.ones(tokens, tokens, dtype=torch.bool, device=q.device).tril()
    probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    nb = ceil_div(tokens, block_size)
    pad = nb * block_size - tokens
    per_row = torch.nn.functional.pad(probs.sum(1)[0], (0, pad, 0, pad))
    mass = per_row.view(nb, block_size, nb, block_size).sum((1, 3))
    return mass / mass.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------
# 6/7. Decode-state updates (functional: return the updated tensor)
# ---------------------------------------------------------------------------------------


def update_block_sketch(block_sketch, token_sketch, num_tokens_before: int, block_size: int):
    """block_sketch [B, H, cap, m], token_sketch [B, H, 1, m]; j = n // b, c = n % b:
    out[:, :, j] = (block[:, :, j] * c + token) / (c + 1); c == 0 overwrites (garbage ignored)."""
    out = block_sketch.to(F64).clone()
    j = num_tokens_before // block_size
    c = num_tokens_before % block_size
    tok = token_sketch.to(F64)[:, :, 0]
    if c == 0:
        out[:, :, j] = tok
    else:
        out[:, :, j] = (out[:, :, j] * c + tok) / (c + 1)
    return out


def push_query_window(window, q_sketch, position: int):
    """window [B, H, W, m] ring buffer; writes q_sketch[:, :, 0] to slot position % W."""
    out = window.to(F64).clone()
    out[:, :, position % window.shape[2]] = q_sketch.to(F64)[:, :, 0]
    return out


def update_block_matrix(transition, r, num_keys: int, block_size: int):
    """transition [B, N, N], r [B, N], N = ceil(num_keys/b), c = N-1, s = (num_keys-1) % b,
    alpha = 1/(s+1). Authors' order: (1) row c blended with r then normalized; (2) column c
    blended with r (A[i, c] with r[i]); (3) every row divided by max(sum, 1e-12).
    When s == 0 (alpha == 1) row and column c become r whatever the buffer held."""
    a = transition.to(F64).clone()
    rr = r.to(F64)
    n = ceil_div(num_keys, block_size)
    assert a.shape[-1] == n
    c = n - 1
    s = (num_keys - 1) % block_size
    alpha = 1.0 / (s + 1)
    if s == 0:
        a[:, c, :] = rr
    else:
        a[:, c, :] = (1 - alpha) * a[:, c, :] + alpha * rr
    a[:, c, :] = a[:, c, :] / a[:, c, :].sum(dim=-1, keepdim=True)
    if s == 0:
        a[:, :, c] = rr
    else:
        a[:, :, c] = (1 - alpha) * a[:, :, c] + alpha * rr
    a = a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return a


def window_logits(window, key_blocks, logit_scale_value: float):
    """Sketched logits of every window slot against every key block, float64:
    out[b, h, s, j] = c * <window[b, h, s], key_blocks[b, h // g, j]>, [B, Hq, W, N]."""
    g = window.shape[1] // key_blocks.shape[1]
    kb = key_blocks.to(F64).repeat_interleave(g, dim=1)
    return logit_scale_value * (window.to(F64) @ kb.transpose(-1, -2))


def update_window_logits(
    logits, window, key_blocks, num_blocks: int, slot: int, logit_scale_value: float
):
    """logits [B, Hq, W, cap]; slot in [0, W): row `slot` over blocks < num_blocks and column
    num_blocks - 1 over every slot are recomputed; slot == -1: every row over every block
    < num_blocks. Everything else is kept."""
    out = logits.to(F64).clone()
    full = window_logits(window, key_blocks[:, :, :num_blocks], logit_scale_value)
    if slot < 0:
        out[:, :, :, :num_blocks] = full
    else:
        out[:, :, slot, :num_blocks] = full[:, :, slot]
        out[:, :, :, num_blocks - 1] = full[:, :, :, num_blocks - 1]
    return out


def window_block_scores(logits, window_fill: int, num_blocks: int):
    """docs/spec.md section 6 step 1 from the logits: softmax over the blocks of every (head,
    slot < window_fill) row, summed and normalized (= averaged), [B, num_blocks] float64."""
    live = logits.to(F64)[:, :, :window_fill, :num_blocks]
    return torch.softmax(live, dim=-1).mean(dim=(1, 2))


# ---------------------------------------------------------------------------------------
# Whole pipeline for one sparse layer (prefill and one decode step)
# ---------------------------------------------------------------------------------------


def _cfg(config, name, default):
    """A knob of a SketchWalkConfig-like object or of a dict (the keys4 tests pass dicts)."""
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def window_tokens(config, num_keys: int) -> int:
    return max(1, math.floor(_cfg(config, "window_frac", 0.05) * num_keys))


def sink_tokens(config, num_keys: int) -> int:
    return max(1, math.floor(_cfg(config, "sink_frac", 0.025) * num_keys))


def decode_knob(config, name: str, default: float) -> float:
    """A decode step's kblocks_frac / window_frac / sink_frac: decode_<name> when the config sets
    it, else the prefill knob."""
    value = _cfg(config, "decode_" + name, None)
    return _cfg(config, name, default) if value is None else value


def layer_prefill(q, k, v, config, signs, coords, walk_prev=None, spread_q=None):
    """One sparse layer's prefill (Tq == Tk) per docs/spec.md sections 1-5 (and 13: spread_q,
    default q, are the queries whose spread picks the dense rows; a KV group's selection takes
    every query head's, not only its own group's).
    Returns dict: out [B,Hq,T,D] float64, A, W (walk), keep, block_index, num_selected, and
    the decode state: window [B,Hq,Wq,m] (token sketches of the last query_window queries,
    oldest first), key_blocks [B,Hkv,Nb,m], transition (= A)."""
    b = _cfg(config, "block_size", 64)
    tq, tk = q.shape[2], k.shape[2]
    assert tq == tk
    c = logit_scale(coords.numel(), q.shape[-1])
    qs = hadamard_sketch(q, signs, coords, b)
    ks = hadamard_sketch(k, signs, coords, b)
    a = score_blocks(qs, ks, c)
    init = walk_prev if walk_prev is not None and walk_prev.shape == a.shape else None
    w_mat = walk_blocks(a, a, init, _cfg(config, "degree", 3), _cfg(config, "damping", 0.25))
    w = window_tokens(config, tk)
    dense_last = _cfg(config, "dense_last_q_blocks", 4)
    spread_frac = _cfg(config, "dense_spread_q_frac", 0.0)
    flags = None
    if spread_frac > 0:  # section 13: each row's spread blocks keep every causal block
        flags = torch.zeros(q.shape[0], ceil_div(tq, b), dtype=torch.bool)
        spread_q = q if spread_q is None else spread_q
        for row, blocks in enumerate(dense_spread_rows(spread_q, spread_frac, dense_last, b)):
            flags[row, blocks] = True
    kblocks = _cfg(config, "kblocks_frac", 0.125)
    in_budget = _cfg(config, "dense_spread_in_budget", True)
    sink = sink_tokens(config, tk)
    keep, idx, cnt = select_blocks(
        w_mat.float(), tq, tk, b, kblocks, w, sink, w, dense_last, flags, in_budget
    )
    keep_fracs = [kblocks] * q.shape[0]  # each batch row's quantile keep fraction
    if flags is not None and in_budget:
        keep_fracs = [
            budgeted_keep_frac(kblocks, f.tolist(), tq, tk, b, w, sink, dense_last) for f in flags
        ]
    out, lse = sparse_attention(q, k, v, idx, cnt, block_size=b)
    wq = _cfg(config, "query_window", 32)
    window = hadamard_sketch(q[:, :, -wq:], signs, coords, 1)
    return dict(
        out=out,
        lse=lse,
        A=a,
        W=w_mat,
        keep=keep,
        keep_fracs=keep_fracs,
        block_index=idx,
        num_selected=cnt,
        window=window,
        key_blocks=ks,
        transition=a,
    )


def query_spread(q, block_size: int = 64) -> torch.Tensor:
    """docs/spec.md section 13: spread [batch, ceil(T / b)] float64 of q [batch, heads, T, D],
    block i (the last one over its own rows): mean over heads of mean_t ||q_t - m||^2 /
    ||m||^2, m the head's block mean; a mean with ||m||^2 < 1e-30 gives inf (a NaN stays)."""
    q = q.to(F64)
    batch, heads, tokens, _ = q.shape
    out = torch.zeros(batch, ceil_div(tokens, block_size), dtype=F64)
    for bi in range(batch):
        for i in range(out.shape[1]):
            total = 0.0
            for h in range(heads):
                rows = q[bi, h, i * block_size : (i + 1) * block_size]
                m = rows.mean(0)
                norm = float((m * m).sum())
                spread = float(((rows - m) ** 2).sum(-1).mean())
                total += spread / norm if not norm < 1e-30 else math.inf
            out[bi, i] = total / heads
    return out


def dense_spread_rows(q, frac: float, dense_last_q_blocks: int, block_size: int = 64):
    """docs/spec.md section 13: per batch row of q [batch, heads, T, D], the sorted query blocks
    kept dense: the round(frac * n) (Python's round, half to even) of largest query_spread among
    blocks 1 .. n - dense_last_q_blocks - 1, n = ceil(T / b); NaN ranks as +inf, ties go to the
    lower block."""
    spread = query_spread(q, block_size)
    n = spread.shape[1]
    want = round(frac * n)
    rows = []
    for bi in range(spread.shape[0]):
        candidates = list(range(1, max(1, n - dense_last_q_blocks)))
        key = [math.inf if math.isnan(float(s)) else float(s) for s in spread[bi]]
        candidates.sort(key=lambda i: -key[i])  # stable: ties keep the lower block first
        rows.append(sorted(candidates[:want]))
    return rows


def layer_prefill_chunk(q, k, v, config, signs, coords):
    """One sparse layer's prefill chunk (Tq < Tk: the chunk's queries are the last Tq of the
    Tk keys) per docs/spec.md section 10: block scores of the chunk's query blocks (64 queries
    from the chunk's first) against every key block, no walk, section 4's selection with the
    chunk's query positions and w / sink from Tk. Returns dict: out, lse, A, keep, block_index,
    num_selected."""
    b = _cfg(config, "block_size", 64)
    tq, tk = q.shape[2], k.shape[2]
    assert tq < tk
    c = logit_scale(coords.numel(), q.shape[-1])
    a = score_blocks(hadamard_sketch(q, signs, coords, b), hadamard_sketch(k, signs, coords, b), c)
    w = window_tokens(config, tk)
    keep, idx, cnt = select_blocks(
        a.float(),
        tq,
        tk,
        b,
        _cfg(config, "kblocks_frac", 0.125),
        w,
        sink_tokens(config, tk),
        w,
        _cfg(config, "dense_last_q_blocks", 4),
    )
    out, lse = sparse_attention(q, k, v, idx, cnt, block_size=b)
    return dict(out=out, lse=lse, A=a, keep=keep, block_index=idx, num_selected=cnt)


def layer_decode_step(q_new, k_cache, v_cache, window, transition, config, signs, coords):
    """One decode step of one sparse layer per docs/spec.md section 6 and docs/ops.md.
    q_new [B,Hq,1,D]; k_cache/v_cache [B,Hkv,Tk,D] already hold the new token (Tk = keys
    after the append); window [B,Hq,Wq,m] already holds the new query's sketch (slot order
    does not matter); transition [B,N_prev,N_prev] the block matrix before this step.
    Key block means are recomputed from k_cache (the sketch is linear, so this equals the
    incrementally maintained block sketch). Returns dict with out, lse, r, transition (updated,
    [B,N,N]), walk [B,1,N], keep, block_index, num_selected."""
    b = _cfg(config, "block_size", 64)
    tk = k_cache.shape[2]
    n = ceil_div(tk, b)
    c = logit_scale(coords.numel(), q_new.shape[-1])
    kb = hadamard_sketch(k_cache, signs, coords, b)
    r = score_blocks(window, kb, c).mean(dim=1)  # [B, N]
    bsz, n_prev = transition.shape[0], transition.shape[-1]
    grown = torch.zeros(bsz, n, n, dtype=F64, device=transition.device)
    grown[:, :n_prev, :n_prev] = transition.to(F64)
    a = update_block_matrix(grown, r, tk, b)
    walk = walk_blocks(
        r[:, None], a, None, _cfg(config, "degree", 3), _cfg(config, "damping", 0.25)
    )
    w = max(1, math.floor(decode_knob(config, "window_frac", 0.05) * tk))
    st = max(1, math.floor(decode_knob(config, "sink_frac", 0.025) * tk))
    keep, idx, cnt = select_blocks(
        walk.float(), 1, tk, b, decode_knob(config, "kblocks_frac", 0.125), w, st, max(w, st), 0
    )
    out, lse = sparse_attention(q_new, k_cache, v_cache, idx, cnt, block_size=b)
    return dict(
        out=out, lse=lse, r=r, transition=a, walk=walk, keep=keep, block_index=idx, num_selected=cnt
    )


# ---------------------------------------------------------------------------------------
# 8. keys4 decode scorer (docs/spec.md section 7; layout in include/sketchwalk/keys4.h)
# ---------------------------------------------------------------------------------------

KEYS4_MAX_CODE = 7
KEYS4_OFFSET = 8


def quantize_keys4(k):
    """k [batch, Hkv, T, D] -> (codes int64 [batch, Hkv, T, D] in [-7, 7], scales float32
    [batch, Hkv, T]). Replays the kernels' float32 operations exactly: amax = max |k| skipping
    NaN (as fmax), s = amax / 7, code = clamp(round_half_even(k / s), -7, 7); s == 0 and a NaN
    quotient give code 0."""
    kf = k.to(torch.float32)
    a = kf.abs()
    amax = torch.where(torch.isnan(a), torch.zeros_like(a), a).amax(dim=-1)
    # Elementwise division by a full tensor: a scalar divisor may become a reciprocal multiply.
    scales = amax / torch.full_like(amax, float(KEYS4_MAX_CODE))
    quotient = kf / scales[..., None]
    codes = torch.round(quotient).clamp(-KEYS4_MAX_CODE, KEYS4_MAX_CODE)
    codes = torch.where(torch.isnan(codes) | (scales[..., None] == 0), 0.0, codes)
    return codes.to(torch.int64), scales


def pack_keys4(codes):
    """codes int [.., D] in [-7, 7] -> uint8 [.., D / 2]: byte i = (code[2i] + 8) |
    (code[2i+1] + 8) << 4."""
    nib = (codes + KEYS4_OFFSET).to(torch.int64)
    return (nib[..., 0::2] | (nib[..., 1::2] << 4)).to(torch.uint8)


def unpack_keys4(packed):
    """uint8 [.., D / 2] -> codes int64 [.., D]."""
    p = packed.to(torch.int64)
    out = torch.stack([(p & 15) - KEYS4_OFFSET, (p >> 4) - KEYS4_OFFSET], dim=-1)
    return out.flatten(-2)


def score_blocks_keys4(q, codes, scales, seq_lens=None, softmax_scale=None, block_size=64):
    """docs/spec.md section 7 steps 1-2. q [batch, Hq, 1, D]; codes int [batch, Hkv, cap, D]
    (unpacked);
    scales [batch, Hkv, cap]; seq_lens list/tensor of lengths or None (= cap).
    Returns mass float64 [batch, Hkv, ceil(cap / block_size)]: per kv group g, sum over its query
    heads h and the keys t < L_b of block j of softmax_t(scale * <q_h, s_t c_t>); 0 past L_b."""
    batch, hq, _, d = q.shape
    hkv, cap = codes.shape[1], codes.shape[2]
    grp = hq // hkv
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    width = ceil_div(cap, block_size)
    mass = torch.zeros(batch, hkv, width, dtype=F64, device=q.device)
    keys = codes.to(F64) * scales.to(F64)[..., None]  # [batch, Hkv, cap, D]
    for b in range(batch):
        length = cap if seq_lens is None else int(seq_lens[b])
        for g in range(hkv):
            logits = scale * (q[b, g * grp : (g + 1) * grp, 0].to(F64) @ keys[b, g, :length].T)
            p = torch.softmax(logits, dim=-1).sum(dim=0)  # [length]
            padded = torch.zeros(width * block_size, dtype=F64, device=q.device)
            padded[:length] = p
            mass[b, g] = padded.view(width, block_size).sum(dim=-1)
    return mass


def sampled_row_offsets(valid: int, rows: int) -> list[int]:
    """docs/spec.md section 11: offsets floor((2j + 1) * valid / (2 rows)) of the sampled rows."""
    return [(2 * j + 1) * valid // (2 * rows) for j in range(rows)]


def score_blocks_sampled_rows(q, k, rows: int, softmax_scale=None, block_size: int = 64):
    """docs/spec.md section 11. q [batch, Hq, Tq, D], k [batch, Hkv, Tk, D], Tq <= Tk.
    Returns float64 [batch, Hkv, ceil(Tq / b), ceil(Tk / b)]: for kv group g and query block i,
    the mean over the group's query heads h and the sampled rows t of softmax over the keys
    s <= Tk - Tq + t of softmax_scale * <q_h[t], k_g[s]>, summed over the keys of each key block."""
    batch, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    grp = hq // hkv
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(d)
    nq, nk = ceil_div(tq, block_size), ceil_div(tk, block_size)
    out = torch.zeros(batch, hkv, nq, nk, dtype=F64, device=q.device)
    for i in range(nq):
        valid = min(block_size, tq - i * block_size)
        for off in sampled_row_offsets(valid, rows):
            t = i * block_size + off
            visible = tk - tq + t + 1
            for g in range(hkv):
                logits = scale * (
                    q[:, g * grp : (g + 1) * grp, t].to(F64)
                    @ k[:, g, :visible].to(F64).transpose(1, 2)
                )  # [batch, grp, visible]
                p = torch.softmax(logits, dim=-1).sum(dim=1)  # [batch, visible]
                padded = torch.zeros(batch, nk * block_size, dtype=F64, device=q.device)
                padded[:, :visible] = p
                out[:, g, i] += padded.view(batch, nk, block_size).sum(dim=-1)
    return out / (grp * rows)


def keys4_budget(num_keys: int, window_frac: float, sink_frac: float, block_size: int = 64):
    """(n, sink_blocks, window_blocks) of docs/spec.md section 7 step 3."""
    n = ceil_div(num_keys, block_size)
    w = max(1, math.floor(window_frac * num_keys))
    s = max(1, math.floor(sink_frac * num_keys))
    return n, min(n, ceil_div(s, block_size)), min(n, ceil_div(w, block_size))


def select_blocks_keys4(
    mass, seq_lens, keep_frac: float, window_frac: float, sink_frac: float, block_size: int = 64
):
    """docs/spec.md section 7 steps 3-4. mass [batch, Hkv, width] (float32 in the op); seq_lens or
    None
    (= width * block_size). Returns (keep bool [batch, Hkv, width], block_index int32
    [batch, Hkv, 1, width] ascending -1 padded, num_selected int32 [batch, Hkv, 1]).
    Row (b, g): candidates [sb, n - wb); th = torch.quantile(float64 mass[cand], 1 - keep_frac)
    (linear; NaN when empty or a candidate is NaN); keep j < sb, j >= n - wb, or mass > th."""
    m64 = mass.to(F64)
    batch, hkv, width = m64.shape
    keep = torch.zeros(batch, hkv, width, dtype=torch.bool, device=mass.device)
    for b in range(batch):
        length = width * block_size if seq_lens is None else int(seq_lens[b])
        n, sb, wb = keys4_budget(length, window_frac, sink_frac, block_size)
        n = min(n, width)
        lo, hi = sb, n - wb
        for g in range(hkv):
            row = m64[b, g]
            th = float("nan")
            if hi > lo and not torch.isnan(row[lo:hi]).any():
                th = float(torch.quantile(row[lo:hi], 1.0 - keep_frac, interpolation="linear"))
            j = torch.arange(width, device=mass.device)
            keep[b, g] = (j < n) & ((j < lo) | (j >= hi) | (row > th))
    index, counts = mask_to_block_index(keep.unsqueeze(2))  # [batch, Hkv, 1, width]
    return keep, index, counts


def layer_decode_step_keys4(q_new, k_cache, v_cache, config, softmax_scale=None):
    """One keys4 decode step of one sparse layer (docs/spec.md section 7) with every key of
    k_cache [B, Hkv, Tk, D] (the new one last) quantized from scratch. Returns dict with mass,
    keep, block_index, num_selected, out, lse."""
    b = _cfg(config, "block_size", 64)
    codes, scales = quantize_keys4(k_cache)
    mass = score_blocks_keys4(q_new, codes, scales, None, softmax_scale, b)
    keep, idx, cnt = select_blocks_keys4(
        mass.float(),
        None,
        decode_knob(config, "kblocks_frac", 0.125),
        decode_knob(config, "window_frac", 0.05),
        decode_knob(config, "sink_frac", 0.025),
        b,
    )
    out, lse = sparse_attention(q_new, k_cache, v_cache, idx, cnt, softmax_scale, block_size=b)
    return dict(mass=mass, keep=keep, block_index=idx, num_selected=cnt, out=out, lse=lse)


def socket_block_scores(q, k, v, planes, temperature: float, block_size: int = 64):
    """SOCKET's soft-collision scores (python/sketchwalk/soft_lsh.py's rule), float64, written
    out table by table. q [B, Hq, 1, D]; k, v [B, Hkv, T, D]; planes [L, P, D]. In table l a key's
    bucket is the integer whose bits, most significant first, are [<plane_p, k> >= 0]; the
    query's probability of bucket r is softmax_r(sum_p tanh(<plane_p, q>) / sqrt(D) * c_r[p] / T)
    with c_r[p] = +1 where bit p of r is set, else -1. A key's score for query head h is
    ||v|| * sum_l prob_l(bucket_l(key)); per KV group and 64-key block, the sum over the group's
    heads of the block's highest key score. Returns [B, Hkv, ceil(T / block_size)]."""
    batch, hq, _, d = q.shape
    hkv, tokens = k.shape[1], k.shape[2]
    tables, nplanes, _ = planes.shape
    p64, k64, q64 = planes.to(F64), k.to(F64), q.to(F64)[:, :, 0]
    buckets = 2**nplanes
    bit = [[(r >> (nplanes - 1 - p)) & 1 for p in range(nplanes)] for r in range(buckets)]
    corner = torch.tensor(bit, dtype=F64, device=q.device) * 2 - 1  # [R, P]
    scores = torch.zeros(batch, hq, tokens, dtype=F64, device=q.device)
    norms = v.to(F64).norm(dim=-1)  # [B, Hkv, T]
    for l_ in range(tables):
        key_bits = (torch.einsum("bgtd,pd->bgtp", k64, p64[l_]) >= 0).to(torch.int64)
        code = sum(key_bits[..., p] << (nplanes - 1 - p) for p in range(nplanes))  # [B, Hkv, T]
        soft = torch.tanh(torch.einsum("bhd,pd->bhp", q64, p64[l_])) / math.sqrt(d)
        prob = torch.softmax(soft @ corner.t() / temperature, dim=-1)  # [B, Hq, R]
        for h in range(hq):
            g = h // (hq // hkv)
            scores[:, h] += torch.gather(prob[:, h], -1, code[:, g]) * norms[:, g]
    n = ceil_div(tokens, block_size)
    out = torch.zeros(batch, hkv, n, dtype=F64, device=q.device)
    for h in range(hq):
        g = h // (hq // hkv)
        for j in range(n):
            out[:, g, j] += scores[:, h, j * block_size : (j + 1) * block_size].max(-1).values
    return out
