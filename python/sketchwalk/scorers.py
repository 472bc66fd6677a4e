"""Block scorers: how a layer ranks its key blocks, chosen by name in the config.

SketchWalkConfig.prefill_scorer names how a prefill (or chunk) ranks blocks: "sketch_walk", the
package's (docs/spec.md sections 1-3: sketch, block scores, the walk carried between layers),
"sampled_rows" (section 11: the exact softmax of SketchWalkConfig.prefill_score_rows query rows
per block, ops.score_blocks_sampled_rows, no walk), or a scorer registered here.
SketchWalkConfig.decode_scorer names how a decode step ranks them: "keys4" (section 7) and
"walk" (section 6) are built in (each keeps its own state), or a registered scorer, which sees
the step's query and every key. A registered scorer returns block
scores and nothing else: the selection rule (sink, window, quantile, dense last rows; the
phase's knobs, plan.SelectionArgs) and the sparse attention stay the package's, so a scorer
plugs into every caller (sketchwalk_attention, the ragged layer, transformers) unchanged.
eval/ registers its exact-attention oracle this way.
"""

from __future__ import annotations

from typing import Callable

import torch

BUILTIN_PREFILL_SCORERS = ("sketch_walk", "sampled_rows")
BUILTIN_DECODE_SCORERS = ("keys4", "walk")

# fn(q [B, Hq, Tq, D], k [B, Hkv, Tk, D], layer_idx, state) -> scores float32 [B, ceil(Tq/64),
# ceil(Tk/64)], or [B * Hkv, ceil(Tq/64), ceil(Tk/64)] (sequence-major) under the config's
# prefill_selection "kv_group": higher ranks first; queries end at the last key (Tq < Tk for a
# chunk). `state` is the sequence's SketchWalkState (a scorer may carry what it needs between
# layers there).
PrefillScorer = Callable[[torch.Tensor, torch.Tensor, int, object], torch.Tensor]
# fn(q [B, Hq, 1, D], k [B, Hkv, Tk, D], layer_idx, state) -> scores float32 [B, 1, ceil(Tk/64)]
# (one selection for the layer, select_blocks' rule), or [B, Hkv, ceil(Tk/64)] when registered
# per_kv_group (one per KV group, select_blocks_keys4's rule with the decode knobs, as keys4's).
DecodeScorer = Callable[[torch.Tensor, torch.Tensor, int, object], torch.Tensor]

_PREFILL: dict[str, PrefillScorer] = {}
_DECODE: dict[str, DecodeScorer] = {}
_NEEDS_VALUES: set[str] = set()  # decode scorers called with the values too (v=...)
_PER_KV_GROUP: set[str] = set()  # decode scorers returning one row per KV group


def register_prefill_scorer(name: str, fn: PrefillScorer) -> None:
    """Make `name` a prefill_scorer (replacing a registered one of that name)."""
    if name in BUILTIN_PREFILL_SCORERS:
        raise ValueError(f"register_prefill_scorer: {name!r} is built in")
    _PREFILL[name] = fn


def register_decode_scorer(
    name: str, fn: DecodeScorer, *, needs_values: bool = False, per_kv_group: bool = False
) -> None:
    """Make `name` a decode_scorer (replacing a registered one of that name). With
    `needs_values`, fn is called with the step's values too: fn(q, k, layer_idx, state, v=v).
    With `per_kv_group`, fn returns [B, Hkv, ceil(Tk/64)], selected per KV group by keys4's
    rule; else [B, 1, ceil(Tk/64)], one selection for the layer by select_blocks' rule."""
    if name in BUILTIN_DECODE_SCORERS:
        raise ValueError(f"register_decode_scorer: {name!r} is built in")
    _DECODE[name] = fn
    for flag, names in ((needs_values, _NEEDS_VALUES), (per_kv_group, _PER_KV_GROUP)):
        if flag:
            names.add(name)
        else:
            names.discard(name)


def decode_scorer_per_kv_group(name: str) -> bool:
    """Whether the registered decode scorer `name` ranks blocks per KV group."""
    return name in _PER_KV_GROUP


def decode_scores(name: str, q, k, v, layer_idx: int, state) -> torch.Tensor:
    """The registered decode scorer `name`'s block scores of a step."""
    fn = decode_scorer(name)
    return fn(q, k, layer_idx, state, v=v) if name in _NEEDS_VALUES else fn(q, k, layer_idx, state)


def prefill_scorer_names() -> tuple[str, ...]:
    return BUILTIN_PREFILL_SCORERS + tuple(_PREFILL)


def decode_scorer_names() -> tuple[str, ...]:
    return BUILTIN_DECODE_SCORERS + tuple(_DECODE)


def sampled_rows_scores(q, k, layer_idx: int, state) -> torch.Tensor:
    """The "sampled_rows" prefill scorer (docs/spec.md section 11): the KV groups' scores of
    ops.score_blocks_sampled_rows, averaged into one layer-wide row per query block
    ([B, Nq, Nk]), or under prefill_selection "kv_group" one row per KV group ([B * Hkv, Nq, Nk],
    sequence-major: the selection's rows)."""
    from . import ops  # scorers.py is imported by config.py, before the ops are needed

    scores = ops.score_blocks_sampled_rows(q, k, state.config.prefill_score_rows)
    if state.config.prefill_selection == "kv_group":
        return scores.flatten(0, 1)
    return scores.mean(dim=1)


def prefill_scorer(name: str) -> PrefillScorer:
    """The prefill scorer `name`: "sampled_rows" or a registered one ("sketch_walk" is the
    attention's own path)."""
    if name == "sampled_rows":
        return sampled_rows_scores
    if name not in _PREFILL:
        raise ValueError(
            f"prefill_scorer {name!r} is not registered; registered: {tuple(_PREFILL)}"
        )
    return _PREFILL[name]


def decode_scorer(name: str) -> DecodeScorer:
    """The registered decode scorer `name` (not a built-in one)."""
    if name not in _DECODE:
        raise ValueError(f"decode_scorer {name!r} is not registered; registered: {tuple(_DECODE)}")
    return _DECODE[name]
