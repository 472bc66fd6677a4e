"""Fuzzing every selection-side op's integer and float arguments with hypothesis (CPU, and CUDA
where present): each case must either raise an error that names an argument
("sketchwalk.<op>: argument '...'") or return what the float64 reference returns. Each op's
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
    seq_lens = torch.tensor([min(max(v, -5), 2**31 - 1) for v in lens], dtype=torch.int32, device=DEVICE)
    q = torch.randn(2, 4, 1, 64, device=DEVICE, dtype=dt)
    scale = math.nan if nan_scale else None
    mass, _ = named_error(lambda: ops.score_blocks_keys4(q, codes, scales, seq_lens, scale))
    if mass is not None:
        ref = R.score_blocks_keys4(q.cpu(), R.unpack_keys4(codes.cpu()), scales.cpu(), seq_lens.tolist())
        torch.testing.assert_close(mass.cpu().double(), ref, atol=1e-4, rtol=1e-3)
        out, _ = named_error(lambda: ops.select_blocks_keys4(mass, seq_lens, keep, window, sink))
        if out is not None:
            _, idx, cnt = R.select_blocks_keys4(mass.cpu(), seq_lens.tolist(), keep, window, sink)
            assert torch.equal(out[1].cpu(), cnt) and torch.equal(out[0].cpu(), idx)
run()
""",
}


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz(name, device):
    pytest.importorskip("hypothesis")
    code = PRELUDE + textwrap.dedent(CASES[name])
    proc = subprocess.run([sys.executable, "-c", code, device], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (
        f"fuzz of {name} on {device} failed (return code {proc.returncode}):\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
