"""Both CUDA prefill kernels, sm80 (mma.sync) and sm90 (TMA + wgmma), against the float64
reference on one device: SKETCHWALK_PREFILL_ARCH picks the kernel (csrc/cuda/sparse_prefill.cu).
The sm90 cases run only on a compute-capability-9 GPU."""

import pytest
import torch

import reference as R
from test_sparse_prefill import check_prefill
from utils import (
    B,  # the one block-size constant
    ops,
    random_keep,
    random_qkv,
)

pytestmark = pytest.mark.gpu


def _is_hopper():
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] == 9


ARCHS = [
    "sm80",
    pytest.param("sm90", marks=pytest.mark.skipif(not _is_hopper(), reason="needs sm_90")),
]


@pytest.fixture(params=ARCHS)
def arch(request, monkeypatch):
    monkeypatch.setenv("SKETCHWALK_PREFILL_ARCH", request.param)
    return request.param


@pytest.mark.parametrize("tokens", [1, 63, 64, 65, 127, 129, 200, 1000])
@pytest.mark.parametrize("hq,hkv", [(2, 1), (8, 2), (4, 4)])  # (4, 4): group 1, sm80 only
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_prefill_arch_random_index(arch, tokens, hq, hkv, head_dim, dtype):
    q, k, v = random_qkv(2, hq, hkv, tokens, tokens, head_dim, dtype, "cuda")
    if arch == "sm90" and (hq // hkv) % 2:
        idx, cnt = R.mask_to_block_index(random_keep(2, 1, tokens, tokens, B, "cuda"))
        with pytest.raises(RuntimeError, match="sparse_prefill"):
            ops().sparse_prefill(q, k, v, idx, cnt)
        return
    for g in sorted({1, hkv}):  # both index layouts: shared, one row per KV head
        keep = random_keep(2, g, tokens, tokens, B, "cuda")
        idx, cnt = R.mask_to_block_index(keep)
        check_prefill(q, k, v, idx, cnt, msg=f"{arch} index_heads={g}")


@pytest.mark.parametrize("tokens", [65, 1000, 4097])
def test_prefill_arch_all_blocks_odd_and_even_counts(arch, tokens):
    # Every causal block: rows hold 1, 2, 3, ... blocks (odd tails repeat a masked block on
    # sm90), the diagonal block always among them.
    q, k, v = random_qkv(1, 4, 2, tokens, tokens, 128, torch.bfloat16, "cuda")
    n = R.ceil_div(tokens, B)
    keep = torch.ones(1, 1, n, n, dtype=torch.bool, device="cuda").tril()
    idx, cnt = R.mask_to_block_index(keep)
    check_prefill(q, k, v, idx, cnt, msg=f"{arch} all causal blocks")


@pytest.mark.parametrize("tq,tk", [(1, 1000), (37, 100), (100, 130), (65, 1000)])
def test_prefill_arch_queries_at_end(arch, tq, tk):
    q, k, v = random_qkv(1, 4, 2, tq, tk, 64, torch.float16, "cuda")
    for g in [1, 2]:
        keep = random_keep(1, g, tq, tk, B, "cuda", p=0.5)
        idx, cnt = R.mask_to_block_index(keep)
        check_prefill(q, k, v, idx, cnt, msg=f"{arch} tq={tq} tk={tk} g={g}")


def test_prefill_arch_strided_scale_narrow_index(arch):
    tokens = 700
    q, k, v = random_qkv(2, 8, 2, tokens, tokens, 128, torch.bfloat16, "cuda")
    # token-major storage: [B, T, H, D] viewed as [B, H, T, D]
    q, k, v = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q, k, v))
    keep = random_keep(2, 2, tokens, tokens, B, "cuda", p=0.3)
    idx, cnt = R.mask_to_block_index(keep, max_selected=int(keep.sum(-1).max()) + 1)
    check_prefill(q, k, v, idx, cnt, softmax_scale=0.2, msg=f"{arch} strided")


def test_prefill_arch_empty_rows_and_determinism(arch):
    q, k, v = random_qkv(1, 4, 1, 500, 500, 128, torch.bfloat16, "cuda")
    keep = random_keep(1, 1, 500, 500, B, "cuda")
    keep[0, 0, 3] = False
    idx, cnt = R.mask_to_block_index(keep)
    o1, l1 = check_prefill(q, k, v, idx, cnt, msg=f"{arch} empty row")
    o2, l2 = ops().sparse_prefill(q, k, v, idx, cnt)
    assert torch.equal(o1, o2) and torch.equal(l1, l2)
    assert (o1[:, :, 3 * B : 4 * B] == 0).all() and torch.isneginf(l1[:, :, 3 * B : 4 * B]).all()


def test_prefill_arch_poisoned_output_fully_written(arch):
    # The kernel allocates out itself; a NaN-filled caching allocator block reused as out must
    # be overwritten everywhere (rows past the last query of a partial block too).
    tokens = 193
    q, k, v = random_qkv(1, 2, 1, tokens, tokens, 64, torch.float16, "cuda")
    junk = torch.full((1, 2, tokens, 64), float("nan"), dtype=torch.float16, device="cuda")
    del junk
    keep = random_keep(1, 1, tokens, tokens, B, "cuda", p=0.6, empty_rows=False)
    idx, cnt = R.mask_to_block_index(keep)
    out, lse = check_prefill(q, k, v, idx, cnt, msg=f"{arch} poisoned")
    assert torch.isfinite(out).all() and not torch.isnan(lse).any()
