"""config.walk_matmul "bf16x3": the prefill walk (docs/spec.md section 3) from three bfloat16
products per step, against the float64 walk of tests/reference.py, at odd sizes (N = 1, 63, 65,
700 blocks), with and without the previous layer's W, on the CPU (the same products in float32)
and on CUDA (tensor-core GEMMs); its memory; and a prefill layer that runs it."""

import pytest
import torch

import reference as R
from conftest import device_params
from memory_utils import peak_allocated

sw = pytest.importorskip("sketchwalk")


def row_stochastic(rows, n, device, gen):
    a = torch.rand(rows, n, n, generator=gen).to(device) ** 4  # peaked rows, as block scores are
    return a / a.sum(-1, keepdim=True)


def max_relative_error(got, want):
    return ((got.cpu().double() - want).abs() / want.clamp_min(1e-30)).max().item()


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("n", [1, 63, 65, 700])
@pytest.mark.parametrize("degree", [1, 3])
@pytest.mark.parametrize("carried", [False, True])
def test_bf16x3_walk_matches_the_float64_walk(device, n, degree, carried):
    gen = torch.Generator().manual_seed(n * 10 + degree)
    a = row_stochastic(2, n, device, gen)
    init = row_stochastic(2, n, device, gen) if carried else None
    cfg = sw.SketchWalkConfig(degree=degree, walk_matmul="bf16x3")
    want = R.walk_blocks(
        a.cpu(), a.cpu(), None if init is None else init.cpu(), degree, cfg.damping
    )
    got = sw.attention.walk_from(a, None if init is None else init.clone(), cfg)
    assert got.dtype == torch.float32 and got.shape == a.shape and got.device == a.device
    # Within ~3 x 2^-16 (4.6e-5) of the exact walk entry by entry (measured ~2e-6 on the CPU).
    # Dropping one cross product would be ~6e-4 off, a walk of bfloat16 factors ~1e-3.
    assert max_relative_error(got, want) < 1e-4
    if n > 1:  # the float32 walk is another computation (its own rounding, ~1e-7)
        fp32 = sw.attention.walk_from(
            a, None if init is None else init.clone(), sw.SketchWalkConfig(degree=degree)
        )
        assert not torch.equal(got, fp32)


def test_bf16x3_walk_degree_0_is_a_copy_of_the_scores():
    a = row_stochastic(1, 10, "cpu", torch.Generator().manual_seed(0))
    cfg = sw.SketchWalkConfig(degree=0, walk_matmul="bf16x3")
    got = sw.attention.walk_from(a, None, cfg)
    assert torch.equal(got, a) and got.data_ptr() != a.data_ptr()


def test_walk_matmul_is_checked():
    with pytest.raises(ValueError, match="walk_matmul must be one of"):
        sw.SketchWalkConfig(walk_matmul="tf32")


def test_bf16x3_walk_memory():
    """Beside A and W(l-1) (made inside the measured call): A's halves, a step's input halves,
    its output and one product: five N x N float32 buffers' worth at the peak on CUDA, W(l-1)
    let go once split. On the CPU each product also makes float32 copies of its two bfloat16
    factors (CUDA's GEMMs read bfloat16): seven. Holding W(l-1) through the walk would be eight."""
    n = 512
    n2 = n * n * 4
    gen = torch.Generator().manual_seed(1)
    base = row_stochastic(1, n, "cpu", gen)
    w_prev = row_stochastic(1, n, "cpu", gen)
    state = sw.SketchWalkState(sw.SketchWalkConfig(walk_matmul="bf16x3"))

    def run():  # A and W(l-1) made inside the measured call, so their bytes count too
        a = base.clone()
        state.carry_walk(0, w_prev.clone())
        return sw.attention._carried_walk_blocks(a, state, 1)

    walk, peak = peak_allocated(run)
    want = R.walk_blocks(base, base, w_prev, 3, 0.25)
    assert max_relative_error(walk, want) < 1e-4
    assert peak <= 7 * n2 + n2 // 8, f"the bf16x3 walk peaked at {peak / n2:.2f} N x N buffers"


@pytest.mark.parametrize("device", device_params())
def test_layer_with_bf16x3_walk(device):
    # One prefill layer at 2,000 tokens (32 blocks): the walk is the float32 walk's to ~1e-4,
    # so the selection keeps the same blocks but for candidates within that of a row's
    # threshold (the kept fraction moves by a few blocks at most).
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, h, 2000, 64, generator=gen).to(device, dtype) for h in (4, 2, 2))
    walks, density = {}, {}
    for matmul in ("fp32", "bf16x3"):
        state = sw.SketchWalkState(sw.SketchWalkConfig(dense_layers=0, walk_matmul=matmul))
        out = sw.sketchwalk_attention(q, k, v, 0, state)
        assert out.shape == q.shape and torch.isfinite(out).all()
        density[matmul] = state.last_density[0]
        walks[matmul] = state._carried_walk.clone()
    assert not torch.equal(walks["bf16x3"], walks["fp32"])  # two different paths ran
    torch.testing.assert_close(walks["bf16x3"], walks["fp32"], rtol=1e-4, atol=1e-9)
    assert density["fp32"] < 1.0 and abs(density["bf16x3"] - density["fp32"]) < 0.01


def test_auto_takes_bf16x3_on_cuda_from_the_measured_size_only():
    """walk_matmul "auto" (the default): "bf16x3" on CUDA from WALK_BF16X3_MIN_BLOCKS key blocks
    up, "fp32" below it and on the CPU; the explicit choices are kept as given."""
    from sketchwalk.config import WALK_BF16X3_MIN_BLOCKS as at

    assert sw.SketchWalkConfig().walk_matmul == "auto"
    pick = sw.attention.walk_matmul_for
    assert [pick("auto", n, True) for n in (1, at - 1, at, 4 * at)] == [
        "fp32",
        "fp32",
        "bf16x3",
        "bf16x3",
    ]
    assert pick("auto", 4 * at, False) == "fp32"
    assert pick("fp32", 4 * at, True) == "fp32" and pick("bf16x3", 1, False) == "bf16x3"


@pytest.mark.parametrize("device", device_params())
def test_auto_walk_is_the_fp32_walk_below_its_threshold(device):
    """Below the threshold (and on the CPU at any size) "auto" is the float32 walk bit for bit."""
    gen = torch.Generator().manual_seed(5)
    a = row_stochastic(1, 700, device, gen)
    got = sw.attention.walk_from(a, None, sw.SketchWalkConfig())
    want = sw.attention.walk_from(a, None, sw.SketchWalkConfig(walk_matmul="fp32"))
    assert torch.equal(got, want)


def test_ragged_rows_walk_with_their_own_sequences_product(monkeypatch):
    """A ragged step pads its block matrices to the longest sequence; under "auto" each row still
    walks with the product its own length picks (attention.walk_from_rows), so a short sequence
    batched with a long one walks as it does alone. The threshold is moved to 10 blocks and made
    to hold on the CPU (the choice is host-side, the same on every device): 300 and 65 tokens
    walk in float32, 1000 tokens (16 blocks) in bf16x3. Each ragged row is within float32
    rounding (padding changes the summation order: 3e-7 relative) of its lone walk with the same
    product, and farther from the other product's (~1e-6: the comparison can fail)."""
    from test_ragged_layer import packed, qkv

    def pick(walk_matmul, num_blocks, is_cuda):
        if walk_matmul != "auto":
            return walk_matmul
        return "bf16x3" if num_blocks >= 10 else "fp32"

    monkeypatch.setattr(sw.attention, "walk_matmul_for", pick)
    lens = [300, 65, 1000]
    qs, ks, vs = qkv(lens)
    plan = sw.StepPlan(sw.SketchWalkConfig(), lens, lens)
    ragged = [sw.SketchWalkState(plan.config) for _ in lens]
    got = sw.sketchwalk_attention_varlen(*[packed(xs) for xs in (qs, ks, vs)], 2, ragged, plan)
    walks = plan.carried_walk[1]

    def lone_walk(b, walk_matmul):
        state = sw.SketchWalkState(sw.SketchWalkConfig(walk_matmul=walk_matmul))
        out = sw.sketchwalk_attention(qs[b], ks[b], vs[b], 2, state)
        nb = -(-lens[b] // 64)
        walk = state.carried_walk(3, nb, 1)[0]
        err = ((walks[b, :nb, :nb] - walk).abs() / walk).max().item()
        return out, err

    want = []
    for b, expected in enumerate(("fp32", "fp32", "bf16x3")):
        out, same = lone_walk(b, expected)
        _, other = lone_walk(b, "bf16x3" if expected == "fp32" else "fp32")
        assert same <= 3e-7 < other, f"sequence {b}: {same:.2e} vs {other:.2e}"
        want.append(out)
    torch.testing.assert_close(got, packed(want), atol=1e-5, rtol=1e-5)


def test_mixed_rows_walk_against_float64_and_free_the_carried_walk(monkeypatch):
    """walk_from_rows with rows of both products and a carried W(l-1): each row within its
    product's error of the float64 walk (float32: 1e-6, bf16x3: 1e-4, and the bf16x3 rows
    farther than 1e-6: the products really differ), and W(l-1) let go once split into the
    groups' copies, each freed by its group's walk: at most 6.5 rows x N x N float32 buffers at
    the peak with A and W(l-1) made inside the measured call (CPU; holding the copies through the
    walks measured 8.25)."""
    monkeypatch.setattr(
        sw.attention,
        "walk_matmul_for",
        lambda matmul, blocks, is_cuda: "bf16x3" if blocks >= 10 else "fp32",
    )
    rows, n = 4, 256
    gen = torch.Generator().manual_seed(8)
    base = row_stochastic(rows, n, "cpu", gen)
    w_prev = row_stochastic(rows, n, "cpu", gen)
    blocks = [5, n, n, n]  # row 0 float32, rows 1-3 bf16x3
    cfg = sw.SketchWalkConfig()

    def run():
        return sw.attention.walk_from_rows(base.clone(), w_prev.clone(), cfg, blocks)

    walk, peak = peak_allocated(run)
    want = R.walk_blocks(base.double(), base.double(), w_prev.double(), 3, 0.25)
    errors = [max_relative_error(walk[r : r + 1], want[r : r + 1]) for r in range(rows)]
    assert errors[0] < 1e-6 and all(1e-6 < e < 1e-4 for e in errors[1:]), errors
    buffers = peak / (rows * n * n * 4)
    assert buffers <= 6.5 + 0.1, f"peaked at {buffers:.2f} rows x N x N buffers"
