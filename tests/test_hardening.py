"""Bad input that once crashed, hung or returned silent garbage (issue 9's classes): each case
must now raise an error naming its argument. Cases that crashed the process run in a
subprocess, so a regression fails one test instead of killing the suite."""

import math
import subprocess
import sys
import textwrap

import pytest
import torch

import reference as R
from conftest import device_params
from utils import assert_raises_naming, ops

INT32_MAX = 2**31 - 1


def run_isolated(code: str) -> subprocess.CompletedProcess:
    """Runs `code` (after importing torch, sketchwalk and the test helpers) in a fresh
    interpreter; returns the finished process (a crash shows as a negative return code)."""
    prelude = "import torch, sketchwalk\nfrom sketchwalk import ops\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_isolated_error(code: str, *names: str):
    """`code` raises a RuntimeError/ValueError naming one of `names`; the process survives."""
    body = textwrap.dedent(code).strip().replace("\n", "\n    ")
    proc = run_isolated(f"""
try:
    {body}
except (RuntimeError, ValueError) as err:
    print("ERROR:", err)
else:
    print("NO ERROR")
""")
    assert proc.returncode == 0, f"process died ({proc.returncode}): {proc.stderr[-2000:]}"
    out = proc.stdout
    assert "ERROR:" in out and any(f"'{n}'" in out for n in names), out + proc.stderr[-2000:]


# ---------------------------------------------------------------------------------------
# Crashes and hangs, in a subprocess


@pytest.mark.parametrize("arg", ["block_size", "num_keys"])
def test_select_blocks_huge_sizes_raise(arg):
    big = 2**32
    args = dict(num_queries=64, num_keys=64, block_size=64)
    args[arg] = big
    assert_isolated_error(
        f"""
scores = torch.rand(1, 1, 1)
ops.select_blocks(scores, {args["num_queries"]}, {args["num_keys"]}, {args["block_size"]}, 0.1, 8,
1, 8, 0)
""",
        arg,
        "num_queries",
        "scores",
    )


def test_select_blocks_num_keys_2_pow_31_raises():
    assert_isolated_error(
        """
ops.select_blocks(torch.rand(1, 1, 1), 1, 2**31, 2**31, 0.1, 8, 1, 8, 0)
""",
        "block_size",
        "num_keys",
    )


def test_hadamard_sketch_cpu_checks_coords_even_unvalidated():
    assert_isolated_error(
        """
x = torch.randn(1, 1, 10, 64)
signs, coords = ops.sketch_transform(64, 32)
coords = coords.clone(); coords[0] = 10**12
ops.hadamard_sketch(x, signs, coords, 64, validate=False)
""",
        "coords",
    )


def test_hadamard_sketch_huge_block_size_raises():
    assert_isolated_error(
        """
x = torch.randn(1, 1, 10, 64)
signs, coords = ops.sketch_transform(64, 32)
ops.hadamard_sketch(x, signs, coords, 2**63 - 1)
""",
        "block_size",
    )


@pytest.mark.parametrize("bad", [10**9, -3])
def test_select_decode_blocks_checks_coords(bad):
    assert_isolated_error(
        f"""
q = torch.randn(1, 2, 1, 64); k = torch.randn(1, 1, 70, 64)
signs, coords = ops.sketch_transform(64, 32)
coords = coords.clone(); coords[3] = {bad}
ops.select_decode_blocks_(q, k, torch.zeros(1, 1, 16, 32), torch.zeros(1, 2, 8, 32),
                          torch.zeros(1, 2, 8, 16), torch.zeros(1, 16, 16), signs, coords,
                          4, 4, 64, 3, 0.25, 0.1, 0.125, 3, 1, 3)
""",
        "coords",
    )


def test_walk_blocks_huge_degree_raises_at_once():
    assert_raises_naming(
        lambda: ops().walk_blocks(torch.rand(1, 1, 4), torch.rand(1, 4, 4), None, 2**40, 0.25),
        "degree",
    )


# ---------------------------------------------------------------------------------------
# Silent results: NaN / inf scales, bad signs and coords, devices, fakes


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_scales_raise(device, value):
    o = ops()
    qs = torch.randn(1, 4, 3, 32, device=device)
    ks = torch.randn(1, 2, 5, 32, device=device)
    assert_raises_naming(lambda: o.score_blocks(qs, ks, value), "logit_scale")
    assert_raises_naming(
        lambda: o.update_window_logits_(
            torch.zeros(1, 4, 8, 7, device=device),
            torch.randn(1, 4, 8, 32, device=device),
            torch.randn(1, 2, 6, 32, device=device),
            5,
            3,
            value,
        ),
        "logit_scale",
    )
    _assert_softmax_scale_refused(o, device, value)


def _assert_softmax_scale_refused(o, device, value):
    """sparse_decode, sparse_prefill and score_blocks_keys4 refuse `value` as softmax_scale,
    naming it; returns the prefill inputs (valid but for the scale)."""
    dt = torch.bfloat16 if device == "cuda" else torch.float32
    q = torch.randn(1, 4, 1, 64, device=device, dtype=dt)
    k = torch.randn(1, 2, 100, 64, device=device, dtype=dt)
    idx, cnt = R.mask_to_block_index(torch.ones(1, 1, 2, dtype=torch.bool, device=device))
    assert_raises_naming(lambda: o.sparse_decode(q, k, k, idx, cnt, value), "softmax_scale")
    qp = torch.randn(1, 4, 100, 64, device=device, dtype=dt)
    pidx, pcnt = R.mask_to_block_index(torch.ones(1, 2, 2, dtype=torch.bool, device=device).tril())
    assert_raises_naming(lambda: o.sparse_prefill(qp, k, k, pidx, pcnt, value), "softmax_scale")
    codes = torch.zeros(1, 2, 128, 32, dtype=torch.uint8, device=device)
    scales = torch.ones(1, 2, 128, device=device)
    assert_raises_naming(
        lambda: o.score_blocks_keys4(q, codes, scales, None, value), "softmax_scale"
    )
    return qp, k, pidx, pcnt


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("value", [0.0, -0.125])
def test_non_positive_softmax_scale_raises(device, value):
    # The kernels subtract the max of the unscaled scores: right only for a positive scale
    # (a scale of 0 gave NaN row sums on CUDA, a negative one overflowing P).
    o = ops()
    qp, k, pidx, pcnt = _assert_softmax_scale_refused(o, device, value)
    assert o.sparse_prefill(qp, k, k, pidx, pcnt, 1e-3)[0].isfinite().all()  # small > 0 is fine


@pytest.mark.parametrize("device", device_params())
def test_signs_and_duplicate_coords_raise(device):
    o = ops()
    x = torch.randn(1, 1, 10, 64, device=device)
    signs, coords = o.sketch_transform(64, 32, device=device)
    bad_signs = signs.clone()
    bad_signs[5] = 0.5
    assert_raises_naming(lambda: o.hadamard_sketch(x, bad_signs, coords, 64), "signs")
    dup = coords.clone()
    dup[1] = dup[0]
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, dup, 64), "coords")


def test_meta_tensor_beside_cpu_tensors_raises():
    o = ops()
    qs = torch.randn(1, 4, 3, 32)
    ks = torch.randn(1, 2, 5, 32, device="meta")
    assert_raises_naming(lambda: o.score_blocks(qs, ks, 0.1), "k_sketch")
    x = torch.randn(1, 1, 10, 64, device="meta")
    signs, coords = o.sketch_transform(64, 32)
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, coords, 64), "signs", "coords")
    a = torch.rand(1, 5, 5)
    assert_raises_naming(
        lambda: o.update_block_matrix_(a, torch.rand(1, 5, device="meta"), 300, 64), "r"
    )


def test_fakes_check_ranks():
    o = ops()
    signs, coords = o.sketch_transform(64, 32, device="meta")
    x = torch.empty(1, 10, 64, device="meta")  # rank 3
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, coords, 64), "x")
    assert_raises_naming(
        lambda: o.score_blocks(
            torch.empty(4, 3, 32, device="meta"), torch.empty(1, 2, 5, 32, device="meta"), 0.1
        ),
        "q_sketch",
    )


def test_cpu_index_out_of_range_is_checked_without_validate():
    o = ops()
    q = torch.randn(1, 2, 1, 64)
    k = torch.randn(1, 1, 100, 64)
    idx = torch.tensor([[[[0, 50]]]], dtype=torch.int32)  # block 50 of a 2-block cache
    cnt = torch.tensor([[[2]]], dtype=torch.int32)
    assert_raises_naming(lambda: o.sparse_decode(q, k, k, idx, cnt, None, False), "block_index")


# ---------------------------------------------------------------------------------------
# Composite ops and the Python layer name their own arguments


def test_select_decode_blocks_names_its_own_arguments():
    o = ops()
    signs, coords = o.sketch_transform(64, 32)
    q = torch.randn(1, 2, 1, 64)
    k = torch.randn(2, 1, 70, 64)  # wrong batch
    with pytest.raises(RuntimeError, match=r"select_decode_blocks_: argument 'k'"):
        o.select_decode_blocks_(
            q,
            k,
            torch.zeros(1, 1, 16, 32),
            torch.zeros(1, 2, 8, 32),
            torch.zeros(1, 2, 8, 16),
            torch.zeros(1, 16, 16),
            signs,
            coords,
            4,
            4,
            64,
            3,
            0.25,
            0.1,
            0.125,
            3,
            1,
            3,
        )
    k = torch.randn(1, 1, 70, 64)
    window = torch.zeros(1, 2, 8, 32)
    before = window.clone()
    with pytest.raises(RuntimeError, match=r"select_decode_blocks_: argument 'window_tokens'"):
        o.select_decode_blocks_(
            q,
            k,
            torch.zeros(1, 1, 16, 32),
            window,
            torch.zeros(1, 2, 8, 16),
            torch.zeros(1, 16, 16),
            signs,
            coords,
            4,
            4,
            64,
            3,
            0.25,
            0.1,
            0.125,
            0,
            1,
            3,
        )
    assert torch.equal(window, before), "a failed call updated the state"


def test_layer_names_its_arguments():
    import sketchwalk as sw

    q = torch.randn(1, 2, 64, 64)
    k = torch.randn(1, 1, 64, 64)
    state = sw.SketchWalkState()
    with pytest.raises(TypeError, match="'state'"):
        sw.sketchwalk_attention(q, k, k, 2, None)
    with pytest.raises(TypeError, match="'state'"):
        sw.sketchwalk_attention(q, k, k, 2, sw.SketchWalkConfig())
    with pytest.raises(TypeError, match="'layer_idx'"):
        sw.sketchwalk_attention(q, k, k, "2", state)
    with pytest.raises(TypeError, match="'layer_idx'"):
        sw.sketchwalk_attention(q, k, k, 2.0, state)
    for bad in (-1, 10**9):
        with pytest.raises(ValueError, match="'layer_idx'"):
            sw.sketchwalk_attention(q, k, k, bad, state)
    with pytest.raises(ValueError, match="'q'"):
        sw.sketchwalk_attention(q[0], k, k, 2, state)
    with pytest.raises(ValueError, match="'q'"):
        sw.sketchwalk_attention(q[:, :, :0], k[:, :, :0], k[:, :, :0], 2, state)
