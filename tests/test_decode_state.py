"""In-place decode-state updates against the reference, on NaN-poisoned buffers."""

import pytest
import torch

import reference as R
from conftest import device_params, poison, strided_copy
from tolerances import assert_close64
from utils import ops

B = 64


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("num_tokens_before", [0, 1, 63, 64, 65, 127, 999])
def test_update_block_sketch(device, num_tokens_before):
    cap, m = 20, 32
    buf = torch.randn(2, 3, cap, m, device=device)
    j = num_tokens_before // B
    c = num_tokens_before % B
    poison(buf[:, :, j + 1 :])  # slots past j are never read nor written
    if c == 0:
        poison(buf[:, :, j])  # a new block overwrites whatever was there
    tok = torch.randn(2, 3, 1, m, device=device)
    before = buf.clone()
    expected = R.update_block_sketch(before, tok, num_tokens_before, B)
    ret = ops().update_block_sketch_(buf, tok, num_tokens_before, B)
    assert ret is None or ret is buf or ret.data_ptr() == buf.data_ptr()
    assert torch.isfinite(buf[:, :, j]).all()
    assert_close64(buf[:, :, j], expected[:, :, j], msg="slot j")
    others = [i for i in range(cap) if i != j]
    assert torch.equal(buf[:, :, others].isnan(), before[:, :, others].isnan())
    assert torch.equal(buf[:, :, others].nan_to_num(), before[:, :, others].nan_to_num()), \
        "slots other than j changed"


@pytest.mark.parametrize("device", device_params())
def test_update_block_sketch_running_mean_equals_block_mean(device):
    # Feeding token sketches one by one reproduces hadamard_sketch of the block means.
    d, m, tokens = 64, 64, 150
    signs, coords = ops().sketch_transform(d, m, seed=0, device=device)
    k = torch.randn(1, 2, tokens, d, device=device)
    tok = ops().hadamard_sketch(k, signs, coords, 1)
    buf = poison(torch.empty(1, 2, 4, m, device=device))
    for t in range(tokens):
        ops().update_block_sketch_(buf, tok[:, :, t : t + 1], t, B)
    exp = R.hadamard_sketch(k, signs, coords, B)
    assert_close64(buf[:, :, :3], exp, scale_atol=10)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("position", [0, 5, 31, 32, 1000])
def test_push_query_window(device, position):
    w, m = 32, 16
    win = torch.randn(2, 4, w, m, device=device)
    poison(win[:, :, position % w])
    qs = torch.randn(2, 4, 1, m, device=device)
    expected = R.push_query_window(win, qs, position)
    ops().push_query_window_(win, qs, position)
    assert torch.equal(win.double().nan_to_num(), expected.nan_to_num())
    assert torch.equal(win.isnan(), expected.isnan())


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("num_keys", [1, 2, 64, 65, 66, 128, 129, 700, 1000])
@pytest.mark.parametrize("as_view", [False, True])
def test_update_block_matrix(device, num_keys, as_view):
    n = R.ceil_div(num_keys, B)
    s = (num_keys - 1) % B
    cap = n + 3
    big = torch.rand(2, cap, cap, device=device) + 0.1
    big = big / big.sum(-1, keepdim=True)
    if s == 0:
        poison(big[:, n - 1, :])  # the new block's row and column hold garbage
        poison(big[:, :, n - 1])
    poison(big[:, n:, :])
    poison(big[:, :, n:])
    a = big[:, :n, :n] if as_view else big[:, :n, :n].contiguous()
    r = torch.rand(2, n, device=device)
    r = r / r.sum(-1, keepdim=True)
    expected = R.update_block_matrix(a, r, num_keys, B)
    before = big.clone()
    ops().update_block_matrix_(a, r, num_keys, B)
    assert torch.isfinite(a).all(), "garbage leaked into the block matrix"
    assert_close64(a, expected, scale_atol=10)
    torch.testing.assert_close(a.double().sum(-1), torch.ones(2, n, dtype=torch.float64,
                                                              device=device), atol=1e-5, rtol=0)
    if as_view:
        outside = torch.ones(cap, cap, dtype=torch.bool, device=device)
        outside[:n, :n] = False
        assert torch.equal(big[:, outside].nan_to_num(), before[:, outside].nan_to_num())
        assert torch.equal(big[:, outside].isnan(), before[:, outside].isnan())


@pytest.mark.parametrize("device", device_params())
def test_update_block_matrix_order(device):
    # Row c is normalized BEFORE the column blend (authors' order): distinguishable from
    # blending both first because row sums of a non-stochastic A differ from 1.
    num_keys = 64 * 2 + 10  # n = 3 blocks
    a = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]], device=device)
    r = torch.tensor([[0.2, 0.3, 0.5]], device=device)
    expected = R.update_block_matrix(a, r, num_keys, B)
    ops().update_block_matrix_(a, r, num_keys, B)
    assert_close64(a, expected)


# Cached window logits (the incremental form of docs/spec.md section 6 step 1).


def _touched(shape, num_blocks, slot, device):
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    if slot < 0:
        mask[..., :num_blocks] = True
    else:
        mask[:, :, slot, :num_blocks] = True
        mask[..., num_blocks - 1] = True
    return mask


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("num_blocks,window,hq,hkv,m,slot", [
    (1, 1, 1, 1, 32, 0),
    (63, 32, 4, 1, 128, 5),
    (65, 32, 6, 2, 100, 31),   # sketch_dim not a multiple of 32
    (130, 5, 2, 2, 1, 4),      # sketch_dim 1
    (700, 33, 8, 8, 256, 32),  # W > 32: two slot chunks in the column pass
    (64, 7, 2, 1, 30, 6),      # sketch_dim % 4 != 0: the scalar path on CUDA
    (97, 32, 4, 2, 200, 0),    # 16-byte path with a partial second chunk
    (65, 32, 4, 1, 128, -1),   # seeding: every row
    (2, 40, 3, 1, 64, -1),
])
@pytest.mark.parametrize("strided", [False, True])
def test_update_window_logits(device, num_blocks, window, hq, hkv, m, slot, strided):
    cap = num_blocks + 5
    logits = torch.randn(2, hq, window, cap, device=device)
    touched = _touched(logits.shape, num_blocks, slot, device)
    logits[touched] = float("nan")  # must be written
    poison(logits[..., num_blocks:])  # past the live blocks: never written
    qw = torch.randn(2, hq, window, m, device=device)
    kb = torch.randn(2, hkv, cap, m, device=device)
    poison(kb[:, :, num_blocks:])  # never read
    if strided:
        qw, kb = strided_copy(qw), strided_copy(kb)
    c = 0.11
    before = logits.clone()
    expected = R.update_window_logits(before, qw, kb, num_blocks, slot, c)
    ops().update_window_logits_(logits, qw, kb, num_blocks, slot, c)
    assert torch.isfinite(logits[touched]).all(), "an entry to refresh was not written"
    assert_close64(logits[touched], expected[touched], scale_atol=10)
    assert torch.equal(logits[~touched].isnan(), before[~touched].isnan())
    assert torch.equal(logits[~touched].nan_to_num(), before[~touched].nan_to_num()), \
        "entries outside the new row and the last column changed"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("num_blocks,window,window_fill,hq", [
    (1, 1, 1, 1),
    (63, 32, 32, 4),
    (65, 32, 7, 6),
    (130, 40, 40, 3),
    (1000, 32, 1, 32),
    (2049, 32, 32, 32),
])
@pytest.mark.parametrize("aligned", [False, True])
def test_window_block_scores(device, num_blocks, window, window_fill, hq, aligned):
    cap = R.ceil_div(num_blocks + 3, 16) * 16 if aligned else num_blocks + 3  # CUDA: float4 rows
    logits = torch.randn(2, hq, window, cap, device=device) * 3
    poison(logits[..., num_blocks:])  # never read
    poison(logits[:, :, window_fill:])
    expected = R.window_block_scores(logits, window_fill, num_blocks)
    r = ops().window_block_scores(logits, window_fill, num_blocks)
    assert r.shape == (2, num_blocks) and r.dtype == torch.float32 and r.device == logits.device
    assert_close64(r, expected, scale_atol=10)
    torch.testing.assert_close(r.double().sum(-1), torch.ones(2, dtype=torch.float64, device=device),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("window", [8, 32])
def test_window_logits_track_spec_scores_over_steps(device, window):
    # Seed after a prefill, then per step push the new query and refresh one row and one
    # column: r from the cache equals docs/spec.md's step 1 recomputed from scratch, across block
    # boundaries (tokens 128 and 192) and with the ring buffer wrapping.
    hq, hkv, d, m, c = 4, 2, 64, 64, 0.09
    tokens, steps = 120, 80
    signs, coords = ops().sketch_transform(d, m, seed=0, device=device)
    q = torch.randn(1, hq, tokens + steps, d, device=device) * 2
    k = torch.randn(1, hkv, tokens + steps, d, device=device) * 2
    cap = R.ceil_div(tokens + steps, B)
    kb = torch.zeros(1, hkv, cap, m, device=device)
    kb[:, :, : R.ceil_div(tokens, B)] = ops().hadamard_sketch(k[:, :, :tokens], signs, coords, B)
    win = ops().hadamard_sketch(q[:, :, tokens - window : tokens], signs, coords, 1).contiguous()
    logits = poison(torch.empty(1, hq, window, cap, device=device))
    ops().update_window_logits_(logits, win, kb, R.ceil_div(tokens, B), -1, c)
    pushes = window
    for t in range(tokens, tokens + steps):
        n = R.ceil_div(t + 1, B)
        ops().update_block_sketch_(kb, ops().hadamard_sketch(k[:, :, t : t + 1], signs, coords, 1), t, B)
        ops().push_query_window_(win, ops().hadamard_sketch(q[:, :, t : t + 1], signs, coords, 1), pushes)
        ops().update_window_logits_(logits, win, kb, n, pushes % window, c)
        pushes += 1
        r = ops().window_block_scores(logits, window, n)
        qs = R.hadamard_sketch(q[:, :, t + 1 - window : t + 1], signs, coords, 1)
        ks = R.hadamard_sketch(k[:, :, : t + 1], signs, coords, B)
        expected = R.score_blocks(qs, ks, c).mean(dim=1)
        assert_close64(r, expected, scale_atol=10, msg=f"token {t}")


# select_decode_blocks_: the whole selection half of a decode step (CUDA: the fused launch
# sequence of csrc/cuda/select_decode_blocks.cpp; CPU: the composition of decode_plan.cpp).


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens,batch,hq,hkv,d,window,pushes,degree", [
    (200, 2, 4, 2, 128, 32, 32, 3),   # the new key extends block 3
    (256, 1, 6, 2, 64, 8, 13, 3),     # the new key opens block 4; ring buffer wrapped
    (63, 3, 2, 1, 64, 5, 5, 0),       # no walk
    (1000, 1, 8, 8, 128, 32, 100, 2),
])
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
    w, sink = cfg.window_tokens(num_keys), cfg.sink_tokens(num_keys)
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
        if _margin(ref["walk"].float(), 1, num_keys, cfg.kblocks_frac, w, sink) > 2e-7:
            break

    kb = poison(torch.empty(batch, hkv, cap, m, device=device))
    kb[:, :, :n_prev] = ops().hadamard_sketch(k[:, :, :tokens], signs, coords, B)
    logits = poison(torch.empty(batch, hq, window, cap, device=device))
    ops().update_window_logits_(logits, win, kb, n_prev, -1, c)
    trans = poison(torch.empty(batch, cap, cap, device=device))
    trans[:, :n_prev, :n_prev] = a_prev
    bi, ns = ops().select_decode_blocks_(
        q_new, k, kb, win, logits, trans, signs, coords, window, pushes, B, cfg.degree,
        cfg.damping, c, cfg.kblocks_frac, w, sink, max(w, sink))

    kept = R.block_index_to_mask(bi, ns, n)[:, 0, 0]
    assert torch.equal(kept, ref["keep"][:, 0]), "selected blocks differ from the reference"
    assert_close64(kb[:, :, :n], R.hadamard_sketch(k, signs, coords, B), scale_atol=10,
                   msg="key block sketches")
    assert_close64(win, win_ref, scale_atol=10, msg="query window")
    assert_close64(logits[..., :n], R.window_logits(win_ref, kb[:, :, :n], c), scale_atol=10,
                   msg="window logits")
    assert_close64(trans[:, :n, :n], ref["transition"], scale_atol=10, msg="block matrix")
