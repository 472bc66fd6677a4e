"""The per-phase ablation of issue 21: which query rows' sparsity costs quality.

A method run under ``dense_query_span(lo, hi)`` keeps every causal key block for the prefill
query blocks whose position lies in [lo, hi) of the prompt (fractions of its query blocks), and
the package's selection everywhere else. The densities the package records include those rows,
so a span's cost in density is reported with it.

EQUAL_AREA_SPANS cut the prompt into three spans of equal causal area (a query block's row
holds as many blocks as its position, so the area up to fraction x is x^2): making any one of
them dense costs the same density, and the three compare at equal cost.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from unittest import mock

import torch

from sketchwalk import attention, paged, ragged

EQUAL_AREA_SPANS = {
    "early": (0.0, math.sqrt(1 / 3)),
    "middle": (math.sqrt(1 / 3), math.sqrt(2 / 3)),
    "late": (math.sqrt(2 / 3), 1.0),
}


def span_blocks(num_q_blocks: int, lo: float, hi: float) -> range:
    """The query blocks whose first row lies in [lo, hi) of the prompt (hi = 1 takes the
    last)."""
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"span: want 0 <= lo <= hi <= 1, got ({lo}, {hi})")
    first = math.ceil(lo * num_q_blocks)
    last = num_q_blocks if hi >= 1.0 else math.ceil(hi * num_q_blocks)
    return range(first, last)


def densify_rows(
    block_index: torch.Tensor, num_selected: torch.Tensor, rows: Iterable[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A prefill block index (block_index [..., Nq, width] ascending and -1 padded,
    num_selected [..., Nq]) with the query blocks `rows` keeping every causal key block: query
    block i keeps key blocks 0..i (a prefill without a cached prefix: Nq == Nk)."""
    block_index, num_selected = block_index.clone(), num_selected.clone()
    width = block_index.shape[-1]
    keys = torch.arange(width, device=block_index.device, dtype=block_index.dtype)
    for i in rows:
        block_index[..., i, :] = torch.where(keys <= i, keys, torch.full_like(keys, -1))
        num_selected[..., i] = i + 1
    return block_index, num_selected


def dense_query_span(lo: float, hi: float):
    """A context manager within which every prefill selection of the package keeps the query
    blocks in [lo, hi) of its prompt dense (dense_query_rows with span_blocks)."""
    return dense_query_rows(lambda num_q_blocks, seq: span_blocks(num_q_blocks, lo, hi))


def dense_query_rows(rows_of):
    """A context manager within which every prefill selection of the package keeps the query
    blocks rows_of(num_q_blocks, seq) of each prompt dense (seq: the sequence's index in a
    ragged step, the batch row of a transformers batch; 0 alone), on both paths: the
    single-sequence one (attention._select_prefill) and the batched ragged one
    (ragged.select_varlen_blocks), which the transformers integration takes for every batched,
    left-padded prefill. Both are wrapped and restored on exit."""
    select = attention._select_prefill
    select_varlen = ragged.select_varlen_blocks

    def rows_in(num_q_blocks: int, seq: int) -> list[int]:
        return [i for i in rows_of(num_q_blocks, seq) if 0 <= i < num_q_blocks]

    def with_dense_rows(walk, num_tokens, num_kv_heads, cfg, num_keys=None, layer_idx=None, q=None):
        block_index, num_selected = select(
            walk, num_tokens, num_kv_heads, cfg, num_keys, layer_idx=layer_idx, q=q
        )
        if num_keys is not None and num_keys != num_tokens:
            raise NotImplementedError("dense_query_rows: a chunk after a cached prefix")
        # block_index [batch, index_heads, Nq, N], one batch row per prompt.
        block_index, num_selected = block_index.clone(), num_selected.clone()
        for b in range(block_index.shape[0]):
            rows = rows_in(num_selected.shape[-1], b)
            block_index[b], num_selected[b] = densify_rows(block_index[b], num_selected[b], rows)
        return block_index, num_selected

    def varlen_with_dense_rows(q, k, cu_seqlens_k, layer_idx, plan, state):
        index, count = select_varlen(q, k, cu_seqlens_k, layer_idx, plan, state)
        # index [num_seqs, heads, plan.num_q_blocks, N]: each sequence's rows from its own
        # first block, padded past its own query blocks.
        for b, seq in enumerate(plan.sequences):
            if seq.phase == "decode":
                continue
            if seq.phase != "prefill" or seq.num_queries != seq.num_keys:
                raise NotImplementedError("dense_query_rows: a chunk after a cached prefix")
            num_q_blocks = -(-seq.num_queries // plan.config.block_size)
            index[b], count[b] = densify_rows(index[b], count[b], rows_in(num_q_blocks, b))
        return index, count

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch.object(attention, "_select_prefill", with_dense_rows))
    for module in (ragged, paged):  # paged.py holds its own reference to the function
        stack.enter_context(
            mock.patch.object(module, "select_varlen_blocks", varlen_with_dense_rows)
        )
    return stack
