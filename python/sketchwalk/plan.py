"""Where knobs become op arguments: one frozen SelectionArgs per phase of a step.

SketchWalkConfig holds fractions; the selection ops take token counts and fractions resolved for
one phase (prefill, or a decode step of the keys4 or walk scorer). SelectionArgs is the one
place that resolves them, so the layer (attention.py), the benchmarks and the evaluation pass the
same arguments for the same phase (two benchmarks once timed their decode rows with the prefill
knobs: issue 20). Built once per phase and length, never per layer: it holds plain numbers.
"""

from __future__ import annotations

import dataclasses

from .config import SketchWalkConfig


@dataclasses.dataclass(frozen=True)
class SelectionArgs:
    """The selection arguments of one phase at one key count (docs/spec.md sections 4, 6, 7).

    Fractions are the phase's (decode_* knobs in a decode step); token counts follow from them
    and ``num_keys`` as max(1, floor(frac * num_keys))."""

    keep_frac: float
    """Fraction of the candidate blocks kept by the quantile rule (kblocks_frac)."""
    window_frac: float
    sink_frac: float
    window_tokens: int
    """w: the local window, in tokens."""
    exclude_sink_tokens: int
    """Sink tokens removed from the candidate set."""
    attend_sink_tokens: int
    """Leading tokens every query attends: w in a prefill (the authors' rule, section 4),
    max(w, sink) in a decode step (section 6)."""
    dense_last_q_blocks: int
    """Trailing query blocks of a prefill that keep every causal block (0 in decode)."""

    @classmethod
    def prefill(cls, cfg: SketchWalkConfig, num_keys: int) -> "SelectionArgs":
        """A prefill (or chunk) over num_keys keys: the prefill knobs."""
        w = cfg.window_tokens(num_keys)
        return cls(cfg.kblocks_frac, cfg.window_frac, cfg.sink_frac, w, cfg.sink_tokens(num_keys), w,
                   cfg.dense_last_q_blocks)

    @classmethod
    def decode(cls, cfg: SketchWalkConfig, num_keys: int = 1) -> "SelectionArgs":
        """A decode step over num_keys keys: the decode knobs (decode_* else the prefill's). The
        keys4 ops take the fractions and read lengths on the device, so num_keys matters only
        for the token counts of the walk scorer."""
        keep, window, sink = cfg.decode_fracs()
        w, s = cfg.decode_window_tokens(num_keys), cfg.decode_sink_tokens(num_keys)
        return cls(keep, window, sink, w, s, max(w, s), 0)

    def select_blocks_args(self, num_queries: int, num_keys: int, block_size: int) -> tuple:
        """ops.select_blocks's arguments after the scores: (num_queries, num_keys, block_size,
        keep_frac, window_tokens, exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks)."""
        return (num_queries, num_keys, block_size, self.keep_frac, self.window_tokens,
                self.exclude_sink_tokens, self.attend_sink_tokens, self.dense_last_q_blocks)

    def keys4_fracs(self) -> tuple[float, float, float]:
        """ops.select_blocks_keys4's (keep_frac, window_frac, sink_frac)."""
        return self.keep_frac, self.window_frac, self.sink_frac
