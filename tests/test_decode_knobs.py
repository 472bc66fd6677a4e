"""The decode steps' own budget knobs (decode_kblocks_frac, decode_window_frac,
decode_sink_frac; None = the prefill knob): the config resolves and validates them, and both
decode scorers select with them, against the float64 reference given the literal numbers."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import B  # the one block-size constant

sw = pytest.importorskip("sketchwalk")

PREFILL = dict(kblocks_frac=0.5, window_frac=0.3, sink_frac=0.1)
DECODE = dict(kblocks_frac=0.1, window_frac=0.02, sink_frac=0.01)

NONE = dict(decode_kblocks_frac=None, decode_window_frac=None, decode_sink_frac=None)


def test_defaults_split_the_phases_and_the_paper_preset_does_not():
    # The project's default: the narrow prefill split at the authors' density, the authors'
    # split in decode (docs/spec.md section 9); the paper preset: the authors' knobs in both.
    cfg = sw.SketchWalkConfig()
    assert (cfg.kblocks_frac, cfg.window_frac, cfg.sink_frac) == (0.29, 0.005, 0.0025)
    assert cfg.decode_fracs() == (0.125, 0.05, 0.025)
    paper = sw.SketchWalkConfig.paper()
    assert (paper.kblocks_frac, paper.window_frac, paper.sink_frac) == (0.125, 0.05, 0.025)
    assert (paper.decode_kblocks_frac, paper.decode_window_frac, paper.decode_sink_frac) == (
        None,
    ) * 3
    assert paper.decode_fracs() == (0.125, 0.05, 0.025)
    assert sw.SketchWalkConfig.paper(kblocks_frac=0.06).decode_fracs()[0] == 0.06


def test_decode_knobs_none_follow_the_prefill_ones():
    cfg = sw.SketchWalkConfig(**PREFILL, **NONE)
    assert cfg.decode_fracs() == (0.5, 0.3, 0.1)
    assert cfg.decode_window_tokens(1000) == cfg.window_tokens(1000) == 300
    cfg = sw.SketchWalkConfig(
        **PREFILL, decode_kblocks_frac=0.1, decode_window_frac=0.02, decode_sink_frac=0.01
    )
    assert cfg.decode_fracs() == (0.1, 0.02, 0.01)
    assert (cfg.decode_window_tokens(1000), cfg.decode_sink_tokens(1000)) == (20, 10)
    assert (cfg.window_tokens(1000), cfg.sink_tokens(1000)) == (300, 100)  # prefill unchanged
    assert sw.SketchWalkConfig(decode_window_frac=0.0).decode_window_tokens(1000) == 1
    assert sw.SketchWalkConfig().decode_window_tokens(1000) == 50


@pytest.mark.parametrize("name", ["decode_kblocks_frac", "decode_window_frac", "decode_sink_frac"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_decode_knobs_out_of_range_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        sw.SketchWalkConfig(**{name: value})


def _layer(cfg, device, tokens=1000, hq=4, hkv=2, d=64):
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q = torch.randn(1, hq, tokens + 1, d, device=device).to(dtype)
    k = torch.randn(1, hkv, tokens + 1, d, device=device).to(dtype)
    v = torch.randn(1, hkv, tokens + 1, d, device=device).to(dtype)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :tokens], k[:, :, :tokens], v[:, :, :tokens], 0, state)
    out = sw.sketchwalk_attention(q[:, :, tokens:], k, v, 0, state)
    return q, k, v, out, state


def _density(keep, tk):
    """Kept fraction of the tk keys of one query row (the last block is partial)."""
    return float(((keep.sum(-1).double() - 1) * B + (tk - (R.ceil_div(tk, B) - 1) * B)).mean() / tk)


@pytest.mark.parametrize("device", device_params())
def test_keys4_decode_selects_with_the_decode_knobs(device):
    cfg = sw.SketchWalkConfig(
        dense_layers=0, **PREFILL, **{"decode_" + k: v for k, v in DECODE.items()}
    )
    q, k, v, out, state = _layer(cfg, device)
    tk = k.shape[2]
    ref = R.layer_decode_step_keys4(q[:, :, -1:].cpu(), k.cpu(), v.cpu(), DECODE)
    prefill_knobs = R.layer_decode_step_keys4(q[:, :, -1:].cpu(), k.cpu(), v.cpu(), PREFILL)
    assert state.last_density[0] == pytest.approx(_density(ref["keep"], tk), rel=0.05)
    assert _density(prefill_knobs["keep"], tk) > 2 * _density(ref["keep"], tk)  # tells them apart
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("device", device_params())
def test_walk_decode_selects_with_the_decode_knobs(device):
    cfg = sw.SketchWalkConfig.paper(
        dense_layers=0, **PREFILL, **{"decode_" + k: v for k, v in DECODE.items()}
    )
    _, k, _, _, state = _layer(cfg, device)
    tk = k.shape[2]
    # The walk's kept count per row: sink + window blocks + the top-k share of the rest. With
    # the decode knobs: 1 + 1 blocks and ~10% of 14 candidates; with the prefill ones ~60%.
    n = R.ceil_div(tk, B)
    w, s = max(1, int(0.02 * tk)), max(1, int(0.01 * tk))
    fixed = R.ceil_div(s, B) + R.ceil_div(max(w, s), B)
    kept = state.last_density[0] * tk / B
    assert fixed <= kept <= fixed + 0.1 * (n - fixed) + 2, (kept, fixed, n)
