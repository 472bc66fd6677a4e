"""One layer of a ragged step: the sequences of a StepPlan (plan.py), packed, in one call.

The attention of every prefill and chunk sequence of the step runs as ONE sparse_prefill_varlen
call (the dense layers too, with every causal block kept); each sequence's selection (sketch,
scores, walk, select) runs on its own rows, as in a single-sequence prefill or chunk, and its
rows of the block index are placed in one padded index. Decode steps (one new token on a cache) run per sequence
through the single-sequence layer for now: their keys4 states are per sequence.
"""

from __future__ import annotations

import torch

from . import ops
from .attention import (append_chunk_keys4, keys4_layer_state, select_chunk_blocks,
                        select_prefill_blocks, sketchwalk_attention)
from .plan import StepPlan
from .state import SketchWalkState


def sketchwalk_attention_varlen(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer_idx: int,
    states: list[SketchWalkState], plan: StepPlan,
) -> torch.Tensor:
    """Causal attention of one layer for the ragged batch `plan` describes.

    q: [total_q, num_q_heads, head_dim] packed (NHD), sequence b's queries at rows
    plan.q_offsets[b] : plan.q_offsets[b + 1]; k, v: [total_k, num_kv_heads, head_dim] packed
    the same way (plan.k_offsets), holding every key of each sequence (queries end at the last
    key). ``states``: one SketchWalkState per sequence (its walk and decode state), all of one
    config. Returns [total_q, num_q_heads, head_dim] in q's dtype.

    Phases come from the plan: "prefill" and "chunk" sequences (docs/spec.md section 10) are
    selected and attended in one varlen call (a prefill restarts its state's layer `layer_idx`,
    a chunk extends it, as in the single-sequence layer); "decode" ones take the
    single-sequence decode step.
    """
    _check_varlen_args(q, k, v, layer_idx, states, plan)
    cfg = plan.config
    phases = plan.phases()
    out = None
    if "prefill" in phases or "chunk" in phases:
        if layer_idx < cfg.dense_layers:
            index, count = plan.dense_index()
        else:
            index, count = _select_ragged(q, k, layer_idx, states, plan)
        out, _ = ops.sparse_prefill_varlen(q, k, v, index, count, plan.cu_seqlens_q,
                                           plan.cu_seqlens_k, validate=False)
    if "decode" in phases:
        out = torch.empty_like(q) if out is None else out
        for b, phase in enumerate(phases):
            if phase != "decode":
                continue
            q0, k0, k1 = plan.q_offsets[b], plan.k_offsets[b], plan.k_offsets[b + 1]
            step = sketchwalk_attention(q[q0 : q0 + 1][None], k[k0:k1][None], v[k0:k1][None],
                                        layer_idx, states[b], layout="NHD")
            out[q0 : q0 + 1] = step[0]
    return out


def _select_ragged(q, k, layer_idx: int, states: list[SketchWalkState], plan: StepPlan):
    """Each prefill sequence's selection on its own rows (a strided [1, heads, tokens, D] view
    of the packed tokens), written into one index [num_seqs, index_heads, num_q_blocks, width];
    rows of other sequences stay empty (num_selected 0). Also sets each state's keys4 decode
    state and density, as the single-sequence prefill does."""
    rows = []
    for b, seq in enumerate(plan.sequences):
        if seq.phase == "decode":
            rows.append(None)
            continue
        q0, q1 = plan.q_offsets[b], plan.q_offsets[b + 1]
        k0, k1 = plan.k_offsets[b], plan.k_offsets[b + 1]
        qb, kb = q[q0:q1].transpose(0, 1)[None], k[k0:k1].transpose(0, 1)[None]
        state = states[b]
        if seq.phase == "prefill":
            state.layers.pop(layer_idx, None)  # a prefill restarts the layer
        rows.append(select_sequence(qb, kb, layer_idx, state, seq))
        if seq.phase == "prefill":
            state.layers[layer_idx] = keys4_layer_state(kb, state.cache_capacity)
        else:
            append_chunk_keys4(state, layer_idx, kb, seq.num_queries)
    return plan.pad_index(rows)


def select_sequence(qb, kb, layer_idx: int, state: SketchWalkState, seq) -> tuple:
    """One prefill or chunk sequence of a step on its own rows (qb [1, Hq, Tq, D], kb [1, Hkv,
    Tk, D]): its (block_index, num_selected), its density and shapes recorded in its state. The
    ragged and the paged layer both select through here; each keeps its 4-bit keys its way."""
    if seq.phase == "prefill":
        index, count, _, _ = select_prefill_blocks(qb, kb, layer_idx, state)
    else:
        index, count = select_chunk_blocks(qb, kb, layer_idx, state)
    state.record_prefill_selection(layer_idx, index, count, seq.num_queries,
                                   state.config.block_size, seq.num_keys)
    state.layer_heads[layer_idx] = (1, qb.shape[1], kb.shape[1])
    return index, count


def _check_varlen_args(q, k, v, layer_idx, states, plan) -> None:
    if not isinstance(plan, StepPlan):
        raise TypeError("sketchwalk_attention_varlen: argument 'plan' must be a StepPlan, got "
                        f"{type(plan).__name__}")
    for name, t, total in (("q", q, plan.total_q), ("k", k, plan.total_k), ("v", v, plan.total_k)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] != total:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"sketchwalk_attention_varlen: argument '{name}' must be packed "
                             f"tokens [{total}, heads, head_dim] (the plan's total), got {shape}")
    if len(states) != plan.num_seqs or not all(isinstance(s, SketchWalkState) for s in states):
        raise ValueError(f"sketchwalk_attention_varlen: argument 'states' must hold one "
                         f"SketchWalkState per sequence of the plan ({plan.num_seqs})")
    if any(s.config != plan.config for s in states):
        raise ValueError("sketchwalk_attention_varlen: every state must use the plan's config")
    if plan.config.decode_scorer != "keys4" and layer_idx >= plan.config.dense_layers and \
            ("prefill" in plan.phases() or "chunk" in plan.phases()):
        raise NotImplementedError("sketchwalk_attention_varlen: the ragged prefill keeps the keys4 "
                                  "decode state (decode_scorer 'keys4'); run the walk decode "
                                  "scorer's sequences one at a time")
