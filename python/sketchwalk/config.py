"""Knobs of Sketch&Walk. The defaults are the project's (docs/spec.md sections 7 and 9): the keys4
decode scorer, and the prefill budget split narrow (window 0.5%, sink 0.25%, the rest to the
top-k, at the density of the authors' knobs), the decode steps keeping the authors' split. The
`paper` preset is the authors' code: their knobs for both phases and their decode walk."""

from __future__ import annotations

import dataclasses
import math

from . import scorers
from .limits import MAX_SAMPLED_ROWS

DECODE_SCORERS = scorers.BUILTIN_DECODE_SCORERS  # and those registered (scorers.py)
# The authors' budget knobs (docs/spec.md, "Shapes and defaults"), used by both of their phases.
PAPER_BUDGET = dict(kblocks_frac=0.125, window_frac=0.05, sink_frac=0.025)
# The decode knobs that make the decode steps use the prefill's split (the authors' one split).
ONE_SPLIT = {f"decode_{name}": None for name in PAPER_BUDGET}
PREFILL_SELECTIONS = ("layer", "kv_group")
WALK_MATMULS = ("auto", "fp32", "bf16x3")
# walk_matmul "auto" takes "bf16x3" on CUDA from this many key blocks a side (64K tokens) up:
# on an H100 (Llama-3.1-8B shapes, bench/results/prefill_walk_bf16x3_llama_h100_*91749a3.md)
# it was slower at 8K and 32K (its extra launches), about even at 64K, faster at 128K.
WALK_BF16X3_MIN_BLOCKS = 1024


@dataclasses.dataclass(frozen=True)
class SketchWalkConfig:
    """Frozen, validated Sketch&Walk configuration. Change knobs with ``dataclasses.replace``.

    The defaults keep about as much of the causal attention area as the authors' knobs: ~43%,
    ~36% and ~34% at 4K, 8K and 16K tokens in prefill (random scores), ~20% in decode; the
    paper's "20% density" needs smaller ``kblocks_frac``. Always read the density actually
    achieved from ``SketchWalkState.last_density``.
    """

    block_size: int = 64
    """Tokens per block on both axes. The attention kernels are built for 64."""
    sketch_dim: int = 128
    """Hadamard sketch width m, capped at n = next_pow2(head_dim)."""
    degree: int = 3
    """Walk iterations per layer (0 = the layer's own block scores, no walk)."""
    damping: float = 0.25
    """Walk damping beta: state = (1 - beta) * A + beta * state @ A."""
    kblocks_frac: float = 0.29
    """Fraction of the candidate blocks of each prefill row kept by the quantile rule (authors:
    0.125 with their wider window and sink; 0.29 keeps as much with the narrow ones)."""
    window_frac: float = 0.005
    """Prefill local window, as a fraction of the number of keys (tokens; authors: 0.05). The
    narrow split measured better at equal density on two models (docs/spec.md section 9)."""
    sink_frac: float = 0.0025
    """Prefill attention-sink prefix, as a fraction of the number of keys (tokens; authors:
    0.025)."""
    query_window: int = 32
    """Recent queries pooled for decode scoring (W)."""
    dense_layers: int = 2
    """The first layers stay dense."""
    dense_layer_ids: tuple[int, ...] = ()
    """Further layers kept dense, beside the first ``dense_layers`` (e.g. the ablations that
    locate which layers' sparsity costs quality: eval/decode_quality.py --layer-bands). A sparse
    layer after a dense one starts its walk afresh (docs/spec.md section 3: no W of the layer
    before). Read through ``is_dense_layer``."""
    dense_last_q_blocks: int = 4
    """The last query blocks of a prefill keep every causal block."""
    dense_spread_q_frac: float = 0.0
    """Fraction of each prefill's query blocks that keep every causal block, chosen per layer
    and per sequence as those whose queries are least like their block's mean (the query spread,
    sketchwalk.query_spread, docs/spec.md section 13): the blocks the pooled sketch ranks for a
    query none of their rows asks. 0 (default): none. A prefill chunk (section 10) keeps its own
    rule. The rows come from ops.query_spread_rows and the selection op keeps them (dense_rows).
    """
    dense_spread_in_budget: bool = True
    """The spread rows' extra blocks come out of the keep fraction of the same sequence's other
    rows (select_blocks' dense_rows_in_budget, docs/spec.md section 13), so kblocks_frac spends
    about the same blocks with or without them, on every model, while the others can pay (their
    keep fraction stops at 0: a small kblocks_frac or layer scale adds the rest). False: they
    add to it (the
    spread_eq / default_spread measurements of bench/RESULTS.md, which lowered kblocks_frac by
    hand)."""
    seed: int = 0
    """Seed of the Hadamard sign flips and coordinate draw (shared by all layers and heads)."""
    decode_scorer: str = "keys4"
    """How a decode step picks its key blocks. "keys4" (default, docs/spec.md section 7): the
    current
    query against a 4-bit copy of every cached key, block attention mass per KV group, the same
    sink / window / quantile rule; it kept 10 of 12 needles where "walk" kept 2-4. "walk": the
    authors' rule (docs/spec.md section 6: pooled window queries, sketches, the block matrix and
    the walk), one selection shared by all heads. Or a scorer registered with
    sketchwalk.scorers.register_decode_scorer: block scores of the step from its query and every
    key, selected by the decode knobs' rule (eval/'s exact-attention oracle plugs in this way)."""

    decode_kblocks_frac: float | None = PAPER_BUDGET["kblocks_frac"]
    """kblocks_frac of the decode steps; None: kblocks_frac (the authors use one set for both).
    The default keeps the authors' decode split, with which keys4 was measured (section 7)."""
    decode_window_frac: float | None = PAPER_BUDGET["window_frac"]
    """window_frac of the decode steps (fraction of the cached keys); None: window_frac."""
    decode_sink_frac: float | None = PAPER_BUDGET["sink_frac"]
    """sink_frac of the decode steps; None: sink_frac."""

    prefill_scorer: str = "sketch_walk"
    """How a prefill ranks key blocks: "sketch_walk" (docs/spec.md sections 1-3) or a scorer
    registered with sketchwalk.scorers.register_prefill_scorer (e.g. eval/'s oracle). Either
    of the last two feeds the same selection rule, with no walk, and needs a decode scorer other
    than "walk" (whose state is the sketch's); under prefill_selection "kv_group" it scores each
    KV group on its own (scorers.PrefillScorer)."""

    prefill_score_rows: int = 4
    """Query rows per 64-query block and head that prefill_scorer "sampled_rows" reads (1-64;
    on CUDA at most 128 / (query heads per KV head)). Its cost is about 2 * rows / 64 of a dense
    QK^T (docs/spec.md section 11)."""

    walk_matmul: str = "auto"
    """How the prefill walk's products (docs/spec.md section 3) are computed. "fp32": float32
    batched GEMMs (on CUDA cuBLAS's CUDA-core kernels: 1.2 of the 4.2 ms a 128K-token selection
    took on an H100). "bf16x3": both factors split into bfloat16 halves (hi + lo), three
    products hi.lo + lo.hi + hi.hi accumulated in float32 (on CUDA tensor-core GEMMs; on the CPU
    the same products in float32): within ~3 x 2^-16 of the exact walk entry by entry, two more
    N x N float32 buffers per selection row at the peak (2 GiB more at 1M tokens), and about ten
    more launches a step. "auto" (default): "bf16x3" on CUDA from WALK_BF16X3_MIN_BLOCKS key
    blocks (64K tokens) up, "fp32" below and on the CPU. Measured on an H100 (bench/RESULTS.md,
    issue 21): the selection's share of a Llama-3.1-8B layer at 128K 5.6% -> 4.8%, at 64K
    6.4% -> 6.2%; at 32K 7.6% -> 8.4% and at 8K 19% -> 66% (so not there)."""

    prefill_selection: str = "layer"
    """Whose heads a prefill selection serves. "layer" (default, the authors' rule, docs/spec.md
    sections 2-4): one block matrix, walk and block index per layer, the head sum over every
    query head. "kv_group" (docs/spec.md section 8): one per KV group, the head sum over the
    group's query heads (index_heads = num_kv_heads); costs num_kv_heads times the block matrix
    and walk memory (4 * num_kv_heads * (T / 64)^2 bytes each: 128 MB at 128K tokens and 8 KV
    heads) and needs decode_scorer "keys4" (the walk decode keeps one layer-wide matrix). Not yet
    measured on real models against "layer"."""

    prefill_scorer_layers: tuple[int, ...] = ()
    """The layers prefill_scorer ranks when it is not "sketch_walk"; empty (default): every
    sparse layer. The other sparse layers rank by the sketch + walk, so a costlier scorer can be
    spent where the ranking loses most (e.g. the last layers) while the walk carries through the
    rest; a sketch layer after a scorer layer starts its walk afresh (docs/spec.md section 3).
    Read through ``prefill_scorer_at``."""

    layer_keep_scale: tuple[float, ...] = ()
    """Per-layer multiplier of the keep fractions (kblocks_frac in a prefill or chunk, the decode
    steps' kblocks_frac in decode): layer i keeps min(1, frac * layer_keep_scale[i]) of its
    candidates; layers past the tuple scale 1, dense layers ignore it. Spends the budget where
    it pays at an equal average: sketchwalk.layer_budget.keep_scale_by_band builds one whose mean
    over the sparse layers is 1 (issue 21: on Qwen2.5-Coder-1.5B the last band of layers loses
    most). Empty (default): every layer keeps the same fraction (the authors' rule)."""

    @classmethod
    def paper(cls, **overrides) -> "SketchWalkConfig":
        """The authors' behaviour (docs/spec.md sections 1-6): their knobs (one budget split for
        both phases), one selection per layer and their decode walk."""
        return cls(
            **{
                "decode_scorer": "walk",
                "prefill_selection": "layer",
                **PAPER_BUDGET,
                **ONE_SPLIT,
                **overrides,
            }
        )

    def __post_init__(self) -> None:
        if self.block_size != 64:
            raise ValueError(
                f"block_size: the attention kernels are built for 64, got {self.block_size}"
            )
        if self.sketch_dim < 1:
            raise ValueError(f"sketch_dim must be >= 1, got {self.sketch_dim}")
        if self.degree < 0:
            raise ValueError(f"degree must be >= 0, got {self.degree}")
        if not 0.0 <= self.damping <= 1.0:
            raise ValueError(f"damping must lie in [0, 1], got {self.damping}")
        for name in ("kblocks_frac", "window_frac", "sink_frac"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
            value = getattr(self, "decode_" + name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"decode_{name} must be None or lie in [0, 1], got {value}")
        # Resolved once: the decode steps read them every step of every layer.
        object.__setattr__(
            self,
            "_decode_fracs",
            tuple(
                getattr(self, name)
                if getattr(self, "decode_" + name) is None
                else getattr(self, "decode_" + name)
                for name in PAPER_BUDGET
            ),
        )
        if self.query_window < 1:
            raise ValueError(f"query_window must be >= 1, got {self.query_window}")
        if self.dense_layers < 0 or self.dense_last_q_blocks < 0:
            raise ValueError("dense_layers and dense_last_q_blocks must be >= 0")
        if not 0.0 <= self.dense_spread_q_frac <= 1.0:
            raise ValueError(
                f"dense_spread_q_frac: want a fraction in [0, 1], got {self.dense_spread_q_frac}"
            )
        ids = self.dense_layer_ids
        if not isinstance(ids, (tuple, list, set, frozenset)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids
        ):
            raise ValueError(f"dense_layer_ids must be a tuple of layer indices >= 0, got {ids!r}")
        # A sorted tuple (a list from JSON stays hashable and compares equal).
        object.__setattr__(self, "dense_layer_ids", tuple(sorted(set(ids))))
        ids = self.prefill_scorer_layers
        if not isinstance(ids, (tuple, list, set, frozenset)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids
        ):
            raise ValueError(
                f"prefill_scorer_layers must be a tuple of layer indices >= 0, got {ids!r}"
            )
        object.__setattr__(self, "prefill_scorer_layers", tuple(sorted(set(ids))))
        if self.prefill_scorer_layers and self.prefill_scorer == "sketch_walk":
            raise ValueError(
                "prefill_scorer_layers names the layers of a prefill_scorer other than "
                "'sketch_walk'; prefill_scorer is 'sketch_walk'"
            )
        scale = self.layer_keep_scale
        if not isinstance(scale, (tuple, list)) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0.0 <= x < math.inf
            for x in scale
        ):
            raise ValueError(
                f"layer_keep_scale must be a tuple of finite multipliers >= 0, got {scale!r}"
            )
        object.__setattr__(self, "layer_keep_scale", tuple(float(x) for x in scale))
        if self.decode_scorer not in scorers.decode_scorer_names():
            raise ValueError(
                f"decode_scorer must be one of {scorers.decode_scorer_names()}, got "
                f"{self.decode_scorer!r}"
            )
        if not 1 <= self.prefill_score_rows <= MAX_SAMPLED_ROWS:
            raise ValueError(
                f"prefill_score_rows must lie in [1, {MAX_SAMPLED_ROWS}], got "
                f"{self.prefill_score_rows}"
            )
        if self.prefill_scorer not in scorers.prefill_scorer_names():
            raise ValueError(
                f"prefill_scorer must be one of {scorers.prefill_scorer_names()}, got "
                f"{self.prefill_scorer!r}"
            )
        if self.prefill_scorer != "sketch_walk" and self.decode_scorer == "walk":
            raise ValueError(
                f"prefill_scorer {self.prefill_scorer!r} needs a decode_scorer other than "
                "'walk' (the walk decode state is built from the sketch)"
            )
        if self.walk_matmul not in WALK_MATMULS:
            raise ValueError(f"walk_matmul must be one of {WALK_MATMULS}, got {self.walk_matmul!r}")
        if self.prefill_selection not in PREFILL_SELECTIONS:
            raise ValueError(
                f"prefill_selection must be one of {PREFILL_SELECTIONS}, got "
                f"{self.prefill_selection!r}"
            )
        if self.prefill_selection == "kv_group" and self.decode_scorer != "keys4":
            raise ValueError(
                "prefill_selection 'kv_group' needs decode_scorer 'keys4' (the walk "
                "decode keeps one block matrix per layer)"
            )

    def is_dense_layer(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` runs dense attention (dense_layers, dense_layer_ids)."""
        return layer_idx < self.dense_layers or layer_idx in self.dense_layer_ids

    def prefill_scorer_at(self, layer_idx: int) -> str:
        """The prefill scorer of layer layer_idx: prefill_scorer in the layers of
        prefill_scorer_layers (every layer when it is empty), else "sketch_walk"."""
        ids = self.prefill_scorer_layers
        return self.prefill_scorer if not ids or layer_idx in ids else "sketch_walk"

    def layer_keep_frac(self, keep_frac: float, layer_idx: int | None) -> float:
        """A phase's keep fraction in layer layer_idx: min(1, keep_frac * layer_keep_scale[i])
        (keep_frac itself past the tuple, or for layer_idx None)."""
        scale = self.layer_keep_scale
        if layer_idx is None:
            return keep_frac
        if layer_idx < 0:
            raise ValueError(f"layer_idx must be >= 0, got {layer_idx}")
        if layer_idx >= len(scale):
            return keep_frac
        return min(1.0, keep_frac * scale[layer_idx])

    def window_tokens(self, num_keys: int) -> int:
        """w = max(1, floor(window_frac * num_keys))."""
        return _tokens(self.window_frac, num_keys)

    def sink_tokens(self, num_keys: int) -> int:
        """max(1, floor(sink_frac * num_keys))."""
        return _tokens(self.sink_frac, num_keys)

    def decode_fracs(self) -> tuple[float, float, float]:
        """(kblocks_frac, window_frac, sink_frac) of the decode steps: each decode_* knob, else its
        prefill value."""
        return self._decode_fracs

    def decode_window_tokens(self, num_keys: int) -> int:
        """The decode steps' w: window_tokens with decode_window_frac if set."""
        return _tokens(self._decode_fracs[1], num_keys)

    def decode_sink_tokens(self, num_keys: int) -> int:
        """The decode steps' sink: sink_tokens with decode_sink_frac if set."""
        return _tokens(self._decode_fracs[2], num_keys)

    def effective_sketch_dim(self, head_dim: int) -> int:
        """m actually used: sketch_dim capped at next_pow2(head_dim)."""
        return min(self.sketch_dim, 1 << (head_dim - 1).bit_length())


def _tokens(frac: float, num_keys: int) -> int:
    """A window or sink length in tokens: max(1, floor(frac * num_keys))."""
    return max(1, int(math.floor(frac * num_keys)))
