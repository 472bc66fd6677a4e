"""score_blocks_sampled_rows (docs/spec.md section 11) against the float64 reference: the exact
causal softmax of a few sampled query rows per block, summed per key block and KV group."""

import pytest
import torch

import reference as R
from conftest import device_params, poison, strided_copy
from utils import B, assert_raises_naming, ops

SIZES = [(1, 1), (63, 63), (65, 65), (130, 1000), (1000, 1000), (64, 129)]  # (Tq, Tk)


def run(q, k, rows, softmax_scale=None):
    if q.is_cuda:  # the caching allocator hands the NaN block back to the op's output
        poison(torch.empty(1 << 22, device=q.device))
    return ops().score_blocks_sampled_rows(q, k, rows, softmax_scale)


def check(got, q, k, rows, softmax_scale=None):
    ref = R.score_blocks_sampled_rows(q.cpu(), k.cpu(), rows, softmax_scale)
    assert got.shape == ref.shape and got.dtype == torch.float32
    got = got.cpu().double()
    err = (got - ref).abs().max().item() if ref.numel() else 0.0
    assert err <= 2e-5 + 1e-4 * ref.abs().max().item(), f"max abs err {err}"
    # Each row is a mean of softmaxes over its causal keys: it sums to 1, 0 past the last row.
    tq, tk = q.shape[2], k.shape[2]
    for i in range(got.shape[2]):
        assert torch.allclose(got[:, :, i].sum(-1), torch.ones_like(got[:, :, i, 0]), atol=1e-4)
        last = tk - tq + (i * B + R.sampled_row_offsets(min(B, tq - i * B), rows)[-1])
        assert (got[:, :, i, last // B + 1 :] == 0).all(), "scores past the last row's key"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tq,tk", SIZES)
@pytest.mark.parametrize("hq,hkv,rows", [(1, 1, 4), (4, 1, 4), (6, 2, 4), (8, 2, 2), (4, 2, 1)])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sampled_rows_match_reference(device, tq, tk, hq, hkv, rows, head_dim, dtype):
    q = (torch.randn(2, hq, tq, head_dim, device=device) * 2).to(dtype)
    k = (torch.randn(2, hkv, tk, head_dim, device=device) * 2).to(dtype)
    check(run(q, k, rows), q, k, rows)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("rows", [3, 7, 64])
def test_sampled_rows_counts_and_scale(device, rows):
    # Odd row counts (offsets not powers of two), every row of a block, a given softmax scale.
    q = torch.randn(1, 2, 300, 64, device=device).to(torch.bfloat16)
    k = torch.randn(1, 1, 300, 64, device=device).to(torch.bfloat16)
    check(run(q, k, rows, 0.3), q, k, rows, 0.3)


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_many_rows_per_group(device):
    # 8 m16 tiles on CUDA: 16 heads x 8 rows = 128 rows of one KV group.
    q = torch.randn(1, 16, 200, 128, device=device).to(torch.bfloat16)
    k = torch.randn(1, 1, 450, 128, device=device).to(torch.bfloat16)
    check(run(q, k, 8), q, k, 8)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("blocks", [2, 4, 16, 128])
@pytest.mark.parametrize(
    "tq,tk,hq,hkv,rows",
    [(650, 700, 4, 2, 2), (1000, 1000, 1, 1, 1), (130, 1000, 8, 1, 4), (2000, 2100, 6, 2, 5)],
)
@pytest.mark.parametrize("head_dim", [64, 128])
def test_sampled_rows_several_query_blocks_per_cta(
    monkeypatch, device, blocks, tq, tk, hq, hkv, rows, head_dim
):
    # The CUDA scorer's CTA takes several consecutive query blocks (SKETCHWALK_SAMPLED_ROWS_BLOCKS
    # forces how many; capped to 128 rows and to the blocks there are): a partial last CTA (11
    # blocks by 4), blocks whose rows end before the CTA's last block's (masked in the shared
    # sweep), 15 rows a block (8 of them in 120 rows), every count of m16 tiles at both head dims
    # (head_dim 128 at 33-64 rows needs the shared-memory opt-in). The CPU path ignores the
    # variable. The sums run in a fixed order: a second call gives the same bits (selections are
    # reproducible).
    monkeypatch.setenv("SKETCHWALK_SAMPLED_ROWS_BLOCKS", str(blocks))
    q = torch.randn(1, hq, tq, head_dim, device=device).to(torch.bfloat16)
    k = torch.randn(1, hkv, tk, head_dim, device=device).to(torch.bfloat16)
    got = run(q, k, rows)
    check(got, q, k, rows)
    assert torch.equal(got, run(q, k, rows))


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_long_sequence(device):
    # 266 query blocks of one KV head: the launcher's own choice puts 2 in a CTA on a 132-SM GPU.
    q = torch.randn(1, 2, 17000, 64, device=device).to(torch.bfloat16)
    k = torch.randn(1, 1, 17000, 64, device=device).to(torch.bfloat16)
    check(run(q, k, 1), q, k, 1)


def test_sampled_rows_float32_on_cpu():
    q = torch.randn(2, 4, 100, 96, dtype=torch.float32)
    k = torch.randn(2, 2, 170, 96, dtype=torch.float32)
    check(ops().score_blocks_sampled_rows(q, k, 4), q, k, 4)


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_strided_views(device):
    q = strided_copy(torch.randn(2, 4, 130, 64, device=device).to(torch.bfloat16))
    k = strided_copy(torch.randn(2, 2, 200, 64, device=device).to(torch.bfloat16), pad=5)
    check(run(q, k, 4), q, k, 4)
    # A transposed [batch, tokens, heads, dim] layout, as models hold it.
    qt = torch.randn(2, 130, 4, 64, device=device).to(torch.bfloat16).transpose(1, 2)
    kt = torch.randn(2, 200, 2, 64, device=device).to(torch.bfloat16).transpose(1, 2)
    check(run(qt, kt, 4), qt, kt, 4)
    # One sequence of a packed ragged batch, as the serving path passes it: a [None] view of
    # tokens [70, 200) of [tokens, heads, dim] (its batch stride is never stepped).
    packed_q = torch.randn(300, 4, 64, device=device).to(torch.bfloat16)
    packed_k = torch.randn(300, 2, 64, device=device).to(torch.bfloat16)
    qs, ks = packed_q[70:200].transpose(0, 1)[None], packed_k[:200].transpose(0, 1)[None]
    check(run(qs, ks, 2), qs, ks, 2)


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_find_a_planted_key(device):
    # Query block 3 shares a direction u; key 70 (key block 1) is u: its rows attend there.
    u = torch.randn(64, device=device)
    q = torch.randn(1, 2, 256, 64, device=device)
    q[0, :, 192:256] += 3 * u
    k = torch.randn(1, 1, 256, 64, device=device)
    k[0, 0, 70] = 3 * u
    got = run(q.to(torch.bfloat16), k.to(torch.bfloat16), 4)
    assert got[0, 0, 3].argmax().item() == 1 and got[0, 0, 3, 1].item() > 0.9


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_nan_query_propagates(device):
    q = torch.randn(1, 2, 128, 64, device=device).to(torch.bfloat16)
    k = torch.randn(1, 1, 128, 64, device=device).to(torch.bfloat16)
    q[0, 1, 64 + R.sampled_row_offsets(64, 4)[2]] = float("nan")
    got = run(q, k, 4).cpu()
    assert torch.isnan(got[0, 0, 1]).all() and not torch.isnan(got[0, 0, 0]).any()


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_empty_inputs(device):
    q = torch.randn(2, 4, 0, 64, device=device).to(torch.bfloat16)
    k = torch.randn(2, 2, 100, 64, device=device).to(torch.bfloat16)
    assert run(q, k, 4).shape == (2, 2, 0, 2)


@pytest.mark.parametrize("device", device_params())
def test_sampled_rows_errors_name_the_argument(device):
    o = ops()
    q = torch.randn(1, 4, 100, 64, device=device).to(torch.bfloat16)
    k = torch.randn(1, 2, 100, 64, device=device).to(torch.bfloat16)
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q[0], k, 4), "q")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k.half(), 4), "k")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k[:, :, :50], 4), "q")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k[..., :32], 4), "k")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q[:, :3], k, 4), "k")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k, 0), "rows")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k, 65), "rows")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k, 4, -1.0), "softmax_scale")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k.transpose(2, 3), 4), "k")
    assert_raises_naming(lambda: o.score_blocks_sampled_rows(q[:, :0], k, 4), "q")
    if device == "cuda":
        assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k.cpu(), 4), "k")
        assert_raises_naming(lambda: o.score_blocks_sampled_rows(q.float(), k.float(), 4), "q")
        q96 = torch.randn(1, 4, 100, 96, device=device).to(torch.bfloat16)
        k96 = torch.randn(1, 2, 100, 96, device=device).to(torch.bfloat16)
        assert_raises_naming(lambda: o.score_blocks_sampled_rows(q96, k96, 4), "q")
        # A scale that rounds to 0 (or overflows) in the kernel's float32 math.
        assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k, 4, 1e-46), "softmax_scale")
        assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k, 4, 1e39), "softmax_scale")
        # 4 query heads per KV head x 33 rows = 132 rows, over the 128 of a CUDA block.
        assert_raises_naming(lambda: o.score_blocks_sampled_rows(q, k[:, :1], 33), "rows")


def test_sampled_rows_fake_shapes():
    q = torch.empty(2, 12, 130, 128, device="meta", dtype=torch.bfloat16)
    k = torch.empty(2, 2, 1000, 128, device="meta", dtype=torch.bfloat16)
    assert ops().score_blocks_sampled_rows(q, k, 4).shape == (2, 2, 3, 16)
