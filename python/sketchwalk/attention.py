"""One layer of Sketch&Walk attention: sketch -> scores -> walk -> select -> sparse attention,
for a prefill or one decode step (docs/spec.md sections 1-6). No kernel logic lives here."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import ops, query_spread, scorers
from .config import WALK_BF16X3_MIN_BLOCKS
from .plan import SelectionArgs
from .state import (
    LayerDecodeState,
    LayerKeys4State,
    LayerStepState,
    SketchWalkState,
    keys4_capacity,
)


def sketchwalk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layer_idx: int,
    state: SketchWalkState,
    seq_lens: torch.Tensor | None = None,
    *,
    layout: str = "HND",
) -> torch.Tensor:
    """Causal attention of one layer, sparse per Sketch&Walk.

    layout "HND" (default): q [batch, num_q_heads, num_queries, head_dim], k, v [batch,
    num_kv_heads, num_keys, head_dim]; "NHD" (flash-attn's order): q [batch, num_queries,
    num_q_heads, head_dim], k, v [batch, num_keys, num_kv_heads, head_dim]. k and v hold every
    key of the sequence (cache included; queries end at the last key). Returns the output in
    q's layout and dtype. Nothing is guessed from shapes: a head count above MAX_HEADS is
    refused as a token count passed in the heads' place.

    - ``config.is_dense_layer(layer_idx)``: dense causal attention (SDPA);
    - ``num_queries == num_keys``: prefill; (re)starts this layer's decode state;
    - ``num_queries == 1`` after this layer saw ``num_keys - 1`` keys: one decode step;
    - ``1 < num_queries < num_keys``: a prefill chunk over a cache (docs/spec.md section 10).

    ``seq_lens`` (int32 [batch] on q's device): one decode step over a fixed-capacity cache
    (e.g. a static cache): k and v hold ``num_keys`` slots of which sequence b uses the first
    ``seq_lens[b]``, its new key at ``seq_lens[b] - 1``. Nothing on the host depends on the
    length, so the step can be captured in a CUDA graph and replayed. Needs the keys4 decode
    scorer and a prefill of this layer made with ``state.cache_capacity >= num_keys``. Sparse
    layers never read the slots past a length; dense layers (``config.is_dense_layer``) mask
    them in SDPA, which needs them finite (a static cache starts zeroed).
    """
    if layout not in LAYOUTS:
        raise ValueError(
            f"sketchwalk_attention: argument 'layout' must be one of {LAYOUTS}, got {layout!r}"
        )
    if layout == "NHD":
        for name, t in (("q", q), ("k", k), ("v", v)):
            _check_rank4(name, t, "[batch, tokens, heads, head_dim] (layout 'NHD')")
        out = sketchwalk_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), layer_idx, state, seq_lens
        )
        return out.transpose(1, 2)
    _check_layer_args(q, k, v, layer_idx, state)
    cfg = state.config
    if cfg.is_dense_layer(layer_idx):
        if seq_lens is not None:
            return _decode_keys4_fixed(q, k, v, seq_lens, layer_idx, state)
        return dense_causal_attention(q, k, v)
    out = _sparse_layer(q, k, v, layer_idx, state, seq_lens)
    state.layer_heads[layer_idx] = (q.shape[0], q.shape[1], k.shape[1])
    return out


def _sparse_layer(q, k, v, layer_idx: int, state: SketchWalkState, seq_lens) -> torch.Tensor:
    """A sparse layer's prefill, chunk or decode step (sketchwalk_attention's dispatch)."""
    num_queries, num_keys = q.shape[2], k.shape[2]
    if seq_lens is not None:
        return _decode_keys4_fixed(q, k, v, seq_lens, layer_idx, state)
    if num_queries == num_keys:
        return _prefill(q, k, v, layer_idx, state)
    layer = state.layers.get(layer_idx)
    if num_queries == 1 and layer is not None and layer.num_keys == num_keys - 1:
        if isinstance(layer, LayerKeys4State):
            return _decode_keys4(q, k, v, layer_idx, state, layer)
        if isinstance(layer, LayerStepState):
            return _decode_registered(q, k, v, layer_idx, state, layer)
        return _decode(q, k, v, layer_idx, state, layer)
    if num_queries > 1:
        return prefill_chunk(q, k, v, layer_idx, state)
    raise ValueError(
        f"sketchwalk_attention: layer {layer_idx} got {num_queries} queries against {num_keys} "
        f"keys; "
        "supported are a prefill (num_queries == num_keys), a prefill chunk (1 < num_queries < "
        "num_keys) and one decode step (num_queries == 1 after the layer saw num_keys - 1 keys)"
        + ("" if layer is None else f"; the layer's state holds {layer.num_keys} keys")
    )


# calibration.record_walk_entropy's recorder while it runs, else None: called with (layer_idx,
# walk [rows, N, N], num_selected) by every sketch + walk prefill layer.
prefill_walk_observer = None

MAX_LAYERS = 1 << 16  # a bound on layer_idx far above any model's depth
LAYOUTS = ("HND", "NHD")  # dims of q / k / v: heads before tokens, or tokens before heads
# A bound on the head count far above any model's (128 query heads is the largest we know of):
# more "heads" than this is a token count in the heads' place, i.e. NHD tensors passed as HND.
MAX_HEADS = 1024


def _check_rank4(name: str, t, dims: str) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(
            f"sketchwalk_attention: argument '{name}' must be a 4-D tensor {dims}, got {shape}"
        )


def _check_layer_args(q, k, v, layer_idx, state) -> None:
    """sketchwalk_attention's own argument checks, naming the argument (before any work)."""
    if not isinstance(state, SketchWalkState):
        raise TypeError(
            "sketchwalk_attention: argument 'state' must be a SketchWalkState "
            f"(make one per sequence: SketchWalkState(config)), got {type(state).__name__}"
        )
    if isinstance(layer_idx, bool) or not isinstance(layer_idx, int):
        raise TypeError(
            f"sketchwalk_attention: argument 'layer_idx' must be an int, got "
            f"{type(layer_idx).__name__}"
        )
    if not 0 <= layer_idx < MAX_LAYERS:
        raise ValueError(
            f"sketchwalk_attention: argument 'layer_idx' must lie in [0, {MAX_LAYERS}), "
            f"got {layer_idx}"
        )
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_rank4(name, t, "[batch, heads, tokens, head_dim] (layout 'HND')")
        if t.shape[1] > MAX_HEADS:
            raise ValueError(
                f"sketchwalk_attention: argument '{name}' has {t.shape[1]} heads at dim 1 (layout "
                f"'HND': [batch, heads, tokens, head_dim]), more than any model's ({MAX_HEADS}): "
                "for [batch, tokens, heads, head_dim] tensors pass layout='NHD'"
            )
    if q.shape[2] < 1 or k.shape[2] < 1:
        raise ValueError(
            "sketchwalk_attention: arguments 'q' and 'k' must hold at least one "
            f"token (an empty prompt has nothing to attend), got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}"
        )
    if k.shape != v.shape:
        raise ValueError(
            f"sketchwalk_attention: argument 'v' must have the shape of 'k' "
            f"{tuple(k.shape)}, got {tuple(v.shape)}"
        )
    if (
        k.shape[0] != q.shape[0]
        or k.shape[3] != q.shape[3]
        or k.shape[1] < 1
        or q.shape[1] % k.shape[1] != 0
    ):
        raise ValueError(
            f"sketchwalk_attention: argument 'k' must be [batch={q.shape[0]}, "
            f"num_kv_heads dividing the {q.shape[1]} heads of 'q', tokens, "
            f"head_dim={q.shape[3]}], got {tuple(k.shape)}"
        )
    shape = state.layer_heads.get(layer_idx)
    if (
        shape is not None
        and q.shape[2] < k.shape[2]
        and shape != (q.shape[0], q.shape[1], k.shape[1])
    ):
        raise ValueError(
            f"sketchwalk_attention: layer {layer_idx}'s state was made for batch {shape[0]}, "
            f"{shape[1]} query and {shape[2]} KV heads; arguments 'q' / 'k' have batch "
            f"{q.shape[0]}, {q.shape[1]} and {k.shape[1]} heads (a new sequence starts with a "
            "prefill, or a state of its own)"
        )
    if q.device != k.device or q.device != v.device:
        raise ValueError(
            f"sketchwalk_attention: q, k and v must be on one device, got {q.device}, "
            f"{k.device}, {v.device}"
        )


def dense_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SDPA with the causal mask aligned so that the queries end at the last key."""
    num_queries, num_keys = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if num_queries == num_keys:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    if num_queries == 1:
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
    qpos = torch.arange(num_keys - num_queries, num_keys, device=q.device)[:, None]
    mask = torch.arange(num_keys, device=q.device)[None, :] <= qpos
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)


def _sketch_setup(state: SketchWalkState, head_dim: int, device: torch.device):
    cfg = state.config
    signs, coords = state.sketch_transform(head_dim, device)
    return signs, coords, ops.logit_scale(cfg.sketch_dim, head_dim)


def select_prefill_blocks(
    q: torch.Tensor, k: torch.Tensor, layer_idx: int, state: SketchWalkState
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The selection half of a prefill: sketch -> scores -> walk (carried) -> select.

    Returns (block_index, num_selected, transition A, key-block sketches). With
    ``prefill_selection="layer"`` the index has one head (A: [batch, N, N]); with "kv_group"
    one per KV group (block_index [batch, num_kv_heads, N, N], A: [batch * num_kv_heads, N, N],
    docs/spec.md section 8). Exposed so that benchmarks and other attention backends (e.g.
    FlexAttention) can reuse the selection.
    """
    cfg = state.config
    if cfg.prefill_scorer_at(layer_idx) != "sketch_walk":  # a registered scorer: scores only
        state.take_carried_walk(layer_idx, -1)  # no walk here: the last layer's is let go
        block_index, num_selected = _select_prefill(
            _registered_scores(q, k, layer_idx, state),
            q.shape[2],
            k.shape[1],
            cfg,
            layer_idx=layer_idx,
            q=q,
        )
        return block_index, num_selected, None, None
    walk, transition, k_blocks = _score_and_walk(q, k, layer_idx, state)
    block_index, num_selected = _select_prefill(
        walk, q.shape[2], k_blocks.shape[1], cfg, layer_idx=layer_idx, q=q
    )
    return block_index, num_selected, transition, k_blocks


def _registered_scores(q, k, layer_idx: int, state: SketchWalkState) -> torch.Tensor:
    """The block scores of the config's registered prefill scorer, shape-checked."""
    cfg = state.config
    scores = scorers.prefill_scorer(cfg.prefill_scorer)(q, k, layer_idx, state)
    rows = q.shape[0] * (k.shape[1] if cfg.prefill_selection == "kv_group" else 1)
    want = (rows, -(-q.shape[2] // cfg.block_size), -(-k.shape[2] // cfg.block_size))
    if tuple(scores.shape) != want or scores.dtype != torch.float32:
        raise ValueError(
            f"prefill_scorer {cfg.prefill_scorer!r} must return float32 {want}, got "
            f"{scores.dtype} {tuple(scores.shape)}"
        )
    return scores


def _score_and_walk(q, k, layer_idx: int, state: SketchWalkState):
    """Sketch -> scores -> walk of a prefill; carries the walk to the next layer.

    Returns (walk W, transition A, key-block sketches). Memory: besides A, at most two N x N
    buffers per selection row (W of the previous layer is let go after the walk's first step)."""
    transition, k_blocks = _block_scores(q, k, state)
    walk = _carried_walk_blocks(transition, state, layer_idx)
    state.carry_walk(layer_idx, walk)
    return walk, transition, k_blocks


def _block_scores(q, k, state: SketchWalkState):
    """Sketches and block scores (docs/spec.md sections 1-2): (A [rows, Nq, Nk], key-block
    sketches), rows = batch, or batch x num_kv_heads under prefill_selection "kv_group"."""
    cfg = state.config
    b = cfg.block_size
    signs, coords, c = _sketch_setup(state, q.shape[3], q.device)
    q_blocks = ops.hadamard_sketch(q, signs, coords, b, validate=False)  # [B, Hq, N, m]
    k_blocks = ops.hadamard_sketch(k, signs, coords, b, validate=False)  # [B, Hkv, N, m]
    batch, num_kv_heads = k_blocks.shape[0], k_blocks.shape[1]
    if cfg.prefill_selection == "kv_group":  # each KV group a batch row of its own: the head
        rows = batch * num_kv_heads  # sum runs over its heads only
        q_rows = q_blocks.reshape(rows, q_blocks.shape[1] // num_kv_heads, *q_blocks.shape[2:])
        transition = ops.score_blocks(q_rows, k_blocks.reshape(rows, 1, *k_blocks.shape[2:]), c)
        del q_rows
    else:
        transition = ops.score_blocks(q_blocks, k_blocks, c)  # A [B, N, N]
    del q_blocks  # [B, Hq, N, m] float32: 256 MiB at 1M tokens and 32 heads
    return transition, k_blocks


def _carried_walk_blocks(
    transition: torch.Tensor, state: SketchWalkState, layer_idx: int
) -> torch.Tensor:
    """walk_from with W_prev taken from the state, which holds the only reference to it: the
    walk frees it after its first step. ``ops.walk_blocks(A, A, W_prev or None, degree,
    damping)`` bit for bit under walk_matmul "fp32" (and "auto" below its threshold)."""
    return walk_from(
        transition,
        state.take_carried_walk(layer_idx, transition.shape[-1], transition.shape[0]),
        state.config,
    )


def walk_from(
    transition: torch.Tensor, init: torch.Tensor | None, cfg, num_blocks: int | None = None
) -> torch.Tensor:
    """The walk of docs/spec.md section 3 on A = transition from init (None: A), in less memory
    than ops.walk_blocks: the caller's reference to init should be its last (it is let go after
    the first step).

    walk_matmul "auto" is one of the two below (walk_matmul_for), picked by num_blocks: the
    sequence's own key blocks (default A's N; a padded ragged batch passes its rows' own,
    walk_from_rows).

    walk_matmul "fp32": ``ops.walk_blocks(A, A, init, degree, damping)`` bit for bit (the same
    baddbmm calls); later steps write into the buffer two steps old. Peak: A and two N x N
    buffers (the op, which cannot free its argument, holds A, init and two).

    walk_matmul "bf16x3": each step's product from bfloat16 halves of both factors, x = hi + lo
    (hi the bfloat16 rounding of x, lo that of the remainder: x to about 2^-16),
    state @ A ~ (s_hi @ a_lo + s_lo @ a_hi) + s_hi @ a_hi in float32 (on CUDA three tensor-core
    GEMMs, ``torch.bmm(..., out_dtype=torch.float32)``; on the CPU the same products in float32).
    Both factors are non-negative (probabilities), so the dropped s_lo @ a_lo and the halves'
    remainders are at most ~3 x 2^-16 of the exact product, entry by entry. A is split once.
    Peak: about five float32 N x N buffers' worth (A, A's halves, a step's input or its halves,
    its output, one product)."""
    if cfg.degree == 0:
        return (transition if init is None else init).clone()
    beta, alpha = 1.0 - cfg.damping, cfg.damping
    n = transition.shape[-1] if num_blocks is None else num_blocks
    if walk_matmul_for(cfg.walk_matmul, n, transition.is_cuda) == "bf16x3":
        a_hi, a_lo = _split_bf16(transition)
        s_hi, s_lo = (a_hi, a_lo) if init is None else _split_bf16(init)
        del init  # the carried walk is let go once split
        walk = None
        for _ in range(cfg.degree):
            if walk is not None:  # the last step's output, let go once split
                s_hi, s_lo = _split_bf16(walk)
                walk = None
            walk = _bmm_float32(s_hi, a_lo)
            walk += _bmm_float32(s_lo, a_hi)
            del s_lo
            walk += _bmm_float32(s_hi, a_hi)
            del s_hi
            walk.mul_(alpha).add_(transition, alpha=beta)
        return walk
    walk = torch.baddbmm(
        transition, transition if init is None else init, transition, beta=beta, alpha=alpha
    )
    del init
    spare = None
    for _ in range(cfg.degree - 1):
        walk, spare = (
            torch.baddbmm(transition, walk, transition, beta=beta, alpha=alpha, out=spare),
            walk,
        )
    return walk


def walk_from_rows(
    transition: torch.Tensor, init: torch.Tensor | None, cfg, row_blocks: list[int]
) -> torch.Tensor:
    """walk_from on rows padded to a common N (a ragged step): row r's product is the one its own
    row_blocks[r] key blocks pick (walk_matmul "auto"), so a sequence walks with the product it
    would use alone (equal up to float32 rounding: padding changes the summation order). Rows
    that pick alike walk in one call, which frees init after its first step (the caller passes
    its only reference). A step that mixes both gathers each group's rows of A and init (copies)
    and lets go of init once split; each group's copy of init is freed by its own walk."""
    picks = [walk_matmul_for(cfg.walk_matmul, n, transition.is_cuda) for n in row_blocks]
    held = [init]  # popped into walk_from, which then holds the only reference (and frees it)
    del init
    if len(set(picks)) <= 1:
        return walk_from(transition, held.pop(), cfg, max(row_blocks, default=None))
    groups, parts = [], []
    for pick in sorted(set(picks)):
        rows = [r for r, p in enumerate(picks) if p == pick]
        ids = torch.tensor(rows, device=transition.device)
        groups.append((ids, max(row_blocks[r] for r in rows)))
        parts.append(None if held[0] is None else held[0].index_select(0, ids))
    held.clear()
    walk = None
    for ids, blocks in groups:
        part = walk_from(transition.index_select(0, ids), parts.pop(0), cfg, blocks)
        walk = torch.empty_like(transition) if walk is None else walk
        walk.index_copy_(0, ids, part)
        del part
    return walk


def walk_matmul_for(walk_matmul: str, num_blocks: int, is_cuda: bool) -> str:
    """The walk's product ("fp32" or "bf16x3") for config.walk_matmul on N = num_blocks: "auto"
    takes "bf16x3" on CUDA from config.WALK_BF16X3_MIN_BLOCKS up (where it measured faster)."""
    if walk_matmul != "auto":
        return walk_matmul
    return "bf16x3" if is_cuda and num_blocks >= WALK_BF16X3_MIN_BLOCKS else "fp32"


def _split_bf16(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) bfloat16 with hi + lo = x (float32) to about 2^-16 of x; no float32 temporary
    (the subtraction promotes hi inside its kernel)."""
    hi = x.to(torch.bfloat16)
    return hi, (x - hi).to(torch.bfloat16)


def _bmm_float32(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x @ y of bfloat16 batches, accumulated and returned in float32: one tensor-core GEMM on
    CUDA (``out_dtype``); on the CPU the same products in float32 (a bfloat16 x bfloat16
    product is exact in float32)."""
    if x.is_cuda:
        return torch.bmm(x, y, out_dtype=torch.float32)
    return torch.bmm(x.float(), y.float())


def _select_prefill(
    walk: torch.Tensor,
    num_tokens: int,
    num_kv_heads: int,
    cfg,
    num_keys: int | None = None,
    layer_idx: int | None = None,
    q: torch.Tensor | None = None,
):
    """select_blocks on the walk with the prefill's sink / window / dense-row rules (section 4)
    and layer layer_idx's keep fraction (cfg.layer_keep_scale); num_keys > num_tokens for a
    chunk (section 10). A prefill's queries q (not a chunk's) add the query-spread dense rows of
    cfg.dense_spread_q_frac (section 13)."""
    num_keys = num_tokens if num_keys is None else num_keys
    args = SelectionArgs.prefill(cfg, num_keys, layer_idx)
    dense = None
    if q is not None and cfg.dense_spread_q_frac > 0 and num_keys == num_tokens:
        heads = num_kv_heads if cfg.prefill_selection == "kv_group" else 1
        dense = query_spread.per_index_head(query_spread.dense_prefill_rows(q, cfg), heads)
    block_index, num_selected = ops.select_blocks(
        walk,
        *args.select_blocks_args(num_tokens, num_keys, cfg.block_size),
        dense,
        cfg.dense_spread_in_budget,
    )
    if cfg.prefill_selection == "kv_group":  # [B * Hkv, 1, Nq, width] -> [B, Hkv, Nq, width]:
        batch = walk.shape[0] // num_kv_heads  # index_heads = num_kv_heads
        block_index = block_index.reshape(batch, num_kv_heads, *block_index.shape[2:])
        num_selected = num_selected.reshape(batch, num_kv_heads, num_selected.shape[-1])
    return block_index, num_selected


def _prefill(q, k, v, layer_idx: int, state: SketchWalkState) -> torch.Tensor:
    """One prefill layer. The N x N buffers (N = blocks) are let go as soon as they are done
    with: A after the walk (or once copied into the walk decode state), the block index after the
    density; W stays in the state for the next layer."""
    cfg = state.config
    b = cfg.block_size
    num_tokens = q.shape[2]
    state.layers.pop(layer_idx, None)  # a prefill restarts the layer: its old decode state goes now
    if cfg.prefill_scorer_at(layer_idx) != "sketch_walk":
        block_index, num_selected, _, _ = select_prefill_blocks(q, k, layer_idx, state)
        out = ops.sparse_prefill(q, k, v, block_index, num_selected, validate=False)[0]
        state.record_prefill_selection(layer_idx, block_index, num_selected, num_tokens, b)
        state.layers[layer_idx] = decode_state_after_prefill(k, state)
        return out
    walk, transition, k_blocks = _score_and_walk(q, k, layer_idx, state)
    decode_state = (
        _walk_decode_state(q, transition, k_blocks, state) if cfg.decode_scorer == "walk" else None
    )
    del transition
    block_index, num_selected = _select_prefill(
        walk, num_tokens, k_blocks.shape[1], cfg, layer_idx=layer_idx, q=q
    )
    if prefill_walk_observer is not None:
        prefill_walk_observer(layer_idx, walk, num_selected)
    del walk, k_blocks
    out = ops.sparse_prefill(q, k, v, block_index, num_selected, validate=False)[0]
    state.record_prefill_selection(layer_idx, block_index, num_selected, num_tokens, b)
    del block_index, num_selected
    state.layers[layer_idx] = (
        decode_state if decode_state is not None else decode_state_after_prefill(k, state)
    )
    return out


def decode_state_after_prefill(k: torch.Tensor, state: SketchWalkState):
    """A layer's decode state after a prefill of the keys k, for the keys4 or a registered decode
    scorer (the walk's is made from the prefill's sketches: _walk_decode_state)."""
    if state.config.decode_scorer == "keys4":
        return keys4_layer_state(k, state.cache_capacity)
    return LayerStepState(num_keys=k.shape[2])


def prefill_chunk_or_dense(q, k, v, layer_idx: int, state: SketchWalkState) -> torch.Tensor:
    """New tokens over a cache, named a chunk by the caller (whatever their count, one
    included): dense causal attention in the dense layers, else prefill_chunk."""
    state.layer_heads.pop(layer_idx, None)  # a chunk over another cache may change the shapes
    _check_layer_args(q, k, v, layer_idx, state)
    if state.config.is_dense_layer(layer_idx):
        return dense_causal_attention(q, k, v)
    out = prefill_chunk(q, k, v, layer_idx, state)
    state.layer_heads[layer_idx] = (q.shape[0], q.shape[1], k.shape[1])
    return out


def select_chunk_blocks(q, k, layer_idx: int, state: SketchWalkState):
    """The selection of a prefill chunk (docs/spec.md section 10): block scores of the chunk's
    query blocks against every key block, no walk (none is carried to or from the layer), the
    prefill rules with the chunk's own query positions. Returns (block_index, num_selected)."""
    if state.config.prefill_scorer_at(layer_idx) != "sketch_walk":
        state.take_carried_walk(layer_idx, -1)
        scores = _registered_scores(q, k, layer_idx, state)
        return _select_prefill(scores, q.shape[2], k.shape[1], state.config, k.shape[2], layer_idx)
    transition, k_blocks = _block_scores(q, k, state)
    state.take_carried_walk(layer_idx, -1)  # a chunk neither uses nor leaves a carried walk
    return _select_prefill(
        transition, q.shape[2], k_blocks.shape[1], state.config, k.shape[2], layer_idx
    )


def prefill_chunk(q, k, v, layer_idx: int, state: SketchWalkState) -> torch.Tensor:
    """One prefill chunk: num_queries new tokens over num_keys keys (the cache, then the chunk).
    Its keys join the layer's 4-bit key state when that state holds the keys before the chunk;
    otherwise (a cache this state has not seen: reuse across prompts, prefix caching) the state
    is rebuilt from every key."""
    cfg = state.config
    if cfg.decode_scorer == "walk":
        raise NotImplementedError(
            "sketchwalk_attention: a prefill chunk needs a decode scorer "
            "other than 'walk' (the walk decode state has no chunk update)"
        )
    num_queries, num_keys = q.shape[2], k.shape[2]
    block_index, num_selected = select_chunk_blocks(q, k, layer_idx, state)
    out = ops.sparse_prefill(q, k, v, block_index, num_selected, validate=False)[0]
    state.record_prefill_selection(
        layer_idx, block_index, num_selected, num_queries, cfg.block_size, num_keys
    )
    append_chunk_keys4(state, layer_idx, k, num_queries)
    return out


def append_chunk_keys4(
    state: SketchWalkState, layer_idx: int, k: torch.Tensor, num_queries: int
) -> None:
    """The layer's keys4 state (or a registered decode scorer's) after a chunk of num_queries keys
    at the end of k."""
    num_keys = k.shape[2]
    if state.config.decode_scorer != "keys4":
        state.layers[layer_idx] = LayerStepState(num_keys=num_keys)
        return
    layer = state.layers.get(layer_idx)
    if (
        isinstance(layer, LayerKeys4State)
        and layer.num_keys == num_keys - num_queries
        and layer.codes.shape[0] == k.shape[0]
    ):
        layer.ensure_capacity(num_keys)
        layer.seq_lens.fill_(num_keys)
        ops.quantize_keys4_(
            layer.codes, layer.scales, k[:, :, num_keys - num_queries :], layer.seq_lens, False
        )
        layer.num_keys = num_keys
    else:
        state.layers[layer_idx] = keys4_layer_state(k, state.cache_capacity)


def _walk_decode_state(q, transition, k_blocks, state: SketchWalkState) -> LayerDecodeState:
    """The walk scorer's decode state after a prefill (docs/spec.md section 6): A, the key-block
    sketches, the sketches of the last W queries and their logits, with spare capacity."""
    cfg = state.config
    batch, _, num_tokens, head_dim = q.shape
    signs, coords, c = _sketch_setup(state, head_dim, q.device)
    n = transition.shape[-1]
    window = min(cfg.query_window, num_tokens)
    q_window = q.new_zeros(
        (batch, q.shape[1], cfg.query_window, coords.numel()), dtype=torch.float32
    )
    q_window[:, :, :window] = ops.hadamard_sketch(
        q[:, :, num_tokens - window :], signs, coords, 1, validate=False
    )
    capacity = -(-(n + 16) // 16) * 16  # spare blocks; rows of 16 floats keep 16-byte alignment
    t_buf = transition.new_zeros((batch, capacity, capacity))
    t_buf[:, :n, :n] = transition
    kb_buf = k_blocks.new_zeros((*k_blocks.shape[:2], capacity, k_blocks.shape[-1]))
    kb_buf[:, :, :n] = k_blocks
    logits = q_window.new_zeros((*q_window.shape[:3], capacity))
    ops.update_window_logits_(logits, q_window, kb_buf, n, -1, c)
    return LayerDecodeState(
        transition=t_buf,
        key_blocks=kb_buf,
        query_window=q_window,
        window_logits=logits,
        window_fill=window,
        pushes=window,
        num_keys=num_tokens,
    )


def _decode(
    q, k, v, layer_idx: int, state: SketchWalkState, layer: LayerDecodeState
) -> torch.Tensor:
    cfg = state.config
    b = cfg.block_size
    num_keys, head_dim = k.shape[2], q.shape[3]
    signs, coords, c = _sketch_setup(state, head_dim, q.device)
    layer.ensure_capacity(-(-num_keys // b))
    window_fill = min(layer.window_fill + 1, cfg.query_window)
    args = SelectionArgs.decode(cfg, num_keys, layer_idx)
    # Steps 1-4 of docs/spec.md section 6 in one op (the state buffers are updated in place).
    block_index, num_selected = ops.select_decode_blocks_(
        q,
        k,
        layer.key_blocks,
        layer.query_window,
        layer.window_logits,
        layer.transition,
        signs,
        coords,
        window_fill,
        layer.pushes,
        b,
        cfg.degree,
        cfg.damping,
        c,
        args.keep_frac,
        args.window_tokens,
        args.exclude_sink_tokens,
        args.attend_sink_tokens,
    )
    layer.pushes += 1
    layer.window_fill = window_fill
    layer.num_keys = num_keys
    out, _ = ops.sparse_decode(q, k, v, block_index, num_selected, validate=False)
    state.record_decode_selection(layer_idx, num_selected, num_keys, b)
    return out


def _decode_registered(
    q, k, v, layer_idx: int, state: SketchWalkState, layer: LayerStepState
) -> torch.Tensor:
    """A decode step ranked by the config's registered decode scorer (scorers.py), selected by
    the decode knobs' rule (docs/spec.md section 6 step 4), attended by sparse_decode."""
    cfg = state.config
    num_keys = k.shape[2]
    scores = scorers.decode_scores(cfg.decode_scorer, q, k, v, layer_idx, state)
    per_group = scorers.decode_scorer_per_kv_group(cfg.decode_scorer)
    want = (q.shape[0], k.shape[1] if per_group else 1, -(-num_keys // cfg.block_size))
    if tuple(scores.shape) != want or scores.dtype != torch.float32:
        raise ValueError(
            f"decode_scorer {cfg.decode_scorer!r} must return float32 {want}"
            f"{' (one row per KV group)' if per_group else ''}, got "
            f"{scores.dtype} {tuple(scores.shape)}"
        )
    args = SelectionArgs.decode(cfg, num_keys, layer_idx)
    if not per_group:
        block_index, num_selected = ops.select_blocks(
            scores, *args.select_blocks_args(1, num_keys, cfg.block_size)
        )
    else:  # per KV group: keys4's rule (the same sink / window / quantile per group)
        seq_lens = torch.full((q.shape[0],), num_keys, dtype=torch.int32, device=q.device)
        block_index, num_selected = ops.select_blocks_keys4(
            scores.contiguous(), seq_lens, *args.keys4_fracs(), False
        )
    layer.num_keys = num_keys
    out, _ = ops.sparse_decode(q, k, v, block_index, num_selected, validate=False)
    state.record_decode_selection(layer_idx, num_selected, num_keys, cfg.block_size)
    return out


def keys4_layer_state(k: torch.Tensor, cache_capacity: int | None = None) -> LayerKeys4State:
    """The keys4 decode state after a prefill: every key of k encoded (docs/spec.md section 7), with
    room for at least cache_capacity keys (a fixed-capacity cache's size) when given."""
    batch, num_kv_heads, num_keys, head_dim = k.shape
    capacity = max(keys4_capacity(num_keys), cache_capacity or 0)
    codes = k.new_zeros((batch, num_kv_heads, capacity, head_dim // 2), dtype=torch.uint8)
    scales = k.new_zeros((batch, num_kv_heads, capacity), dtype=torch.float32)
    ops.quantize_keys4_(codes, scales, k, None, False)
    seq_lens = torch.full((batch,), num_keys, dtype=torch.int32, device=k.device)
    return LayerKeys4State(codes=codes, scales=scales, seq_lens=seq_lens, num_keys=num_keys)


def select_keys4_blocks(q, layer: LayerKeys4State, seq_lens: torch.Tensor, cfg, layer_idx: int):
    """docs/spec.md section 7 steps 1-3 on the layer's 4-bit keys: (block_index, num_selected) with
    index_heads = num_kv_heads, at layer layer_idx's keep fraction (cfg.layer_keep_scale).
    Lengths come from seq_lens on the device (no sync)."""
    # The CUDA scorer runs on tensor cores in 16-bit: a float32 query is scored in bfloat16.
    q_score = q.to(torch.bfloat16) if q.is_cuda and q.dtype == torch.float32 else q
    mass = ops.score_blocks_keys4(q_score, layer.codes, layer.scales, seq_lens, None, False)
    fracs = SelectionArgs.decode(cfg, layer_idx=layer_idx).keys4_fracs()
    return ops.select_blocks_keys4(mass, seq_lens, *fracs, False)


def _decode_keys4(
    q, k, v, layer_idx: int, state: SketchWalkState, layer: LayerKeys4State
) -> torch.Tensor:
    """docs/spec.md section 7: append the new key's 4-bit row, block mass of the current query per
    KV group, sink / window / quantile rule per group, sparse attention (index_heads = Hkv)."""
    cfg = state.config
    num_keys = k.shape[2]
    layer.ensure_capacity(num_keys)
    layer.seq_lens.fill_(num_keys)  # a scalar fill: no host-device sync
    ops.quantize_keys4_(layer.codes, layer.scales, k[:, :, -1:], layer.seq_lens, False)
    block_index, num_selected = select_keys4_blocks(q, layer, layer.seq_lens, cfg, layer_idx)
    layer.num_keys = num_keys
    out, _ = ops.sparse_decode(q, k, v, block_index, num_selected, validate=False)
    state.record_decode_selection(layer_idx, num_selected, num_keys, cfg.block_size)
    return out


def _decode_keys4_fixed(
    q, k, v, seq_lens: torch.Tensor, layer_idx: int, state: SketchWalkState
) -> torch.Tensor:
    """One keys4 decode step over a fixed-capacity cache (sketchwalk_attention's seq_lens): the
    new key is read at seq_lens - 1 on the device; no host value depends on the length."""
    cfg = state.config
    batch, num_kv_heads, capacity, head_dim = k.shape
    if q.shape[2] != 1:
        raise ValueError(
            f"sketchwalk_attention: seq_lens is for one decode step (1 query), "
            f"got {q.shape[2]} queries"
        )
    if seq_lens.dtype != torch.int32 or seq_lens.shape != (batch,) or seq_lens.device != q.device:
        raise ValueError(
            f"sketchwalk_attention: seq_lens must be int32 [batch={batch}] on "
            f"{q.device}, got {seq_lens.dtype} {tuple(seq_lens.shape)} on {seq_lens.device}"
        )
    if cfg.is_dense_layer(layer_idx):
        visible = torch.arange(capacity, device=q.device)[None, :] < seq_lens[:, None]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=visible[:, None, None, :], enable_gqa=q.shape[1] != num_kv_heads
        )
    layer = state.layers.get(layer_idx)
    if not isinstance(layer, LayerKeys4State) or layer.capacity < capacity:
        raise ValueError(
            f"sketchwalk_attention: layer {layer_idx} has no keys4 state for a {capacity}-slot "
            f"cache: "
            "a fixed-capacity decode needs decode_scorer='keys4' and a prefill made with "
            f"state.cache_capacity >= {capacity}"
        )
    slot = (seq_lens.long() - 1).view(batch, 1, 1, 1).expand(batch, num_kv_heads, 1, head_dim)
    ops.quantize_keys4_(layer.codes, layer.scales, k.gather(2, slot), seq_lens, False)
    block_index, num_selected = select_keys4_blocks(q, layer, seq_lens, cfg, layer_idx)
    out, _ = ops.sparse_decode(q, k, v, block_index, num_selected, None, False, seq_lens)
    state.record_decode_rows(layer_idx, num_selected, seq_lens, cfg.block_size)
    return out
