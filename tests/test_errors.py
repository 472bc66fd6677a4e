"""Bad input raises RuntimeError/ValueError whose message names the offending argument."""

import math

import pytest
import torch

import reference as R
from conftest import device_params
from keys4_utils import empty_cache
from utils import assert_raises_naming, ops


def _sketch_inputs(device, d=64, m=32, dtype=torch.float32):
    x = torch.randn(1, 2, 70, d, device=device, dtype=dtype)
    signs, coords = ops().sketch_transform(d, m, seed=0, device=device)
    return x, signs, coords


def _attn_inputs(device, tokens=200, hq=4, hkv=2, d=64, dtype=None):
    if dtype is None:  # a dtype every device supports, so each check below is the only fault
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    q = torch.randn(1, hq, tokens, d, device=device, dtype=dtype)
    k = torch.randn(1, hkv, tokens, d, device=device, dtype=dtype)
    v = torch.randn(1, hkv, tokens, d, device=device, dtype=dtype)
    n = R.ceil_div(tokens, 64)
    idx, cnt = R.mask_to_block_index(torch.ones(1, n, n, dtype=torch.bool, device=device).tril())
    return q, k, v, idx, cnt


def _not_last_contiguous(t):
    """Same values, last-dimension stride 2."""
    big = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    view = big[..., ::2]
    view.copy_(t)
    assert view.stride(-1) == 2
    return view


@pytest.mark.parametrize("device", device_params())
def test_hadamard_sketch_errors(device):
    o = ops()
    x, signs, coords = _sketch_inputs(device)
    assert_raises_naming(lambda: o.hadamard_sketch(x.to(torch.float64), signs, coords, 64), "x")
    assert_raises_naming(lambda: o.hadamard_sketch(x.long(), signs, coords, 64), "x")
    assert_raises_naming(lambda: o.hadamard_sketch(x[0], signs, coords, 64), "x")
    assert_raises_naming(lambda: o.hadamard_sketch(_not_last_contiguous(x), signs, coords, 64), "x")
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs[:32], coords, 64), "signs")
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs.double(), coords, 64), "signs")
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, coords.float(), 64), "coords")
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, coords.int(), 64), "coords")
    bad = coords.clone()
    bad[0] = 64  # out of [0, n)
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, bad, 64), "coords")
    many = torch.arange(65, device=device)
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, many, 64), "coords", "sketch_dim")
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs, coords, 0), "block_size")
    x300 = torch.randn(1, 1, 10, 300, device=device)
    s512 = torch.ones(512, device=device)
    assert_raises_naming(
        lambda: o.hadamard_sketch(x300, s512, coords, 64), "head_dim", "x", "signs"
    )


@pytest.mark.parametrize("device", device_params())
def test_score_and_walk_errors(device):
    o = ops()
    qs = torch.randn(1, 4, 3, 32, device=device)
    ks = torch.randn(1, 2, 5, 32, device=device)
    assert_raises_naming(lambda: o.score_blocks(qs.half(), ks, 0.1), "q_sketch")
    assert_raises_naming(lambda: o.score_blocks(qs, ks.double(), 0.1), "k_sketch")
    assert_raises_naming(lambda: o.score_blocks(qs[0], ks, 0.1), "q_sketch")
    assert_raises_naming(lambda: o.score_blocks(qs, ks[..., :16], 0.1), "k_sketch", "q_sketch")
    assert_raises_naming(
        lambda: o.score_blocks(qs[:, :3], ks, 0.1),
        "q_sketch",
        "k_sketch",
        "num_q_heads",
        "num_kv_heads",
    )
    assert_raises_naming(lambda: o.score_blocks(qs, torch.cat([ks, ks]), 0.1), "k_sketch")
    assert_raises_naming(lambda: o.score_blocks(_not_last_contiguous(qs), ks, 0.1), "q_sketch")
    base = torch.rand(1, 3, 5, device=device)
    t = torch.rand(1, 5, 5, device=device)
    assert_raises_naming(lambda: o.walk_blocks(base, t[:, :, :4], None, 3, 0.25), "transition")
    assert_raises_naming(
        lambda: o.walk_blocks(base[..., :4], t, None, 3, 0.25), "base", "transition"
    )
    assert_raises_naming(lambda: o.walk_blocks(base, t, base[:, :2], 3, 0.25), "init")
    assert_raises_naming(lambda: o.walk_blocks(base, t, None, -1, 0.25), "degree")


@pytest.mark.parametrize("device", device_params())
def test_select_blocks_errors(device):
    o = ops()
    s = torch.rand(1, 4, 4, device=device)
    assert_raises_naming(lambda: o.select_blocks(s[0], 256, 256, 64, 0.1, 10, 5, 10, 4), "scores")
    assert_raises_naming(
        lambda: o.select_blocks(s.double(), 256, 256, 64, 0.1, 10, 5, 10, 4), "scores"
    )
    assert_raises_naming(
        lambda: o.select_blocks(s, 300, 300, 64, 0.1, 10, 5, 10, 4), "scores", "num_queries"
    )
    assert_raises_naming(
        lambda: o.select_blocks(s, 256, 200, 64, 0.1, 10, 5, 10, 4),
        "scores",
        "num_keys",
        "num_queries",
    )
    assert_raises_naming(
        lambda: o.select_blocks(s, 256, 256, 64, 0.1, 0, 5, 10, 4), "window_tokens"
    )
    assert_raises_naming(lambda: o.select_blocks(s, 256, 256, 64, 1.5, 10, 5, 10, 4), "keep_frac")
    assert_raises_naming(
        lambda: o.select_blocks(_not_last_contiguous(s), 256, 256, 64, 0.1, 10, 5, 10, 4), "scores"
    )


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("op_name", ["sparse_prefill", "sparse_decode"])
def test_attention_errors(device, op_name):
    o = ops()
    fn = getattr(o, op_name)
    q, k, v, idx, cnt = _attn_inputs(device)
    if op_name == "sparse_decode":
        q, idx, cnt = (
            q[:, :, -1:].contiguous(),
            idx[:, :, -1:].contiguous(),
            cnt[:, :, -1:].contiguous(),
        )

    def call(**kw):
        return fn(
            kw.get("q", q),
            kw.get("k", k),
            kw.get("v", v),
            kw.get("idx", idx),
            kw.get("cnt", cnt),
            None,
            kw.get("validate", True),
        )

    kname = ["k", "k_cache"]
    vname = ["v", "v_cache"]
    assert_raises_naming(lambda: call(k=k.half()), *kname, "q")
    assert_raises_naming(
        lambda: call(v=v.float() if v.dtype != torch.float32 else v.half()), *vname, "q"
    )
    assert_raises_naming(lambda: call(q=q.double(), k=k.double(), v=v.double()), "q")
    assert_raises_naming(lambda: call(q=q[0]), "q")
    assert_raises_naming(lambda: call(k=k[:, :, :, :32]), *kname, "head_dim")
    assert_raises_naming(lambda: call(q=_not_last_contiguous(q)), "q")
    assert_raises_naming(lambda: call(k=_not_last_contiguous(k)), *kname)
    assert_raises_naming(lambda: call(idx=idx.long()), "block_index")
    assert_raises_naming(lambda: call(cnt=cnt.long()), "num_selected")
    assert_raises_naming(lambda: call(idx=idx[0]), "block_index")
    assert_raises_naming(
        lambda: call(
            idx=idx.expand(1, 3, -1, -1).contiguous(), cnt=cnt.expand(1, 3, -1).contiguous()
        ),
        "block_index",
        "index_heads",
    )
    q3 = torch.randn(1, 3, q.shape[2], 64, device=device, dtype=q.dtype)
    assert_raises_naming(lambda: call(q=q3), "q", *kname, "num_q_heads", "num_kv_heads")
    # head_dim 96 is not built for attention.
    q96, k96, v96 = (torch.randn(*t.shape[:3], 96, device=device, dtype=q.dtype) for t in (q, k, v))
    assert_raises_naming(lambda: call(q=q96, k=k96, v=v96), "head_dim")
    # Index contents, validate=True.
    bad = idx.clone()
    bad[0, 0, -1, 0] = 10_000
    assert_raises_naming(lambda: call(idx=bad), "block_index")
    bad = idx.clone()
    c = int(cnt[0, 0, -1])
    bad[0, 0, -1, :2] = torch.tensor([1, 0], dtype=torch.int32)
    assert c >= 2
    assert_raises_naming(lambda: call(idx=bad), "block_index")
    bad = idx.clone()
    bad[0, 0, -1, 0] = -5
    assert_raises_naming(lambda: call(idx=bad), "block_index")
    badc = cnt.clone()
    badc[0, 0, -1] = idx.shape[-1] + 1
    assert_raises_naming(lambda: call(cnt=badc), "num_selected")
    badc = cnt.clone()
    badc[0, 0, -1] = -1
    assert_raises_naming(lambda: call(cnt=badc), "num_selected")
    if op_name == "sparse_prefill":
        # Beyond the causal limit of row 0 (block 1 > causal_limit(0) = 0).
        bad = idx.clone()
        bad[0, 0, 0, 0] = 1
        assert_raises_naming(lambda: call(idx=bad), "block_index")
        # More queries than keys.
        # More queries than keys (index shaped for Tq = 200 query blocks x Tk = 100 key blocks).
        idx2, cnt2 = R.mask_to_block_index(torch.ones(1, 4, 2, dtype=torch.bool, device=device))
        assert_raises_naming(
            lambda: call(k=k[:, :, :100], v=v[:, :, :100], idx=idx2, cnt=cnt2),
            "q",
            *kname,
            "num_queries",
            "num_keys",
        )
    else:
        assert_raises_naming(
            lambda: call(q=torch.randn(1, 4, 2, 64, device=device, dtype=q.dtype)), "q"
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("op_name", ["sparse_prefill", "sparse_decode"])
def test_misaligned_attention_rows_error(op_name):
    """A view whose rows are not 16-byte aligned (a token stride of 68 elements, or a start 2
    bytes in) is refused by name on CUDA: the kernels copy 16-byte pieces of rows."""
    o = ops()
    q, k, v, idx, cnt = _attn_inputs("cuda")
    if op_name == "sparse_decode":
        q, idx, cnt = (
            q[:, :, -1:].contiguous(),
            idx[:, :, -1:].contiguous(),
            cnt[:, :, -1:].contiguous(),
        )
    call = getattr(o, op_name)
    kname, vname = ("k_cache", "v_cache") if op_name == "sparse_decode" else ("k", "v")
    wide = torch.randn(*k.shape[:-1], 68, device="cuda", dtype=k.dtype)
    assert_raises_naming(lambda: call(q, wide[..., :64], v, idx, cnt), kname)  # token stride 68
    shifted = torch.randn(v.numel() + 1, device="cuda", dtype=v.dtype)[1:].view(v.shape)
    assert_raises_naming(lambda: call(q, k, shifted, idx, cnt), vname)  # starts 2 bytes in
    out, _ = call(q, k, v, idx, cnt)  # the aligned inputs still run
    assert torch.isfinite(out).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_device_mismatch_errors():
    o = ops()
    q, k, v, idx, cnt = _attn_inputs("cuda")
    assert_raises_naming(lambda: o.sparse_prefill(q, k.cpu(), v, idx, cnt), "k")
    assert_raises_naming(lambda: o.sparse_prefill(q, k, v, idx.cpu(), cnt), "block_index")
    x, signs, coords = _sketch_inputs("cuda")
    assert_raises_naming(lambda: o.hadamard_sketch(x, signs.cpu(), coords, 64), "signs")
    qs = torch.randn(1, 4, 3, 32, device="cuda")
    assert_raises_naming(lambda: o.score_blocks(qs, qs.cpu(), 0.1), "k_sketch")
    a = torch.rand(1, 5, 5, device="cuda")
    assert_raises_naming(lambda: o.update_block_matrix_(a, torch.rand(1, 5), 300, 64), "r")
    lg = torch.zeros(1, 4, 8, 6, device="cuda")
    qw = torch.zeros(1, 4, 8, 32, device="cuda")
    kb = torch.zeros(1, 2, 6, 32, device="cuda")
    assert_raises_naming(
        lambda: o.update_window_logits_(lg, qw.cpu(), kb, 5, 0, 0.1), "query_window"
    )
    assert_raises_naming(lambda: o.update_window_logits_(lg, qw, kb.cpu(), 5, 0, 0.1), "key_blocks")
    assert_raises_naming(lambda: o.window_block_scores(lg.cpu().double(), 8, 5), "window_logits")


@pytest.mark.parametrize("device", device_params())
def test_decode_state_errors(device):
    o = ops()
    buf = torch.zeros(1, 2, 4, 32, device=device)
    tok = torch.zeros(1, 2, 1, 32, device=device)
    assert_raises_naming(
        lambda: o.update_block_sketch_(buf.half(), tok.half(), 0, 64), "block_sketch"
    )
    assert_raises_naming(lambda: o.update_block_sketch_(buf, tok[..., :16], 0, 64), "token_sketch")
    assert_raises_naming(
        lambda: o.update_block_sketch_(buf, tok, 4 * 64, 64), "num_tokens_before", "block_sketch"
    )
    assert_raises_naming(lambda: o.update_block_sketch_(buf, tok, 0, 2**31), "block_size")
    expanded = torch.zeros(1, 1, 4, 32, device=device).expand(1, 2, 4, 32)  # heads share memory
    assert_raises_naming(lambda: o.update_block_sketch_(expanded, tok, 0, 64), "block_sketch")
    win = torch.zeros(1, 4, 8, 32, device=device)
    assert_raises_naming(
        lambda: o.push_query_window_(win, torch.zeros(1, 4, 1, 16, device=device), 0), "q_sketch"
    )
    assert_raises_naming(
        lambda: o.push_query_window_(win, torch.zeros(1, 3, 1, 32, device=device), 0), "q_sketch"
    )
    a = torch.rand(1, 5, 5, device=device)
    r = torch.rand(1, 5, device=device)
    assert_raises_naming(lambda: o.update_block_matrix_(a, r, 1000, 64), "transition", "num_keys")
    assert_raises_naming(lambda: o.update_block_matrix_(a, r[:, :4], 300, 64), "r")
    assert_raises_naming(lambda: o.update_block_matrix_(a.double(), r, 300, 64), "transition")
    assert_raises_naming(lambda: o.update_block_matrix_(a[:, :, :4], r, 300, 64), "transition")


@pytest.mark.parametrize("device", device_params())
def test_window_logits_errors(device):
    o = ops()
    lg = torch.zeros(1, 4, 8, 6, device=device)
    qw = torch.zeros(1, 4, 8, 32, device=device)
    kb = torch.zeros(1, 2, 6, 32, device=device)
    upd = o.update_window_logits_
    assert_raises_naming(lambda: upd(lg.double(), qw, kb, 5, 0, 0.1), "window_logits")
    assert_raises_naming(lambda: upd(lg[..., ::2], qw, kb, 3, 0, 0.1), "window_logits")
    assert_raises_naming(lambda: upd(lg[0], qw, kb, 5, 0, 0.1), "window_logits")
    assert_raises_naming(lambda: upd(lg, qw[:, :, :4], kb, 5, 0, 0.1), "query_window")
    assert_raises_naming(lambda: upd(lg, qw.half(), kb, 5, 0, 0.1), "query_window")
    assert_raises_naming(
        lambda: upd(
            lg,
            torch.zeros(1, 4, 8, 300, device=device),
            torch.zeros(1, 2, 6, 300, device=device),
            5,
            0,
            0.1,
        ),
        "query_window",
    )
    assert_raises_naming(lambda: upd(lg, qw, kb[..., :16], 5, 0, 0.1), "key_blocks")
    assert_raises_naming(
        lambda: upd(lg, qw, torch.zeros(1, 3, 6, 32, device=device), 5, 0, 0.1), "key_blocks"
    )
    assert_raises_naming(lambda: upd(lg, qw, kb, 7, 0, 0.1), "num_blocks")
    assert_raises_naming(lambda: upd(lg, qw, kb, 0, 0, 0.1), "num_blocks")
    assert_raises_naming(lambda: upd(lg, qw, kb[:, :, :3], 5, 0, 0.1), "num_blocks")
    assert_raises_naming(lambda: upd(lg, qw, kb, 5, 8, 0.1), "slot")
    assert_raises_naming(lambda: upd(lg, qw, kb, 5, -2, 0.1), "slot")
    scores = o.window_block_scores
    assert_raises_naming(lambda: scores(lg, 0, 5), "window_fill")
    assert_raises_naming(lambda: scores(lg, 9, 5), "window_fill")
    assert_raises_naming(lambda: scores(lg, 8, 7), "num_blocks")
    assert_raises_naming(lambda: scores(lg, 8, 0), "num_blocks")
    assert_raises_naming(lambda: scores(lg.half(), 8, 5), "window_logits")
    assert_raises_naming(lambda: scores(lg[..., ::2], 8, 3), "window_logits")


# ---------------------------------------------------------------------------------------
# keys4 ops (quantize_keys4_, score_blocks_keys4, select_blocks_keys4): named errors, the
# cache left as it was


@pytest.mark.parametrize("device", device_params())
def test_keys4_errors(device):
    o = ops()
    dt = torch.bfloat16 if device == "cuda" else torch.float32
    k = torch.randn(2, 2, 10, 64, device=device, dtype=dt)
    codes, scales = empty_cache(2, 2, 20, 64, device)
    before = codes.clone()
    lens = torch.tensor([10, 12], dtype=torch.int32, device=device)
    # quantize_keys4_
    assert_raises_naming(lambda: o.quantize_keys4_(codes.int(), scales, k), "codes")
    assert_raises_naming(lambda: o.quantize_keys4_(codes[..., :16], scales, k), "k", "codes")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales[:, :, :5], k), "scales")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, k.double()), "k")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, k[:1]), "k")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, k, lens.long()), "seq_lens")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, k, lens[:1]), "seq_lens")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, k, lens + 20), "seq_lens")
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, k, lens - 5), "seq_lens")
    big = torch.randn(2, 2, 21, 64, device=device, dtype=dt)
    assert_raises_naming(lambda: o.quantize_keys4_(codes, scales, big), "k")
    assert_raises_naming(lambda: o.quantize_keys4_(codes.to("meta"), scales, k), "codes")
    assert torch.equal(codes, before), "a failed call wrote codes"
    assert torch.isnan(scales).all(), "a failed call wrote scales"
    # score_blocks_keys4
    q = torch.randn(2, 4, 1, 64, device=device, dtype=dt)
    assert_raises_naming(lambda: o.score_blocks_keys4(q[:, :3], codes, scales), "codes", "q")
    assert_raises_naming(lambda: o.score_blocks_keys4(q.expand(2, 4, 2, 64), codes, scales), "q")
    assert_raises_naming(lambda: o.score_blocks_keys4(q[..., :32], codes, scales), "q")
    assert_raises_naming(lambda: o.score_blocks_keys4(q, codes, scales, lens * 0), "seq_lens")
    assert_raises_naming(
        lambda: o.score_blocks_keys4(q, codes, scales, None, math.inf), "softmax_scale"
    )
    # select_blocks_keys4
    mass = torch.rand(2, 2, 5, device=device)
    assert_raises_naming(lambda: o.select_blocks_keys4(mass.double(), lens, 0.1, 0.1, 0.1), "mass")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, 1.5, 0.1, 0.1), "keep_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, math.nan, 0.1, 0.1), "keep_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, 0.1, -0.1, 0.1), "window_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, 0.1, 0.1, 2.0), "sink_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens + 400, 0.1, 0.1, 0.1), "seq_lens")
    assert_raises_naming(
        lambda: o.select_blocks_keys4(mass.transpose(0, 1), lens, 0.1, 0.1, 0.1), "mass"
    )


@pytest.mark.gpu
def test_keys4_cuda_only_errors():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    o = ops()
    codes, scales = empty_cache(1, 2, 20, 96, "cuda")
    q = torch.randn(1, 4, 1, 96, device="cuda", dtype=torch.bfloat16)
    assert_raises_naming(lambda: o.score_blocks_keys4(q, codes, scales), "q", "head_dim")
    codes, scales = empty_cache(1, 2, 20, 64, "cuda")
    assert_raises_naming(lambda: o.score_blocks_keys4(q[..., :64].float(), codes, scales), "q")
    assert_raises_naming(lambda: o.score_blocks_keys4(q[..., :64], codes.cpu(), scales), "codes")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("op_name", ["sparse_prefill", "sparse_decode"])
def test_attention_more_keys_than_int32(device, op_name):
    """A key cache longer than the kernels' int index (an expanded view: no memory) is refused
    by name, before any kernel."""
    q = torch.zeros(1, 1, 1, 64, device=device)
    k = torch.zeros(1, 1, 1, 64, device=device).expand(1, 1, 2**31, 64)
    idx = torch.zeros(1, 1, 1, 1, dtype=torch.int32, device=device)
    cnt = torch.ones(1, 1, 1, dtype=torch.int32, device=device)
    call = getattr(ops(), op_name)
    name = "k_cache" if op_name == "sparse_decode" else "k"
    msg = assert_raises_naming(lambda: call(q, k, k, idx, cnt), name)
    assert "2147483647" in msg
