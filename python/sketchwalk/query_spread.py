"""Query spread: the prefill query blocks that the pooled sketch summarizes worst, kept dense
(config.dense_spread_q_frac, docs/spec.md section 13).

The sketch scores a query block by its rows' mean (section 1), so a block whose queries point
in different directions (a needle inside a haystack, a change of topic) is ranked for a query
none of its rows asks. The spread of block i, averaged over the query heads h,

    spread[i] = mean_h  mean_{t in i} ||q_t - m||^2 / ||m||^2,   m = the block's mean query,

is 0 when every row equals the mean and grows as the mean stops describing the rows. Per layer
and per sequence, round(dense_spread_q_frac * num_q_blocks) blocks of largest spread keep every
causal key block; block 0 (one causal block) and the last dense_last_q_blocks (dense already)
are not candidates, so each chosen block adds density, which the state records with the rest.

Torch operations, no host synchronization (a ragged step loops over its sequences on the host,
from the plan's host offsets). They read q twice (two reductions in float32); no float32 copy
of q is made. The flags go to the selection op (ops.select_blocks(_varlen)'s dense_rows), which
keeps the flagged rows' causal blocks in the same launch.
"""

from __future__ import annotations

import torch

# ||m||^2 below this is a zero mean query: its block counts as maximally spread, not a NaN.
_TINY = 1e-30


def block_query_spread(q: torch.Tensor, block_size: int) -> torch.Tensor:
    """spread [batch, ceil(T / block_size)] float32 of q [batch, heads, T, D] (a partial last
    block over its own rows)."""
    batch, heads, tokens, dim = q.shape
    whole = tokens // block_size
    parts = []
    if whole:
        parts.append(_spread(q[:, :, : whole * block_size].unflatten(2, (whole, block_size))))
    if tokens > whole * block_size:
        parts.append(_spread(q[:, :, whole * block_size :].unsqueeze(2)))
    if not parts:
        return q.new_zeros((batch, 0), dtype=torch.float32)
    return torch.cat(parts, dim=1)


def _spread(rows: torch.Tensor) -> torch.Tensor:
    """rows [batch, heads, blocks, rows, D] -> spread [batch, blocks]: mean_t ||q_t||^2 -
    ||m||^2 = mean_t ||q_t - m||^2, both reductions accumulated in float32."""
    mean_sq = torch.linalg.vector_norm(rows, dim=-1, dtype=torch.float32).square().mean(-1)
    mean = rows.mean(3, dtype=torch.float32)
    mean_norm = mean.square().sum(-1)
    return ((mean_sq - mean_norm).clamp_min(0) / mean_norm.clamp_min(_TINY)).mean(1)


def spread_dense_rows(
    spread: torch.Tensor,
    num_q_blocks: torch.Tensor,
    frac: float,
    dense_last_q_blocks: int,
) -> torch.Tensor:
    """dense [rows, Nq] bool: row r's round(frac * num_q_blocks[r]) blocks of largest spread
    among blocks 1 .. num_q_blocks[r] - dense_last_q_blocks - 1 (fewer if there are fewer
    candidates). spread [rows, Nq] float32 (padding past a row's blocks ignored); num_q_blocks
    int [rows] on spread's device, a row's query block count (0: a row with no dense rows)."""
    rows, width = spread.shape
    dense = torch.zeros(rows, width, dtype=torch.bool, device=spread.device)
    k = min(round(frac * width), width)  # round is monotone: no row wants more than k
    if k <= 0:
        return dense
    blocks = torch.arange(width, device=spread.device)
    nq = num_q_blocks.to(torch.int64)[:, None]
    candidate = (blocks >= 1) & (blocks < nq - dense_last_q_blocks)
    ranked = torch.where(candidate, spread, float("-inf")).topk(k, dim=1)
    # Row r takes its first round(frac * nq[r]) picks, each a candidate.
    want = torch.round(frac * nq.to(torch.float64)).to(torch.int64)
    take = (torch.arange(k, device=spread.device) < want) & (ranked.values > float("-inf"))
    return dense.scatter(1, ranked.indices, take)


def dense_prefill_rows(q: torch.Tensor, cfg) -> torch.Tensor:
    """dense [batch, Nq] of a prefill's queries q [batch, heads, T, D] (every row a prompt of T
    tokens)."""
    spread = block_query_spread(q, cfg.block_size)
    num_q_blocks = torch.full((q.shape[0],), spread.shape[1], device=q.device)
    return spread_dense_rows(spread, num_q_blocks, cfg.dense_spread_q_frac, cfg.dense_last_q_blocks)


def dense_varlen_rows(q: torch.Tensor, plan) -> torch.Tensor:
    """dense [num_seqs, plan.num_q_blocks] of a ragged step's packed queries q [total_q, heads,
    D]: each prefill sequence's own blocks (from its first query block); chunks and decodes
    keep none (a chunk's rows have a cached prefix: section 10's rule stands)."""
    cfg = plan.config
    spread = q.new_zeros((plan.num_seqs, plan.num_q_blocks), dtype=torch.float32)
    for b, seq in enumerate(plan.sequences):
        if seq.phase == "prefill":
            start, stop = plan.q_offsets[b], plan.q_offsets[b + 1]
            own = block_query_spread(q[start:stop].transpose(0, 1)[None], cfg.block_size)[0]
            spread[b, : own.shape[0]] = own
    # Each row's query block count from the plan's device arguments (no copy from the host in
    # the step): a prefill has as many queries as keys, the others count 0.
    _, seq_args, _, _ = plan.selection_args()
    num_queries, num_keys = seq_args[:, 0].long(), seq_args[:, 1].long()
    num_q_blocks = torch.where(num_queries == num_keys, -(-num_queries // cfg.block_size), 0)
    return spread_dense_rows(spread, num_q_blocks, cfg.dense_spread_q_frac, cfg.dense_last_q_blocks)
