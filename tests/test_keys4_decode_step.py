"""The keys4 decode scorer (docs/spec.md section 7): quantize_keys4_, score_blocks_keys4 and
select_blocks_keys4 against the float64 reference, sparse_decode with seq_lens, the whole
step, and its CUDA-graph capture."""

import math

import pytest
import torch

import reference as R
from conftest import device_params, poison
from utils import GQA, SEQ_LENS, assert_raises_naming, ops

B = 64
POISON_CODE = 0  # nibble 0 never occurs in a written row (codes are stored as code + 8)


def empty_cache(batch, hkv, capacity, head_dim, device):
    codes = torch.full((batch, hkv, capacity, head_dim // 2), POISON_CODE, dtype=torch.uint8,
                       device=device)
    scales = poison(torch.empty(batch, hkv, capacity, device=device))
    return codes, scales


def check_rows(codes, scales, k, rows_of_batch):
    """Rows rows_of_batch[b] of the cache hold k[b] encoded exactly as the reference; all
    other rows still hold the poison."""
    ref_codes, ref_scales = R.quantize_keys4(k.cpu())
    packed = R.pack_keys4(ref_codes).to(codes.device)
    written = torch.zeros(codes.shape[:3], dtype=torch.bool, device=codes.device)
    for b, rows in enumerate(rows_of_batch):
        assert torch.equal(codes[b, :, rows], packed[b]), f"codes of batch row {b}"
        got, want = scales[b, :, rows], ref_scales[b].to(scales.device)
        assert torch.equal(got, want), f"scales of batch row {b}: max diff {(got - want).abs().max()}"
        written[b, :, rows] = True
    assert (codes[~written] == POISON_CODE).all(), "a row outside the write was touched"
    assert torch.isnan(scales[~written]).all(), "a scale outside the write was touched"


# ---------------------------------------------------------------------------------------
# quantize_keys4_


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS)
@pytest.mark.parametrize("head_dim", [2, 64, 96, 128, 256])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_quantize_keys4_prefill_rows(device, tokens, head_dim, dtype):
    k = (torch.randn(2, 3, tokens, head_dim, device=device) * 3).to(dtype)
    codes, scales = empty_cache(2, 3, tokens + 7, head_dim, device)
    ops().quantize_keys4_(codes, scales, k)
    check_rows(codes, scales, k, [slice(0, tokens)] * 2)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [1, 5])
def test_quantize_keys4_appends_at_seq_lens(device, tokens):
    lens = [tokens, 70, 129]
    k = torch.randn(3, 2, tokens, 128, device=device, dtype=torch.bfloat16)
    codes, scales = empty_cache(3, 2, 130, 128, device)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    ops().quantize_keys4_(codes, scales, k, seq_lens)
    check_rows(codes, scales, k, [slice(n - tokens, n) for n in lens])


@pytest.mark.parametrize("device", device_params())
def test_quantize_keys4_strided_input_and_special_values(device):
    # Ties at .5 round half to even, an all-zero row gets scale 0 and codes 0, a NaN value
    # code 0 (amax skips it), an inf value makes the scale inf; the input is a strided view.
    base = torch.randn(1, 2, 9, 64, device=device)
    base[0, 0, 0, :4] = torch.tensor([7.0, 3.5, -2.5, 0.5])
    base[0, 0, 0, 4:] = 0.25
    base[0, 0, 1] = 0.0
    base[0, 1, 2, 5] = float("nan")
    base[0, 1, 3, 7] = float("inf")
    big = torch.zeros(1, 3, 12, 64, device=device)
    k = big[:, :2, :9]
    k.copy_(base)
    codes, scales = empty_cache(1, 2, 9, 64, device)
    ops().quantize_keys4_(codes, scales, k)
    check_rows(codes, scales, k, [slice(0, 9)])
    unpacked = R.unpack_keys4(codes[0, 0, 0].cpu())
    assert unpacked[:4].tolist() == [7, 4, -2, 0]  # 3.5 -> 4, -2.5 -> -2, 0.5 -> 0 (half to even)
    assert scales[0, 0, 1] == 0 and (R.unpack_keys4(codes[0, 0, 1].cpu()) == 0).all()


# ---------------------------------------------------------------------------------------
# score_blocks_keys4


def random_cache(batch, hkv, capacity, head_dim, device, dtype=torch.bfloat16):
    k = torch.randn(batch, hkv, capacity, head_dim, device=device).to(dtype)
    codes, scales = empty_cache(batch, hkv, capacity, head_dim, device)
    ops().quantize_keys4_(codes, scales, k)
    return k, codes, scales


def check_mass(mass, q, codes, scales, seq_lens, softmax_scale=None):
    lens = None if seq_lens is None else seq_lens.tolist()
    ref = R.score_blocks_keys4(q.cpu(), R.unpack_keys4(codes.cpu()), scales.cpu(), lens,
                               softmax_scale)
    assert mass.shape == ref.shape and mass.dtype == torch.float32
    got = mass.cpu().double()
    # fp32 accumulation and exp2 on the GPU against float64: masses lie in [0, group].
    group = q.shape[1] // codes.shape[1]
    err = (got - ref).abs().max().item()
    assert err <= 2e-5 * group + 1e-4 * ref.abs().max().item(), f"max abs err {err}"
    cap = codes.shape[2]
    for b in range(q.shape[0]):
        n = R.ceil_div(cap if lens is None else lens[b], B)
        assert (got[b, :, n:] == 0).all(), "mass past the sequence must be 0"
        assert torch.allclose(got[b, :, :n].sum(-1), torch.full_like(got[b, :, 0], group),
                              rtol=1e-4), "each head's softmax sums to 1"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("capacity", SEQ_LENS + [3000])
@pytest.mark.parametrize("hq,hkv", GQA + [(16, 1), (6, 2)])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_score_blocks_keys4_matches_reference(device, capacity, hq, hkv, head_dim, dtype):
    _, codes, scales = random_cache(2, hkv, capacity, head_dim, device)
    q = (torch.randn(2, hq, 1, head_dim, device=device) * 2).to(dtype)
    lens = torch.tensor([capacity, max(1, capacity - 61)], dtype=torch.int32, device=device)
    check_mass(ops().score_blocks_keys4(q, codes, scales, lens), q, codes, scales, lens)
    check_mass(ops().score_blocks_keys4(q, codes, scales, None, 0.3), q, codes, scales, None, 0.3)


@pytest.mark.parametrize("device", device_params())
def test_score_blocks_keys4_ignores_rows_past_length(device):
    # Garbage past seq_lens (all-NaN scales, extreme codes) must not change the mass.
    _, codes, scales = random_cache(1, 2, 500, 64, device)
    q = torch.randn(1, 4, 1, 64, device=device, dtype=torch.bfloat16)
    lens = torch.tensor([301], dtype=torch.int32, device=device)
    want = ops().score_blocks_keys4(q, codes, scales, lens)
    codes[:, :, 301:] = 0xFF
    scales[:, :, 301:] = float("nan")
    got = ops().score_blocks_keys4(q, codes, scales, lens)
    assert torch.equal(got, want)


@pytest.mark.parametrize("device", device_params())
def test_score_blocks_keys4_finds_a_planted_key(device):
    # One key equal to a multiple of the query in block 11 of 40 takes most of the mass.
    _, codes, scales = random_cache(1, 1, 40 * B, 128, device)
    q = torch.randn(1, 4, 1, 128, device=device)
    needle = torch.zeros(1, 1, 1, 128, device=device)
    needle[..., :] = q[:, :1] * 8
    lens = torch.tensor([40 * B], dtype=torch.int32, device=device)
    k_new = needle.to(torch.bfloat16)
    ops().quantize_keys4_(codes, scales, k_new, torch.tensor([11 * B + 5], dtype=torch.int32,
                                                              device=device))
    mass = ops().score_blocks_keys4(q.to(torch.bfloat16), codes, scales, lens)
    assert int(mass[0, 0].argmax()) == 11


# ---------------------------------------------------------------------------------------
# select_blocks_keys4


def check_select(mass, seq_lens, keep_frac, window_frac, sink_frac):
    idx, cnt = ops().select_blocks_keys4(mass, seq_lens, keep_frac, window_frac, sink_frac)
    lens = None if seq_lens is None else seq_lens.tolist()
    _, ref_idx, ref_cnt = R.select_blocks_keys4(mass.cpu(), lens, keep_frac, window_frac, sink_frac)
    assert idx.shape == ref_idx.shape and idx.dtype == torch.int32
    assert torch.equal(cnt.cpu(), ref_cnt), f"counts {cnt.flatten().tolist()} vs {ref_cnt.flatten().tolist()}"
    assert torch.equal(idx.cpu(), ref_idx)
    return idx, cnt


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("width", [1, 2, 5, 63, 64, 65, 300, 2048])
@pytest.mark.parametrize("keep_frac", [0.0, 0.05, 0.125, 0.5, 1.0])
def test_select_blocks_keys4_matches_reference(device, width, keep_frac):
    mass = torch.rand(3, 4, width, device=device)  # distinct float32 values
    lens = torch.tensor([width * B, max(1, width * B - 100), max(1, (width * B) // 3)],
                        dtype=torch.int32, device=device)
    check_select(mass, lens, keep_frac, 0.05, 0.025)
    check_select(mass, None, keep_frac, 0.2, 0.0)


@pytest.mark.parametrize("device", device_params())
def test_select_blocks_keys4_ties_nan_and_edges(device):
    width = 200
    mass = torch.full((4, 2, width), 0.25, device=device)  # all tied: strict > keeps no candidate
    lens = torch.tensor([width * B, 1, 65, 64 * 37 + 1], dtype=torch.int32, device=device)
    idx, cnt = check_select(mass, lens, 0.1, 0.05, 0.025)
    n, sb, wb = R.keys4_budget(width * B, 0.05, 0.025)
    assert int(cnt[0, 0]) == sb + wb
    mass[2, 1, 0] = float("nan")  # a NaN in the sink: the rule still applies to the candidates
    mass[3, 0, 10] = float("nan")  # a NaN candidate: only sink and window
    mass[3, 1] = torch.rand(width, device=device)
    check_select(mass, lens, 0.1, 0.05, 0.025)
    check_select(mass, lens, 0.3, 1.0, 1.0)  # window and sink cover everything


# ---------------------------------------------------------------------------------------
# sparse_decode over a fixed-capacity cache (seq_lens)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_sparse_decode_seq_lens(device, dtype, head_dim):
    if device == "cpu" and dtype != torch.float32:
        dtype = torch.float32
    cap, lens = 700, [1, 64, 65, 700, 333]
    batch = len(lens)
    k = torch.randn(batch, 2, cap, head_dim, device=device).to(dtype)
    v = torch.randn(batch, 2, cap, head_dim, device=device).to(dtype)
    for b, n in enumerate(lens):  # past each length: NaN, which would show if read
        k[b, :, n:] = float("nan")
        v[b, :, n:] = float("nan")
    q = torch.randn(batch, 8, 1, head_dim, device=device).to(dtype)
    width = R.ceil_div(cap, B)
    keep = torch.rand(batch, 2, 1, width, device=device) < 0.5
    for b, n in enumerate(lens):
        nb = R.ceil_div(n, B)
        keep[b, ..., nb:] = False
        keep[b, ..., nb - 1] = True
    idx, cnt = R.mask_to_block_index(keep)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    out, lse = ops().sparse_decode(q, k, v, idx, cnt, None, True, seq_lens)
    for b, n in enumerate(lens):
        ref_out, ref_lse = R.sparse_attention(q[b:b + 1], k[b:b + 1, :, :n], v[b:b + 1, :, :n],
                                              idx[b:b + 1], cnt[b:b + 1])
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out[b:b + 1].double(), ref_out, atol=tol, rtol=tol)
        torch.testing.assert_close(lse[b:b + 1].double(), ref_lse, atol=1e-3, rtol=1e-4)
    # An index entry at or past a sequence's length is refused.
    bad = idx.clone()
    bad[0, 0, 0, 0] = 3
    bad_cnt = cnt.clone()
    bad_cnt[0, 0, 0] = 1
    assert_raises_naming(lambda: ops().sparse_decode(q, k, v, bad, bad_cnt, None, True, seq_lens),
                         "block_index")
    assert_raises_naming(lambda: ops().sparse_decode(q, k, v, idx, cnt, None, True, seq_lens + 1000),
                         "seq_lens")


# ---------------------------------------------------------------------------------------
# The whole step: the kept set equals the reference's except at near-ties


def near_tie_ok(keep, ref_keep, mass_ref, seq_len, cfg):
    n, sb, wb = R.keys4_budget(seq_len, cfg["window_frac"], cfg["sink_frac"])
    diff = (keep != ref_keep).nonzero().tolist()
    for b, g, j in diff:
        cand = mass_ref[b, g, sb:n - wb]
        th = torch.quantile(cand, 1 - cfg["kblocks_frac"]).item()
        assert abs(mass_ref[b, g, j].item() - th) <= 1e-4 * max(th, 1e-12) + 1e-7, (
            f"block {j} of row ({b}, {g}) differs from the reference away from the threshold")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [65, 1000, 5000])
@pytest.mark.parametrize("hq,hkv,head_dim", [(9, 3, 64), (32, 8, 128), (14, 2, 64)])
def test_keys4_decode_step_against_reference(device, tokens, hq, hkv, head_dim):
    cfg = dict(kblocks_frac=0.125, window_frac=0.05, sink_frac=0.025)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q = torch.randn(1, hq, 1, head_dim, device=device).to(dtype)
    k = torch.randn(1, hkv, tokens, head_dim, device=device).to(dtype)
    v = torch.randn(1, hkv, tokens, head_dim, device=device).to(dtype)
    o = ops()
    cap = tokens + 100
    codes, scales = empty_cache(1, hkv, cap, head_dim, device)
    o.quantize_keys4_(codes, scales, k[:, :, :-1])  # prefill: every key but the new one
    seq_lens = torch.tensor([tokens], dtype=torch.int32, device=device)
    o.quantize_keys4_(codes, scales, k[:, :, -1:], seq_lens)  # the decode step appends its key
    mass = o.score_blocks_keys4(q, codes, scales, seq_lens)
    idx, cnt = o.select_blocks_keys4(mass, seq_lens, cfg["kblocks_frac"], cfg["window_frac"],
                                     cfg["sink_frac"])
    out, _ = o.sparse_decode(q, k, v, idx, cnt, None, True, seq_lens)
    ref = R.layer_decode_step_keys4(q.cpu(), k.cpu(), v.cpu(), cfg)
    width = R.ceil_div(tokens, B)
    keep = R.block_index_to_mask(idx.cpu(), cnt.cpu(), R.ceil_div(cap, B))[:, :, 0, :width]
    near_tie_ok(keep, ref["keep"], ref["mass"], tokens, cfg)
    if torch.equal(keep, ref["keep"]):
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out.cpu().double(), ref["out"], atol=tol, rtol=tol)


@pytest.mark.gpu
def test_keys4_decode_step_cuda_graph():
    """The step (append, score, select, sparse_decode) captured once and replayed with new
    inputs and a longer sequence equals the eager step."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    o = ops()
    dev, dt = "cuda", torch.bfloat16
    hq, hkv, d, cap = 8, 2, 128, 3000
    k_cache = torch.randn(2, hkv, cap, d, device=dev, dtype=dt)
    v_cache = torch.randn(2, hkv, cap, d, device=dev, dtype=dt)
    codes, scales = empty_cache(2, hkv, cap, d, dev)
    o.quantize_keys4_(codes, scales, k_cache)
    seq_lens = torch.tensor([1000, 2100], dtype=torch.int32, device=dev)
    q = torch.randn(2, hq, 1, d, device=dev, dtype=dt)
    k_new = torch.randn(2, hkv, 1, d, device=dev, dtype=dt)

    def step():
        o.quantize_keys4_(codes, scales, k_new, seq_lens, False)
        mass = o.score_blocks_keys4(q, codes, scales, seq_lens, None, False)
        idx, cnt = o.select_blocks_keys4(mass, seq_lens, 0.125, 0.05, 0.025, False)
        return o.sparse_decode(q, k_cache, v_cache, idx, cnt, None, False, seq_lens)[0], idx, cnt

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        g_out, g_idx, g_cnt = step()
    for lens in ([1001, 2101], [1500, 64], [3000, 1]):
        seq_lens.copy_(torch.tensor(lens, dtype=torch.int32))
        q.copy_(torch.randn_like(q))
        k_new.copy_(torch.randn_like(k_new))
        graph.replay()
        want_out, want_idx, want_cnt = step()
        assert torch.equal(g_idx, want_idx) and torch.equal(g_cnt, want_cnt)
        assert torch.equal(g_out, want_out)


# ---------------------------------------------------------------------------------------
# Bad input: named errors, the cache left as it was


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
    assert_raises_naming(lambda: o.score_blocks_keys4(q, codes, scales, None, math.inf),
                         "softmax_scale")
    # select_blocks_keys4
    mass = torch.rand(2, 2, 5, device=device)
    assert_raises_naming(lambda: o.select_blocks_keys4(mass.double(), lens, 0.1, 0.1, 0.1), "mass")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, 1.5, 0.1, 0.1), "keep_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, math.nan, 0.1, 0.1), "keep_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, 0.1, -0.1, 0.1), "window_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens, 0.1, 0.1, 2.0), "sink_frac")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass, lens + 400, 0.1, 0.1, 0.1), "seq_lens")
    assert_raises_naming(lambda: o.select_blocks_keys4(mass.transpose(0, 1), lens, 0.1, 0.1, 0.1),
                         "mass")


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


# ---------------------------------------------------------------------------------------
# Through the layer: sketchwalk_attention with the default (keys4) decode scorer


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens,hq,hkv,d", [(1023, 4, 1, 64), (700, 8, 2, 128), (63, 2, 1, 64)])
def test_layer_keys4_decode_steps(device, tokens, hq, hkv, d):
    import sketchwalk as sw

    cfg = sw.SketchWalkConfig(dense_layers=0)
    assert cfg.decode_scorer == "keys4"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    steps = 3  # from 1023 tokens the second step opens a new key block
    q = torch.randn(1, hq, tokens + steps, d, device=device).to(dtype)
    k = torch.randn(1, hkv, tokens + steps, d, device=device).to(dtype)
    v = torch.randn(1, hkv, tokens + steps, d, device=device).to(dtype)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :tokens], k[:, :, :tokens], v[:, :, :tokens], 0, state)
    cfg_ref = dict(kblocks_frac=cfg.kblocks_frac, window_frac=cfg.window_frac, sink_frac=cfg.sink_frac)
    for step in range(steps):
        tk = tokens + step + 1
        qn, kc, vc = q[:, :, tk - 1:tk], k[:, :, :tk], v[:, :, :tk]
        out = sw.sketchwalk_attention(qn, kc, vc, 0, state)
        ref = R.layer_decode_step_keys4(qn.cpu(), kc.cpu(), vc.cpu(), cfg_ref)
        keep = ref["keep"]
        density = ((keep.sum(-1).double() - 1) * B + (tk - (R.ceil_div(tk, B) - 1) * B)).mean() / tk
        assert state.last_density[0] == pytest.approx(float(density), rel=0.05)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        base = None
        try:
            torch.testing.assert_close(out.cpu().double(), ref["out"], atol=tol, rtol=tol)
        except AssertionError as err:  # only acceptable when the selection sits at a near-tie
            base = err
        if base is not None:
            layer = state.layers[0]
            mass = sw.ops.score_blocks_keys4(qn.to(torch.bfloat16) if device == "cuda" else qn,
                                             layer.codes, layer.scales, layer.seq_lens)
            idx, cnt = sw.ops.select_blocks_keys4(mass, layer.seq_lens, **{
                "keep_frac": cfg.kblocks_frac, "window_frac": cfg.window_frac,
                "sink_frac": cfg.sink_frac})
            got = R.block_index_to_mask(idx.cpu(), cnt.cpu(), idx.shape[-1])[:, :, 0, :keep.shape[-1]]
            near_tie_ok(got, keep, ref["mass"], tk, cfg_ref)
            assert not torch.equal(got, keep), f"same selection, different output: {base}"


@pytest.mark.parametrize("device", device_params())
def test_layer_fixed_capacity_decode_equals_dynamic(device):
    # sketchwalk_attention(..., seq_lens=...) over a cache of fixed capacity computes what the
    # growing-cache decode computes, for rows of different lengths. Past each length the sparse
    # layer's cache holds NaN (never read); the dense layer's holds zeros, as a static cache
    # does (SDPA's mask does not hide NaN values).
    import sketchwalk as sw

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cfg = sw.SketchWalkConfig(dense_layers=1)
    lens, cap, hq, hkv, d = [700, 1030], 1100, 8, 2, 64
    q = torch.randn(2, hq, cap, d, device=device).to(dtype)
    k = torch.randn(2, hkv, cap, d, device=device).to(dtype)
    v = torch.randn(2, hkv, cap, d, device=device).to(dtype)
    for layer in (0, 1):  # a dense layer and a sparse one
        for b, n in enumerate(lens):
            rows = slice(b, b + 1)
            dynamic = sw.SketchWalkState(cfg)
            fixed = sw.SketchWalkState(cfg)
            fixed.cache_capacity = cap
            sw.sketchwalk_attention(q[rows, :, :n - 1], k[rows, :, :n - 1], v[rows, :, :n - 1],
                                    layer, dynamic)
            sw.sketchwalk_attention(q[rows, :, :n - 1], k[rows, :, :n - 1], v[rows, :, :n - 1],
                                    layer, fixed)
            want = sw.sketchwalk_attention(q[rows, :, n - 1:n], k[rows, :, :n], v[rows, :, :n],
                                           layer, dynamic)
            kc, vc = k[rows].clone(), v[rows].clone()
            kc[:, :, n:] = float("nan") if layer == 1 else 0.0
            vc[:, :, n:] = float("nan") if layer == 1 else 0.0
            seq_lens = torch.tensor([n], dtype=torch.int32, device=device)
            got = sw.sketchwalk_attention(q[rows, :, n - 1:n], kc, vc, layer, fixed, seq_lens=seq_lens)
            if layer == 1:  # the same ops on the same rows: bitwise equal
                torch.testing.assert_close(got, want, atol=0, rtol=0)
            else:  # SDPA over the masked capacity against SDPA over the slice: rounding only
                # (other kernels and summation orders; outputs ~0.03, where a bf16 ulp is ~1e-4)
                atol = 1e-3 if dtype == torch.bfloat16 else 1e-5
                torch.testing.assert_close(got, want, atol=atol, rtol=1.6e-2)
            if layer == 1:
                assert fixed.last_density[1] == pytest.approx(dynamic.last_density[1], rel=1e-9)
