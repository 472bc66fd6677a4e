"""SelectionArgs (python/sketchwalk/plan.py): the one place knobs become selection arguments.
Each phase reads its own knobs (a decode step the decode_* ones), with the token counts of
docs/spec.md sections 4, 6 and 7."""

import math

import pytest


def test_selection_args_per_phase():
    sw = pytest.importorskip("sketchwalk")
    from sketchwalk.plan import SelectionArgs

    cfg = sw.SketchWalkConfig()  # defaults: a narrow prefill split, the authors' decode split
    n = 8192
    pre = SelectionArgs.prefill(cfg, n)
    w = max(1, math.floor(cfg.window_frac * n))
    assert (pre.keep_frac, pre.window_tokens, pre.attend_sink_tokens) == (cfg.kblocks_frac, w, w)
    assert pre.exclude_sink_tokens == max(1, math.floor(cfg.sink_frac * n))
    assert pre.dense_last_q_blocks == cfg.dense_last_q_blocks
    dec = SelectionArgs.decode(cfg, n)
    assert dec.keys4_fracs() == (
        cfg.decode_kblocks_frac,
        cfg.decode_window_frac,
        cfg.decode_sink_frac,
    )
    assert dec.keys4_fracs() != (cfg.kblocks_frac, cfg.window_frac, cfg.sink_frac)
    wd = max(1, math.floor(cfg.decode_window_frac * n))
    sd = max(1, math.floor(cfg.decode_sink_frac * n))
    assert dec.select_blocks_args(1, n, 64) == (
        1,
        n,
        64,
        cfg.decode_kblocks_frac,
        wd,
        sd,
        max(wd, sd),
        0,
    )
    # One split for both phases (the paper preset): decode resolves to the prefill knobs.
    paper = sw.SketchWalkConfig.paper()
    assert SelectionArgs.decode(paper).keys4_fracs() == (
        paper.kblocks_frac,
        paper.window_frac,
        paper.sink_frac,
    )
