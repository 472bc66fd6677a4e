"""One layer of a step over a paged KV cache (a serving engine's): the sequences of a StepPlan
with a page table, their new tokens packed, their keys in 64-key pages.

The 4-bit keys of the keys4 decode scorer live beside the caller's K/V pools, in pools of the
same pages (PagedKeys4Cache): a sequence's selection state is its pages, so it comes and goes
with them, and a decode step of many sequences is four launches per layer (append the new keys'
4-bit rows, score, select, attend), with no host synchronization (graph-capturable). Prefill
sequences are selected together (ragged.select_varlen_blocks); a step with chunks selects each
prefill or chunk sequence on its own rows (a chunk's keys gathered from its pages). All are
attended together in one sparse_prefill_varlen call over the pages.
"""

from __future__ import annotations

import torch

from . import ops
from .density import decode_density_per_row
from .plan import StepPlan
from .ragged import record_sequence, select_sequence, select_varlen_blocks
from .state import SketchWalkState


class PagedKeys4Cache:
    """The 4-bit keys (docs/spec.md section 7) of a paged KV cache, per sparse layer: codes uint8
    [num_pages, num_kv_heads, 64, head_dim / 2] and scales float32 [num_pages, num_kv_heads, 64],
    indexed by the caller's page ids (include/sketchwalk/keys4.h). 13.3% of a bf16 K+V cache at
    head_dim 128. Made once beside the K/V pools; a layer's pools on its first use."""

    def __init__(
        self, num_pages: int, num_kv_heads: int, head_dim: int, device: torch.device | str
    ) -> None:
        self.num_pages, self.num_kv_heads, self.head_dim = num_pages, num_kv_heads, head_dim
        self.device = torch.device(device)
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def layer(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx not in self.layers:
            self.layers[layer_idx] = (
                torch.zeros(
                    (self.num_pages, self.num_kv_heads, 64, self.head_dim // 2),
                    dtype=torch.uint8,
                    device=self.device,
                ),
                torch.zeros(
                    (self.num_pages, self.num_kv_heads, 64), dtype=torch.float32, device=self.device
                ),
            )
        return self.layers[layer_idx]


def sketchwalk_attention_paged(
    q: torch.Tensor,
    k: torch.Tensor,
    k_pages: torch.Tensor,
    v_pages: torch.Tensor,
    layer_idx: int,
    plan: StepPlan,
    keys4: PagedKeys4Cache,
) -> torch.Tensor:
    """Causal attention of one layer for the step `plan` describes, keys in pages.

    q, k: [total_q, num_q_heads / num_kv_heads, head_dim]: the step's new tokens, packed
    (plan.q_offsets); k_pages, v_pages: [num_pages, 64, num_kv_heads, head_dim], already holding
    every key of every sequence (the new ones included) where plan.page_table says. ``keys4``
    holds the sequences' 4-bit keys: this call appends the new tokens' rows. Returns
    [total_q, num_q_heads, head_dim] in q's dtype.

    Dense layers: every causal block, one varlen call. Sparse layers: decode sequences in four
    batched launches (keys4 append, score, select, sparse_decode on pages); prefill sequences
    selected together, or with chunks each on its own (docs/spec.md sections 1-4 and 10; the
    walk carried from layer to layer in the plan) and attended in one varlen call.
    """
    _check_paged_args(q, k, k_pages, v_pages, plan, keys4)
    cfg = plan.config
    if cfg.is_dense_layer(layer_idx):
        index, count = plan.dense_index()
        return _varlen(q, k_pages, v_pages, index, count, plan)
    codes, scales = keys4.layer(layer_idx)
    rows, q_rows, dec_lens, dec_table = plan.decode_rows()
    out = None
    if len(rows) < plan.num_seqs:
        index, count = _select_and_append(q, k, k_pages, layer_idx, plan, codes, scales)
        out = _varlen(q, k_pages, v_pages, index, count, plan)
    if rows:
        q_dec = q.index_select(0, q_rows)[:, :, None]  # [S_dec, Hq, 1, D]
        k_dec = k.index_select(0, q_rows)[:, :, None]  # the new keys, one per sequence
        ops.quantize_keys4_(codes, scales, k_dec, dec_lens, False, dec_table)
        q_score = q_dec.to(torch.bfloat16) if q.is_cuda and q.dtype == torch.float32 else q_dec
        mass = ops.score_blocks_keys4(q_score, codes, scales, dec_lens, None, False, dec_table)
        index, count = ops.select_blocks_keys4(
            mass, dec_lens, *plan.decode_args.at_layer(cfg, layer_idx).keys4_fracs(), False
        )
        dec_out, _ = ops.sparse_decode(
            q_dec, k_pages, v_pages, index, count, None, False, dec_lens, dec_table
        )
        plan.forward_states[("decode", layer_idx)] = (count, dec_lens)
        out = torch.empty_like(q) if out is None else out
        out.index_copy_(0, q_rows, dec_out[:, :, 0])
    return out


def paged_density(plan: StepPlan, layer_idx: int) -> dict[int, torch.Tensor]:
    """The kept fraction of layer `layer_idx` per sequence of the step (0-dim tensors on the
    device; computed here, when asked, not during the forward). Dense layers are absent."""
    result = {}
    for b in range(plan.num_seqs):
        state = plan.forward_states.get(b)
        if isinstance(state, SketchWalkState) and state.density_tensor(layer_idx) is not None:
            result[b] = state.density_tensor(layer_idx)
    decoded = plan.forward_states.get(("decode", layer_idx))
    if decoded is not None:
        count, lens = decoded
        rows = plan.decode_rows()[0]
        for i, b in enumerate(rows):
            result[b] = decode_density_per_row(
                count[i : i + 1], lens[i : i + 1], plan.config.block_size
            )
    return result


def _select_and_append(q, k, k_pages, layer_idx: int, plan: StepPlan, codes, scales):
    """Per prefill / chunk sequence: its selection on its own rows (keys gathered from its pages
    for a chunk) into one index [num_seqs, index_heads, num_q_blocks, width] (decode rows
    empty), and its new keys' 4-bit rows appended to the pools."""
    cfg = plan.config
    b_size = cfg.block_size
    # Without chunks every selected sequence's keys are its new tokens, packed like q: one
    # batched selection (ragged.select_varlen_blocks); a chunk's keys are gathered from its pages.
    batched = cfg.prefill_scorer_at(layer_idx) == "sketch_walk" and "chunk" not in plan.phases()
    if not batched:
        plan.carried_walk = None  # no batched walk here to carry to the next layer
    rows = []
    index = count = None
    for b, seq in enumerate(plan.sequences):
        if seq.phase == "decode":
            rows.append(None)
            continue
        q0, q1 = plan.q_offsets[b], plan.q_offsets[b + 1]
        qb = q[q0:q1].transpose(0, 1)[None]
        new_k = k[q0:q1].transpose(0, 1)[None]
        state = plan.forward_states.get(b)
        if state is None:
            state = plan.forward_states[b] = SketchWalkState(cfg, plan.track_density)
        if batched:
            if index is None:
                index, count = select_varlen_blocks(q, k, plan.cu_seqlens_q, layer_idx, plan, state)
            record_sequence(index, count, b, layer_idx, state, seq, q.shape[1], k.shape[1])
        else:
            kb = new_k
            if seq.phase == "chunk":
                pages = plan.page_table[b, : -(-seq.num_keys // b_size)].long()
                kb = k_pages.index_select(0, pages).flatten(0, 1)[: seq.num_keys]
                kb = kb.transpose(0, 1)[None]
            rows.append(select_sequence(qb, kb, layer_idx, state, seq))
        ops.quantize_keys4_(
            codes, scales, new_k, plan.seq_lens_k[b : b + 1], False, plan.page_table[b : b + 1]
        )
    return (index, count) if batched else plan.pad_index(rows)


def _varlen(q, k_pages, v_pages, index, count, plan: StepPlan) -> torch.Tensor:
    out, _ = ops.sparse_prefill_varlen(
        q,
        k_pages,
        v_pages,
        index,
        count,
        plan.cu_seqlens_q,
        None,
        plan.seq_lens_k,
        plan.page_table,
        None,
        False,
    )
    return out


def _check_paged_args(q, k, k_pages, v_pages, plan, keys4) -> None:
    name = "sketchwalk_attention_paged"
    if not isinstance(plan, StepPlan) or plan.page_table is None:
        raise TypeError(f"{name}: argument 'plan' must be a StepPlan with a page_table")
    if not isinstance(keys4, PagedKeys4Cache):
        raise TypeError(
            f"{name}: argument 'keys4' must be a PagedKeys4Cache, got {type(keys4).__name__}"
        )
    plan.check_device(name, q)
    for arg, t in (("q", q), ("k", k)):
        if t.dim() != 3 or t.shape[0] != plan.total_q:
            raise ValueError(
                f"{name}: argument '{arg}' must be packed new tokens "
                f"[{plan.total_q}, heads, head_dim], got {tuple(t.shape)}"
            )
    if (
        k_pages.dim() != 4
        or k_pages.shape[1] != 64
        or v_pages.shape != k_pages.shape
        or k_pages.shape[0] != keys4.num_pages
        or k_pages.shape[2] != keys4.num_kv_heads
    ):
        raise ValueError(
            f"{name}: arguments 'k_pages' / 'v_pages' must be pools [num_pages="
            f"{keys4.num_pages}, 64, num_kv_heads={keys4.num_kv_heads}, head_dim] "
            f"(the keys4 cache's), got {tuple(k_pages.shape)} / {tuple(v_pages.shape)}"
        )
    if plan.config.decode_scorer != "keys4":
        raise NotImplementedError(f"{name}: a paged step needs decode_scorer 'keys4'")
