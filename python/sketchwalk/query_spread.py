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

ops.query_spread_rows computes the spread (one read of q) and the choice (two launches, no host
synchronization); the flags go to the selection op (ops.select_blocks(_varlen)'s dense_rows),
which keeps the flagged rows' causal blocks in its own launch.
"""

from __future__ import annotations

import torch

from . import ops


def dense_prefill_rows(q: torch.Tensor, cfg) -> torch.Tensor:
    """dense [batch, Nq] of a prefill's queries q [batch, heads, T, D] (every row a prompt of T
    tokens)."""
    return ops.query_spread_rows(
        q, cfg.block_size, cfg.dense_spread_q_frac, cfg.dense_last_q_blocks, validate=False
    )


def dense_varlen_rows(q: torch.Tensor, plan) -> torch.Tensor:
    """dense [num_seqs, plan.num_q_blocks] of a ragged step's packed queries q [total_q, heads,
    D]: each prefill sequence's own blocks; chunks and decodes keep none (a chunk's rows have a
    cached prefix: section 10's rule stands)."""
    cfg = plan.config
    prefill_q_blocks = plan.selection_args()[4]  # made with the plan: no host copy in the step
    return ops.query_spread_rows(
        q.transpose(0, 1)[None],
        cfg.block_size,
        cfg.dense_spread_q_frac,
        cfg.dense_last_q_blocks,
        plan.cu_seqlens_q,
        plan.num_q_blocks,
        prefill_q_blocks,
        validate=False,
    )


def per_index_head(dense: torch.Tensor, index_heads: int) -> torch.Tensor:
    """dense [rows, Nq] as the selection's rows: each row repeated for its index heads
    (batch-major, then KV head, as the walk's rows); the same tensor, no copy, for one."""
    return dense if index_heads == 1 else dense.repeat_interleave(index_heads, dim=0)
