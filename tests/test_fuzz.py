"""Fuzzing every selection-side op's integer and float arguments, and the block index the
attention ops read, with hypothesis (CPU, and CUDA where present): each case must either raise
an error that names an argument ("sketchwalk.<op>: argument '...'") or return what the float64
reference returns (for the block index: valid by docs/ops.md's rule if and only if accepted). Each
op's
cases run in their own interpreter, so a crash or hang fails that op's test, not the suite."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import device_params

HERE = os.path.dirname(os.path.abspath(__file__))

PRELUDE = f"""
import math, sys
sys.path.insert(0, {HERE!r})
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
import reference as R
import sketchwalk
from sketchwalk import ops
DEVICE = sys.argv[1]
SIZES = st.one_of(st.integers(-3, 300), st.sampled_from([0, 2**31 - 1, 2**31, 2**32, 2**62]))
FRACS = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0]))

def named_error(fn):
    try:
        return fn(), None
    except (RuntimeError, ValueError) as err:
        msg = str(err)
        assert "sketchwalk." in msg and "argument '" in msg, f"unclear error: {{msg[:300]}}"
        return None, msg

SETTINGS = settings(max_examples=int({os.environ.get("FUZZ_EXAMPLES", "60")}), deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))
"""

CASES = {
    "select_blocks": """
@SETTINGS
@given(nq=SIZES, nk=SIZES, b=SIZES, keep=FRACS, w=SIZES, sink=SIZES, dense=SIZES)
def run(nq, nk, b, keep, w, sink, dense):
    rows = R.ceil_div(max(nq, 1), max(b, 1)) if 0 < b < 10**6 and 0 < nq < 10**6 else 1
    cols = R.ceil_div(max(nk, 1), max(b, 1)) if 0 < b < 10**6 and 0 < nk < 10**6 else 1
    if rows * cols > 10**5:
        rows = cols = 1
    scores = torch.rand(2, rows, cols, device=DEVICE)
    out, _ = named_error(lambda: ops.select_blocks(scores, nq, nk, b, keep, w, sink, w, dense))
    if out is not None:
        _, idx, cnt = R.select_blocks(scores.cpu(), nq, nk, b, keep, w, sink, w, dense)
        assert torch.equal(out[1].cpu(), cnt) and torch.equal(out[0].cpu(), idx)
run()
""",
    "hadamard_sketch": """
@SETTINGS
@given(tokens=st.integers(0, 200), d=st.integers(1, 300), m=st.integers(-1, 300), b=SIZES,
       bad_coord=st.sampled_from([None, -1, 10**12]), bad_sign=st.booleans())
def run(tokens, d, m, b, bad_coord, bad_sign):
    x = torch.randn(1, 2, tokens, d, device=DEVICE)
    n = R.next_pow2(d)
    g = torch.Generator().manual_seed(d)
    signs = (torch.randint(0, 2, (n,), generator=g) * 2 - 1).float()
    coords = torch.randperm(n, generator=g)[:max(m, 0)]
    if bad_coord is not None and coords.numel():
        coords[0] = bad_coord
    if bad_sign:
        signs[0] = 0.5
    out, _ = named_error(lambda: ops.hadamard_sketch(x, signs.to(DEVICE), coords.to(DEVICE), b))
    if out is not None:
        ref = R.hadamard_sketch(x.cpu(), signs, coords, b)
        torch.testing.assert_close(out.cpu().double(), ref, atol=1e-4, rtol=1e-4)
run()
""",
    "walk_blocks": """
@SETTINGS
@given(n=st.integers(0, 20), degree=SIZES, damping=FRACS)
def run(n, degree, damping):
    a = torch.rand(1, n, n, device=DEVICE)
    a = a / a.sum(-1, keepdim=True).clamp_min(1e-6)  # row-stochastic, as the walk's inputs are
    out, _ = named_error(lambda: ops.walk_blocks(a, a, None, degree, damping))
    if out is not None:
        ref = R.walk_blocks(a.cpu().double(), a.cpu().double(), None, degree, damping)
        torch.testing.assert_close(out.cpu().double(), ref, atol=1e-4, rtol=1e-4)
run()
""",
    "keys4": """
@SETTINGS
@given(cap=st.integers(1, 300), lens=st.lists(SIZES, min_size=2, max_size=2), keep=FRACS,
       window=FRACS, sink=FRACS, nan_scale=st.booleans())
def run(cap, lens, keep, window, sink, nan_scale):
    dt = torch.bfloat16 if DEVICE == "cuda" else torch.float32
    k = torch.randn(2, 2, cap, 64, device=DEVICE, dtype=dt)
    codes = torch.zeros(2, 2, cap, 32, dtype=torch.uint8, device=DEVICE)
    scales = torch.zeros(2, 2, cap, device=DEVICE)
    ops.quantize_keys4_(codes, scales, k)
    seq_lens = torch.tensor([min(max(v, -5), 2**31 - 1) for v in lens], dtype=torch.int32,
    device=DEVICE)
    q = torch.randn(2, 4, 1, 64, device=DEVICE, dtype=dt)
    scale = math.nan if nan_scale else None
    mass, _ = named_error(lambda: ops.score_blocks_keys4(q, codes, scales, seq_lens, scale))
    if mass is not None:
        ref = R.score_blocks_keys4(q.cpu(), R.unpack_keys4(codes.cpu()), scales.cpu(),
        seq_lens.tolist())
        torch.testing.assert_close(mass.cpu().double(), ref, atol=1e-4, rtol=1e-3)
        out, _ = named_error(lambda: ops.select_blocks_keys4(mass, seq_lens, keep, window, sink))
        if out is not None:
            _, idx, cnt = R.select_blocks_keys4(mass.cpu(), seq_lens.tolist(), keep, window, sink)
            assert torch.equal(out[1].cpu(), cnt) and torch.equal(out[0].cpu(), idx)
run()
""",
    "sparse_attention": """
def index_valid(idx, cnt, tq, tks, b=64):
    # docs/ops.md, the block index: row (bb, g, i) lists cnt entries, strictly increasing, each
    # in [0, causal_limit(i)]; tks[bb] is that batch row's number of keys.
    w = idx.shape[-1]
    for bb in range(idx.shape[0]):
        for g in range(idx.shape[1]):
            for i in range(idx.shape[2]):
                n = int(cnt[bb, g, i])
                if n < 0 or n > w:
                    return False
                lim = (tks[bb] - tq + min((i + 1) * b, tq) - 1) // b
                row = [int(x) for x in idx[bb, g, i, :n]]
                if any(x < 0 or x > lim for x in row) or any(a >= c for a, c in zip(row, row[1:])):
                    return False
    return True

@SETTINGS
@given(decode=st.booleans(), tq=st.integers(1, 150), extra=st.integers(0, 70),
       per_group=st.booleans(), seed=st.integers(0, 10**6),
       corrupt=st.sampled_from(["none", "high", "negative", "duplicate", "swap", "count_high",
                                "count_negative", "huge", "padding", "seq_len_zero",
                                "seq_len_high"]),
       use_seq_lens=st.booleans(),
       layout=st.sampled_from(["contiguous", "token_major", "wide_pad8", "wide_pad4", "offset"]))
def run(decode, tq, extra, per_group, seed, corrupt, use_seq_lens, layout):
    g = torch.Generator().manual_seed(seed)
    dt = torch.bfloat16 if DEVICE == "cuda" else torch.float32
    tq = 1 if decode else tq
    tk = tq + extra
    hq, hkv, d = 4, 2, 64
    q = torch.randn(2, hq, tq, d, generator=g).to(dt)
    k = torch.randn(2, hkv, tk, d, generator=g).to(dt)
    v = torch.randn(2, hkv, tk, d, generator=g).to(dt)
    seq_lens = None
    tks = [tk, tk]
    if decode and use_seq_lens:
        tks = [int(torch.randint(1, tk + 1, (1,), generator=g)), tk]
        seq_lens = torch.tensor(tks, dtype=torch.int32)
    nq, nk = R.ceil_div(tq, 64), R.ceil_div(tk, 64)
    heads = hkv if per_group else 1
    idx = torch.full((2, heads, nq, nk), -1, dtype=torch.int32)
    cnt = torch.zeros(2, heads, nq, dtype=torch.int32)
    for bb in range(2):
        for hh in range(heads):
            for i in range(nq):
                lim = (tks[bb] - tq + min((i + 1) * 64, tq) - 1) // 64
                keep = [j for j in range(lim + 1) if j == lim or torch.rand(1, generator=g) < 0.5]
                idx[bb, hh, i, :len(keep)] = torch.tensor(keep, dtype=torch.int32)
                cnt[bb, hh, i] = len(keep)
    n0 = int(cnt[0, 0, 0])
    if corrupt == "high":
        idx[0, 0, 0, n0 - 1] = nk + 3
    elif corrupt == "negative":
        idx[0, 0, 0, 0] = -1
    elif corrupt == "duplicate" and n0 > 1:
        idx[0, 0, 0, 1] = idx[0, 0, 0, 0]
    elif corrupt == "swap" and n0 > 1:
        idx[0, 0, 0, :2] = idx[0, 0, 0, :2].flip(0).clone()
    elif corrupt == "count_high":
        cnt[0, 0, 0] = nk + 1
    elif corrupt == "count_negative":
        cnt[0, 0, 0] = -1
    elif corrupt == "huge":
        idx[0, 0, 0, 0] = 2**31 - 1
    elif corrupt == "padding" and n0 < nk:
        idx[0, 0, 0, n0] = 2**31 - 1  # padding is never read: still valid
    elif corrupt == "seq_len_zero" and seq_lens is not None:
        seq_lens[0] = 0
    elif corrupt == "seq_len_high" and seq_lens is not None:
        seq_lens[0] = tk + 1
    lens_ok = seq_lens is None or all(1 <= int(x) <= tk for x in seq_lens)
    valid = lens_ok and index_valid(idx, cnt, tq, tks)
    dev = lambda t: None if t is None else t.to(DEVICE)

    # The same values in another memory layout, made on the device (the last dim stays
    # contiguous). On CUDA the 16-bit kernels need 16-byte aligned rows (docs/ops.md): a token
    # stride of d + 4 elements or a start 2 bytes in must be refused by name.
    def lay(t):
        t = dev(t)
        if layout == "token_major":
            return t.transpose(1, 2).contiguous().transpose(1, 2)
        if layout in ("wide_pad8", "wide_pad4"):
            pad = 8 if layout == "wide_pad8" else 4
            wide = torch.zeros(*t.shape[:-1], t.shape[-1] + pad, dtype=t.dtype, device=t.device)
            wide[..., :t.shape[-1]] = t
            return wide[..., :t.shape[-1]]
        if layout == "offset":
            flat = torch.zeros(t.numel() + 1, dtype=t.dtype, device=t.device)
            view = flat[1:].view(t.shape)
            view.copy_(t)
            return view
        return t

    aligned = layout in ("contiguous", "token_major", "wide_pad8") or DEVICE != "cuda"
    valid = valid and aligned
    if decode:
        call = lambda: ops.sparse_decode(dev(q), lay(k), lay(v), dev(idx), dev(cnt),
                                         seq_lens=dev(seq_lens))
    else:
        call = lambda: ops.sparse_prefill(dev(q), lay(k), lay(v), dev(idx), dev(cnt))
    out, err = named_error(call)
    assert (out is not None) == valid, f"valid={valid} corrupt={corrupt} error={err}"
    if out is not None:
        for bb in range(2):
            L = tks[bb]
            ref, _ = R.sparse_attention(q[bb:bb + 1], k[bb:bb + 1, :, :L], v[bb:bb + 1, :, :L],
                                        idx[bb:bb + 1], cnt[bb:bb + 1])
            tol = 2e-2 if dt == torch.bfloat16 else 1e-4
            torch.testing.assert_close(out[0][bb:bb + 1].cpu().double(), ref, atol=tol, rtol=tol)
run()
""",
}


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz(name, device):
    pytest.importorskip("hypothesis")
    code = PRELUDE + textwrap.dedent(CASES[name])
    proc = subprocess.run(
        [sys.executable, "-c", code, device], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, (
        f"fuzz of {name} on {device} failed (return code {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
