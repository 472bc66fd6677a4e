"""One layer of a ragged step: the sequences of a StepPlan (plan.py), packed, in one call.

The attention of every sequence of the step runs as ONE sparse_prefill_varlen call (the dense
layers too, with every causal block kept); each prefill or chunk sequence's selection (sketch,
scores, walk, select) runs on its own rows, as in a single-sequence prefill or chunk, and its
rows of the block index are placed in one padded index. The decode sequences (one new token on a
cache) under the keys4 scorer are selected together: each appends its new key to its own 4-bit
state, the states are stacked (padded to the longest: a copy of the 4-bit keys per step), scored
and selected in two launches, and their rows join the same index (one row of blocks per KV
group; the prefill rows are repeated over the KV groups then). With a Keys4DecodePool
(decode_pool.py, as a serving loop gives its states) the stacked states persist between steps
and the new keys are appended in one launch instead. Decode steps of other scorers run per
sequence through the single-sequence layer.
"""

from __future__ import annotations

import torch

from . import ops, query_spread
from .attention import (
    _sketch_setup,
    append_chunk_keys4,
    keys4_layer_state,
    select_chunk_blocks,
    select_prefill_blocks,
    sketchwalk_attention,
    walk_from_rows,
)
from .plan import StepPlan
from .state import LayerKeys4State, SketchWalkState


def sketchwalk_attention_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layer_idx: int,
    states: list[SketchWalkState],
    plan: StepPlan,
) -> torch.Tensor:
    """Causal attention of one layer for the ragged batch `plan` describes.

    q: [total_q, num_q_heads, head_dim] packed (NHD), sequence b's queries at rows
    plan.q_offsets[b] : plan.q_offsets[b + 1]; k, v: [total_k, num_kv_heads, head_dim] packed
    the same way (plan.k_offsets), holding every key of each sequence (queries end at the last
    key). ``states``: one SketchWalkState per sequence (its walk and decode state), all of one
    config. Returns [total_q, num_q_heads, head_dim] in q's dtype.

    Phases come from the plan: "prefill" and "chunk" sequences (docs/spec.md section 10) are
    selected and attended in one varlen call (a prefill restarts its state's layer `layer_idx`,
    a chunk extends it, as in the single-sequence layer); "decode" ones join that call when they
    all continue keys4 states of this layer (module docstring), else take the single-sequence
    decode step one by one (other decode scorers; float32 on CUDA, which the varlen kernel does
    not take).
    """
    _check_varlen_args(q, k, v, layer_idx, states, plan)
    cfg = plan.config
    phases = plan.phases()
    dense = cfg.is_dense_layer(layer_idx)
    dec_rows = plan.decode_rows()[0]
    # Decode rows in the step's varlen call: in dense layers (every causal block) and in sparse
    # ones when every decode sequence holds its keys4 state for this layer; not for float32 on
    # CUDA (the varlen kernel takes 16-bit there, the single-sequence decode casts).
    batched = (
        bool(dec_rows)
        and not (q.is_cuda and q.dtype == torch.float32)
        and (dense or _keys4_decodable(layer_idx, states, plan, dec_rows))
    )
    out = None
    if batched or "prefill" in phases or "chunk" in phases:
        if dense:
            index, count = plan.dense_index()
        else:
            index = count = None
            if "prefill" in phases or "chunk" in phases:
                index, count = _select_ragged(q, k, layer_idx, states, plan)
            if batched:
                index, count = _with_keys4_decode_rows(q, k, layer_idx, states, plan, index, count)
        out, _ = ops.sparse_prefill_varlen(
            q, k, v, index, count, plan.cu_seqlens_q, plan.cu_seqlens_k, validate=False
        )
    if dec_rows and not batched:
        out = torch.empty_like(q) if out is None else out
        for b, phase in enumerate(phases):
            if phase != "decode":
                continue
            q0, k0, k1 = plan.q_offsets[b], plan.k_offsets[b], plan.k_offsets[b + 1]
            step = sketchwalk_attention(
                q[q0 : q0 + 1][None],
                k[k0:k1][None],
                v[k0:k1][None],
                layer_idx,
                states[b],
                layout="NHD",
            )
            out[q0 : q0 + 1] = step[0]
    return out


def _keys4_decodable(layer_idx: int, states, plan: StepPlan, rows: list[int]) -> bool:
    """Whether every decode sequence of the step continues a keys4 state of this layer that
    holds exactly its cached keys (the single-sequence layer's decode condition)."""
    if plan.config.decode_scorer != "keys4":
        return False
    for b in rows:
        layer = states[b].layers.get(layer_idx)
        if (
            not isinstance(layer, LayerKeys4State)
            or layer.codes.shape[0] != 1
            or layer.num_keys != plan.sequences[b].num_keys - 1
        ):
            return False
    return True


def _with_keys4_decode_rows(q, k, layer_idx: int, states, plan: StepPlan, index, count):
    """docs/spec.md section 7 for every decode sequence of the step at once: each appends its new
    key's 4-bit row to its own state; the states, stacked (padded to the longest capacity), are
    scored and selected per KV group in one launch each; their rows (query block 0 of each decode
    sequence) join the prefill / chunk index (`index`, `count`, or None), whose rows are repeated
    over the KV groups when the prefill selection is per layer. Returns the step's index
    [num_seqs, num_kv_heads, num_q_blocks, width] and counts."""
    cfg = plan.config
    rows, q_rows, dec_lens, _ = plan.decode_rows()
    layers = [states[b].layers[layer_idx] for b in rows]
    num_keys = [plan.sequences[b].num_keys for b in rows]
    pool, pooled = states[rows[0]].decode_pool, None
    # A pool serves states without a fixed cache capacity (their rows are the pool's).
    if pool is not None and all(
        states[b].decode_pool is pool and states[b].cache_capacity is None for b in rows
    ):
        pooled = pool.stacked(layer_idx, layers, num_keys)
    if pooled is not None:
        # The stacked states persist (decode_pool.py): every new key appended in one launch.
        codes, scales, lengths = pooled
        lengths.copy_(dec_lens)  # each member's seq_lens (a view of its row) = its num_keys
        new_keys = k.index_select(0, plan.decode_last_keys())[:, :, None]  # [S, Hkv, 1, D]
        ops.quantize_keys4_(codes, scales, new_keys, lengths, False)
        for layer, n in zip(layers, num_keys):
            layer.num_keys = n
    else:
        codes, scales = _stack_keys4(k, layers, num_keys, rows, plan)
    q_dec = q.index_select(0, q_rows)[:, :, None]  # [S, Hq, 1, D]; 16-bit on CUDA (caller)
    mass = ops.score_blocks_keys4(q_dec, codes, scales, dec_lens, None, False)
    dec_index, dec_count = ops.select_blocks_keys4(
        mass, dec_lens, *plan.decode_args.at_layer(cfg, layer_idx).keys4_fracs(), False
    )  # [S, Hkv, 1, W], [S, Hkv, 1]
    for i, b in enumerate(rows):
        states[b].record_decode_rows(
            layer_idx, dec_count[i : i + 1], dec_lens[i : i + 1], cfg.block_size
        )
    width = dec_index.shape[3] if index is None else max(index.shape[3], dec_index.shape[3])
    merged, counts = plan.empty_index(codes.shape[1], width)
    if index is not None:  # [num_seqs, 1 or Hkv, Nq, W']: broadcast over the KV groups
        merged[..., : index.shape[3]] = index
        counts[...] = count
    merged[plan.decode_ids, :, 0, : dec_index.shape[3]] = dec_index[:, :, 0]
    counts[plan.decode_ids, :, 0] = dec_count[:, :, 0]
    return merged, counts


def _stack_keys4(k, layers: list[LayerKeys4State], num_keys: list[int], rows, plan: StepPlan):
    """Without a pool: each decode sequence appends its new key to its own 4-bit state, and the
    states are copied into one buffer [S, Hkv, max num_keys, D/2] for this step."""
    num_kv_heads, half = layers[0].codes.shape[1], layers[0].codes.shape[3]
    # Rows past a sequence's length are never read (its length bounds the scorer).
    codes = layers[0].codes.new_empty((len(rows), num_kv_heads, max(num_keys), half))
    scales = layers[0].scales.new_empty((len(rows), num_kv_heads, max(num_keys)))
    for i, (b, layer, n) in enumerate(zip(rows, layers, num_keys)):
        layer.ensure_capacity(n)
        layer.seq_lens.fill_(n)  # a scalar fill: no host-device sync
        new_key = k[plan.k_offsets[b + 1] - 1 : plan.k_offsets[b + 1]].transpose(0, 1)[None]
        ops.quantize_keys4_(layer.codes, layer.scales, new_key, layer.seq_lens, False)
        layer.num_keys = n
        codes[i, :, :n] = layer.codes[0, :, :n]
        scales[i, :, :n] = layer.scales[0, :, :n]
    return codes, scales


def _select_ragged(q, k, layer_idx: int, states: list[SketchWalkState], plan: StepPlan):
    """The selection of every prefill and chunk sequence as one index [num_seqs, index_heads,
    num_q_blocks, width] (rows of decode sequences empty: num_selected 0): batched
    (select_varlen_blocks) for the sketch-and-walk scorer, else each sequence on its own rows (a
    strided [1, heads, tokens, D] view of the packed tokens). Also sets each state's keys4
    decode state, density and heads, as the single-sequence prefill does."""
    batched = plan.config.prefill_scorer_at(layer_idx) == "sketch_walk"
    if not batched:
        plan.carried_walk = None  # a scorer layer carries no walk to the next layer
    if batched:
        # Any state of the plan's config gives the sketch's random draw.
        index, count = select_varlen_blocks(q, k, plan.cu_seqlens_k, layer_idx, plan, states[0])
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
        if batched:
            record_sequence(index, count, b, layer_idx, state, seq, qb.shape[1], kb.shape[1])
        else:
            rows.append(select_sequence(qb, kb, layer_idx, state, seq))
        if seq.phase == "prefill":
            state.layers[layer_idx] = keys4_layer_state(kb, state.cache_capacity)
        else:
            append_chunk_keys4(state, layer_idx, kb, seq.num_queries)
    return (index, count) if batched else plan.pad_index(rows)


def select_varlen_blocks(
    q, k, cu_seqlens_k, layer_idx: int, plan: StepPlan, state: SketchWalkState
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sketch -> scores -> walk -> select of every sequence of a ragged step at once (docs/spec.md
    sections 1-4, 8 and 10), in six launches plus the walk's matrix products, whatever the
    number of sequences; no host synchronization.

    q: packed queries [total_q, Hq, D] (plan.cu_seqlens_q); k: packed keys [total, Hkv, D] with
    offsets cu_seqlens_k, each sequence's keys whole. Block-level tensors are padded to the
    longest sequence (N = plan.num_kv_blocks blocks): the sketches of missing blocks are zeros,
    score_blocks leaves each sequence's missing key blocks out of its softmax (their scores are
    0, so they add nothing to the walk's products), select_blocks_varlen applies each sequence's
    own lengths, window and sink. A prefill walks (the walk carried from the previous sparse
    layer of the same step, in the plan); a chunk keeps its scores (section 10); a decode
    sequence selects nothing. ``state`` gives the sketch's random draw.

    Returns (block_index [num_seqs, index_heads, plan.num_q_blocks, N], num_selected
    [num_seqs, index_heads, plan.num_q_blocks]).
    """
    cfg = plan.config
    b, n = cfg.block_size, plan.num_kv_blocks
    num_seqs, num_q_heads, num_kv_heads = plan.num_seqs, q.shape[1], k.shape[1]
    num_kv_blocks, seq_args, walked, selected, _ = plan.selection_args()
    signs, coords, c = _sketch_setup(state, q.shape[2], q.device)
    # Query blocks padded to N too: A is square for the walk (a prefill has Tq = Tk).
    q_blocks = ops.hadamard_sketch_varlen(q, signs, coords, b, plan.cu_seqlens_q, n, False)
    k_blocks = ops.hadamard_sketch_varlen(k, signs, coords, b, cu_seqlens_k, n, False)
    if cfg.prefill_selection == "kv_group":  # each (sequence, KV group) a row of its own
        rows = num_seqs * num_kv_heads
        q_blocks = q_blocks.reshape(rows, num_q_heads // num_kv_heads, n, q_blocks.shape[-1])
        k_blocks = k_blocks.reshape(rows, 1, n, k_blocks.shape[-1])
        num_kv_blocks = num_kv_blocks.repeat_interleave(num_kv_heads)
        seq_args = seq_args.repeat_interleave(num_kv_heads, dim=0)
        walked = None if walked is None else walked.repeat_interleave(num_kv_heads)
    transition = ops.score_blocks(q_blocks, k_blocks, c, num_kv_blocks, False)
    del q_blocks, k_blocks
    walk = transition
    if "prefill" in plan.phases():  # the call holds the only reference to the carried walk
        # Each row walks with the product its own sequence's length picks (walk_matmul "auto");
        # rows that do not walk (chunks, decodes: their walk is dropped below) take a walking
        # row's, so that they never split the step into two groups.
        own = [-(-s.num_keys // b) if s.phase == "prefill" else None for s in plan.sequences]
        walking = next(nb for nb in own if nb is not None)
        rows_per_seq = transition.shape[0] // num_seqs
        blocks = [walking if nb is None else nb for nb in own for _ in range(rows_per_seq)]
        walk = walk_from_rows(
            transition, _take_carried_walk(plan, layer_idx, transition.shape), cfg, blocks
        )
        if walked is not None:  # chunks keep their scores (no walk, section 10)
            walk = torch.where(walked[:, None, None], walk, transition)
        plan.carried_walk = (layer_idx, walk)
    else:
        plan.carried_walk = None
    keep = cfg.layer_keep_frac(cfg.kblocks_frac, layer_idx)
    heads = num_kv_heads if cfg.prefill_selection == "kv_group" else 1
    dense = None
    if cfg.dense_spread_q_frac > 0 and "prefill" in plan.phases():  # section 13
        dense = query_spread.per_index_head(query_spread.dense_varlen_rows(q, plan), heads)
    index, count = ops.select_blocks_varlen(
        walk[:, : plan.num_q_blocks],
        seq_args,
        b,
        keep,
        cfg.dense_last_q_blocks,
        False,
        dense,
        cfg.dense_spread_in_budget,
    )
    index = index.reshape(num_seqs, heads, *index.shape[2:])
    count = count.reshape(num_seqs, heads, count.shape[-1])
    if selected is not None:
        count = count * selected[:, None, None]
    return index, count


def _take_carried_walk(plan: StepPlan, layer_idx: int, shape) -> torch.Tensor | None:
    """The walk of layer layer_idx - 1 when it has this shape (docs/spec.md section 3); the plan
    lets go of it either way (no later layer can use it)."""
    carried, plan.carried_walk = plan.carried_walk, None
    if carried is None or carried[0] != layer_idx - 1 or carried[1].shape != shape:
        return None
    return carried[1]


def record_sequence(
    index,
    count,
    b: int,
    layer_idx: int,
    state: SketchWalkState,
    seq,
    num_q_heads: int,
    num_kv_heads: int,
) -> None:
    """Sequence b's density (when its state tracks it) and heads after a batched selection."""
    nq = -(-seq.num_queries // state.config.block_size)
    state.record_prefill_selection(
        layer_idx,
        index[b : b + 1, :, :nq],
        count[b : b + 1, :, :nq],
        seq.num_queries,
        state.config.block_size,
        seq.num_keys,
    )
    state.layer_heads[layer_idx] = (1, num_q_heads, num_kv_heads)


def select_sequence(qb, kb, layer_idx: int, state: SketchWalkState, seq) -> tuple:
    """One prefill or chunk sequence of a step on its own rows (qb [1, Hq, Tq, D], kb [1, Hkv,
    Tk, D]): its (block_index, num_selected), its density and shapes recorded in its state. The
    ragged and the paged layer both select through here; each keeps its 4-bit keys its way."""
    if seq.phase == "prefill":
        index, count, _, _ = select_prefill_blocks(qb, kb, layer_idx, state)
    else:
        index, count = select_chunk_blocks(qb, kb, layer_idx, state)
    state.record_prefill_selection(
        layer_idx, index, count, seq.num_queries, state.config.block_size, seq.num_keys
    )
    state.layer_heads[layer_idx] = (1, qb.shape[1], kb.shape[1])
    return index, count


def _check_varlen_args(q, k, v, layer_idx, states, plan) -> None:
    if not isinstance(plan, StepPlan):
        raise TypeError(
            "sketchwalk_attention_varlen: argument 'plan' must be a StepPlan, got "
            f"{type(plan).__name__}"
        )
    for name, t, total in (("q", q, plan.total_q), ("k", k, plan.total_k), ("v", v, plan.total_k)):
        if not isinstance(t, torch.Tensor) or t.dim() != 3 or t.shape[0] != total:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"sketchwalk_attention_varlen: argument '{name}' must be packed "
                f"tokens [{total}, heads, head_dim] (the plan's total), got {shape}"
            )
    plan.check_device("sketchwalk_attention_varlen", q)
    if len(states) != plan.num_seqs or not all(isinstance(s, SketchWalkState) for s in states):
        raise ValueError(
            f"sketchwalk_attention_varlen: argument 'states' must hold one "
            f"SketchWalkState per sequence of the plan ({plan.num_seqs})"
        )
    if any(s.config != plan.config for s in states):
        raise ValueError("sketchwalk_attention_varlen: every state must use the plan's config")
    if (
        plan.config.decode_scorer != "keys4"
        and not plan.config.is_dense_layer(layer_idx)
        and ("prefill" in plan.phases() or "chunk" in plan.phases())
    ):
        raise NotImplementedError(
            "sketchwalk_attention_varlen: the ragged prefill keeps the keys4 "
            "decode state (decode_scorer 'keys4'); run the walk decode "
            "scorer's sequences one at a time"
        )
