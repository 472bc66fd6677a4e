"""select_decode_blocks_ (one decode step's selection in one call) against the reference."""

import pytest
import torch

import reference as R
from conftest import device_params, poison
from tolerances import assert_close64
from utils import (
    B,  # the one block-size constant
    ops,
)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize(
    "tokens,batch,hq,hkv,d,window,pushes,degree",
    [
        (200, 2, 4, 2, 128, 32, 32, 3),  # the new key extends block 3
        (256, 1, 6, 2, 64, 8, 13, 3),  # the new key opens block 4; ring buffer wrapped
        (63, 3, 2, 1, 64, 5, 5, 0),  # no walk
        (1000, 1, 8, 8, 128, 32, 100, 2),
    ],
)
def test_select_decode_blocks(device, tokens, batch, hq, hkv, d, window, pushes, degree):
    sw = pytest.importorskip("sketchwalk")
    from test_pipeline import _margin

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cfg = sw.SketchWalkConfig(degree=degree)
    m = cfg.effective_sketch_dim(d)
    signs, coords = ops().sketch_transform(d, m, seed=0, device=device)
    c = R.logit_scale(m, d)
    num_keys = tokens + 1
    n_prev, n = R.ceil_div(tokens, B), R.ceil_div(num_keys, B)
    cap = n + 2
    w, sink = cfg.decode_window_tokens(num_keys), cfg.decode_sink_tokens(num_keys)
    keep_frac = cfg.decode_fracs()[0]
    for _ in range(8):  # inputs whose reference selection is not within float32 noise of a tie
        k = (torch.randn(batch, hkv, num_keys, d, device=device) * 2).to(dtype)
        q_new = (torch.randn(batch, hq, 1, d, device=device) * 2).to(dtype)
        win = torch.randn(batch, hq, window, m, device=device) * 0.3
        a_prev = torch.rand(batch, n_prev, n_prev, device=device) + 0.05
        a_prev /= a_prev.sum(-1, keepdim=True)
        slot = pushes % window
        win_ref = win.clone()
        win_ref[:, :, slot] = R.hadamard_sketch(q_new, signs, coords, 1)[:, :, 0].float()
        ref = R.layer_decode_step(q_new, k, k, win_ref, a_prev, cfg, signs, coords)
        if _margin(ref["walk"].float(), 1, num_keys, keep_frac, w, sink) > 2e-7:
            break

    kb = poison(torch.empty(batch, hkv, cap, m, device=device))
    kb[:, :, :n_prev] = ops().hadamard_sketch(k[:, :, :tokens], signs, coords, B)
    logits = poison(torch.empty(batch, hq, window, cap, device=device))
    ops().update_window_logits_(logits, win, kb, n_prev, -1, c)
    trans = poison(torch.empty(batch, cap, cap, device=device))
    trans[:, :n_prev, :n_prev] = a_prev
    bi, ns = ops().select_decode_blocks_(
        q_new,
        k,
        kb,
        win,
        logits,
        trans,
        signs,
        coords,
        window,
        pushes,
        B,
        cfg.degree,
        cfg.damping,
        c,
        keep_frac,
        w,
        sink,
        max(w, sink),
    )

    kept = R.block_index_to_mask(bi, ns, n)[:, 0, 0]
    assert torch.equal(kept, ref["keep"][:, 0]), "selected blocks differ from the reference"
    assert_close64(
        kb[:, :, :n],
        R.hadamard_sketch(k, signs, coords, B),
        scale_atol=10,
        msg="key block sketches",
    )
    assert_close64(win, win_ref, scale_atol=10, msg="query window")
    assert_close64(
        logits[..., :n],
        R.window_logits(win_ref, kb[:, :, :n], c),
        scale_atol=10,
        msg="window logits",
    )
    assert_close64(trans[:, :n, :n], ref["transition"], scale_atol=10, msg="block matrix")
