"""Memory of a prefill layer (docs: bench/python/prefill_memory.py measures it on a GPU).

At 1M tokens the block grid is N = 16384 blocks a side, so each N x N float32 buffer is 1 GiB
beside 20 GiB of q, k, v and out (Llama-3.1-8B shapes). These tests hold the layer to what it
needs: the walk W (carried to the next layer) and the block index while the attention runs,
plus the walk decode state's copy of A under the paper preset; the density is counted per row,
and the walk frees the previous layer's W after its first step. Each would fail if an N x N
temporary came back (one is 1 MiB at the sizes used here).
"""

import dataclasses
import pathlib
import sys

import pytest
import torch

import reference as R
from conftest import device_params
from memory_utils import peak_allocated
from utils import (
    B,  # the one block-size constant
    random_keep,
)


def dense_map_density(block_index, num_selected, num_queries, block_size, num_keys=None):
    """prefill_density as it was up to 2253040: a dense float64 [Nq, Nk] map of the causal pairs
    of every block pair, masked by the index and summed. The per-row count must equal it bit for
    bit (both are exact integer counts, divided once)."""
    num_keys = num_queries if num_keys is None else num_keys
    device = block_index.device
    nq, nk = -(-num_queries // block_size), -(-num_keys // block_size)
    i = torch.arange(nq, device=device, dtype=torch.float64)[:, None]
    j = torch.arange(nk, device=device, dtype=torch.float64)[None, :]
    offset = num_keys - num_queries
    p0 = i * block_size + offset
    p1 = torch.clamp((i + 1) * block_size, max=num_queries) - 1 + offset
    k0 = j * block_size
    length = torch.clamp((j + 1) * block_size, max=num_keys) - k0

    def partial_sum(x):
        x = torch.clamp(x, min=0)
        inside = torch.minimum(x, length)
        return inside * (inside + 1) / 2 + (x - inside) * length

    area = partial_sum(p1 - k0 + 1) - partial_sum(p0 - k0)
    used = torch.arange(block_index.shape[-1], device=device) < num_selected.unsqueeze(-1)
    mask = torch.zeros((*block_index.shape[:3], nk + 1), dtype=torch.float64, device=device)
    mask.scatter_(-1, torch.where(used, block_index.long(), nk), 1.0)
    kept = (mask[..., :nk] * area).sum(dim=(-1, -2))
    return (kept / area.sum()).mean()


@pytest.mark.parametrize(
    "tq,tk",
    [
        (1, 1),
        (63, 63),
        (64, 64),
        (65, 65),
        (1000, 1000),
        (200, 1000),
        (64, 130),
        (1, 700),
        (333, 4097),
        (4097, 4097),
    ],
)
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("device", device_params())
def test_prefill_density_equals_dense_map(tq, tk, heads, device):
    sw = pytest.importorskip("sketchwalk")
    for p in (0.0, 0.1, 0.5, 1.0):
        keep = random_keep(2, heads, tq, tk, B, device, p=p)
        index, count = R.mask_to_block_index(keep)
        want = dense_map_density(index, count, tq, B, tk)
        narrow = index[..., : max(1, int(count.max()))]
        wide = torch.cat([index, torch.full_like(index[..., :3], -1)], dim=-1)
        for bi in (index, narrow, wide):
            got = sw.density.prefill_density(bi, count, tq, B, tk)
            assert got.dtype == torch.float64 and got.shape == ()
            assert torch.equal(got, want), (p, bi.shape, float(got), float(want))


def test_prefill_density_of_select_blocks_equals_dense_map():
    """The index a prefill really makes: sink, window, quantile and the dense last rows."""
    sw = pytest.importorskip("sketchwalk")
    for tokens in (300, 2048, 5000):
        n = -(-tokens // B)
        scores = torch.rand(2, n, n)
        index, count = sw.ops.select_blocks(
            scores, tokens, tokens, B, 0.125, tokens // 20, tokens // 40, tokens // 20, 4
        )
        assert torch.equal(
            sw.density.prefill_density(index, count, tokens, B),
            dense_map_density(index, count, tokens, B),
        )


def test_prefill_density_memory_is_per_row():
    """O(rows) int64 vectors, not O(rows x key blocks): at N = 512 blocks the dense float64 map
    alone was 2 MiB, with five temporaries of its size; the bound here is 256 KiB."""
    sw = pytest.importorskip("sketchwalk")
    tokens = 512 * B
    n = tokens // B
    keep = random_keep(1, 1, tokens, tokens, B, "cpu", p=1.0, empty_rows=False)  # widest rows
    index, count = R.mask_to_block_index(keep)
    density, peak = peak_allocated(lambda: sw.density.prefill_density(index, count, tokens, B))
    assert float(density) == 1.0
    assert peak < n * n, f"prefill_density allocated {peak} bytes at N = {n}"


def _stub_sparse_prefill(q, k, v, block_index, num_selected, softmax_scale=None, validate=True):
    """What the CUDA sparse_prefill allocates (out and lse, csrc/cuda/sparse_prefill.cpp): the CPU
    kernel's own per-chunk scratch is not what a GPU prefill holds, so it stays out of the count."""
    return torch.empty_like(q), torch.empty(q.shape[:3], dtype=torch.float32)


@pytest.mark.parametrize("preset", ["default", "paper", "kv_group"])
def test_prefill_layer_peak_memory(preset, monkeypatch):
    """Peak of one prefill layer beyond q, k, v and out, with the previous layer's walk carried in:
    the walk W and the block index (N x N float32 / int32 per selection row each), lse, and under
    the paper preset the decode state's copy of A. Before 2253040's successor it was ~15 N x N
    float32 buffers up to 2253040 (the first sparse layer; 1 GiB each at 1M tokens), ~10 per KV
    group under kv_group."""
    sw = pytest.importorskip("sketchwalk")
    monkeypatch.setattr(sw.ops, "sparse_prefill", _stub_sparse_prefill)
    cfg = {
        "default": sw.SketchWalkConfig(),
        "paper": sw.SketchWalkConfig.paper(),
        "kv_group": sw.SketchWalkConfig(prefill_selection="kv_group"),
    }[preset]
    cfg = dataclasses.replace(cfg, dense_layers=0)
    hq, hkv = (4, 2) if preset == "kv_group" else (2, 1)
    tokens, d = 1024 * B, 64
    n = tokens // B
    selection_rows = hkv if preset == "kv_group" else 1
    n2 = selection_rows * n * n * 4  # one N x N float32 buffer per selection row: 4 MiB per row
    q = torch.randn(1, hq, tokens, d)
    k, v = torch.randn(1, hkv, tokens, d), torch.randn(1, hkv, tokens, d)
    state = sw.SketchWalkState(cfg)
    for layer in range(2):
        with torch.no_grad():
            out, peak = peak_allocated(lambda i=layer: sw.sketchwalk_attention(q, k, v, i, state))
        beyond = peak - out.nbytes
        lse = hq * tokens * 4
        expected = 2 * n2 + lse  # W and the block index, lse while the attention runs
        if preset == "paper":
            t_buf = state.layers[layer].transition
            expected += (
                t_buf.nbytes
                + state.layers[layer].key_blocks.nbytes
                + state.layers[layer].window_logits.nbytes
            )
        # Slack for the O(N) vectors (sketches of the key blocks, density counts): far below
        # one N x N buffer. The carried walk of layer 0 is freed inside layer 1's walk and is not
        # counted by the profiler there, which only sees allocations made during the call.
        assert beyond <= expected + n2 // 4, (
            f"layer {layer}: {beyond / n2:.2f} N x N float32 buffers beyond q/k/v/out, expected "
            f"{expected / n2:.2f}"
        )
        assert state._carried_walk is not None and state._carried_walk.shape[-1] == n


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("carried", [False, True])
@pytest.mark.parametrize("rows", [1, 3])
@pytest.mark.parametrize("n", [70, 700])
@pytest.mark.parametrize("device", device_params())
def test_carried_walk_equals_walk_blocks(degree, carried, rows, n, device):
    """The prefill's walk (attention._carried_walk_blocks) is ops.walk_blocks bit for bit."""
    sw = pytest.importorskip("sketchwalk")
    cfg = sw.SketchWalkConfig(degree=degree)
    a = torch.rand(rows, n, n, device=device)
    a = a / a.sum(-1, keepdim=True)
    w_prev = torch.rand(rows, n, n, device=device) if carried else None
    want = sw.ops.walk_blocks(a, a, w_prev, degree, cfg.damping)
    state = sw.SketchWalkState(cfg)
    if carried:
        state.carry_walk(4, w_prev.clone())
    got = sw.attention._carried_walk_blocks(a, state, 5)
    assert torch.equal(got, want)
    assert state._carried_walk is None  # the state let go of W(l-1): the walk freed it
    assert got.data_ptr() not in (a.data_ptr(), *([w_prev.data_ptr()] if carried else []))


def test_carried_walk_memory():
    """A, W(l-1) and one step's output, then A and two buffers: three N x N buffers at most
    (walk_blocks, which cannot free its argument W(l-1), holds four)."""
    sw = pytest.importorskip("sketchwalk")
    n = 1024
    n2 = n * n * 4
    base = torch.rand(1, n, n)
    w_prev = torch.rand(1, n, n)
    state = sw.SketchWalkState(sw.SketchWalkConfig())

    def run():  # A and W(l-1) made inside the measured call, so their bytes count too
        a = base.clone()
        state.carry_walk(0, w_prev.clone())
        return sw.attention._carried_walk_blocks(a, state, 1)

    walk, peak = peak_allocated(run)
    assert torch.equal(walk, sw.ops.walk_blocks(base, base, w_prev, 3, 0.25))
    assert peak <= 3 * n2 + n2 // 8, f"the walk peaked at {peak / n2:.2f} N x N buffers"


def test_prefill_memory_bench_runs_on_cpu():
    """bench/python/prefill_memory.py at 2048 tokens, 2 heads, on the CPU: every row reports the
    block index shape and two bitwise-equal runs."""
    pytest.importorskip("sketchwalk")
    root = str(pathlib.Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench.python.prefill_memory import main

    rows = main(
        [
            "--tokens",
            "2048",
            "--heads",
            "2",
            "--kv-heads",
            "1",
            "--head-dim",
            "64",
            "--device",
            "cpu",
            "--configs",
            "default,paper,kv_group",
        ]
    )
    assert [(r["config"], r["layer"]) for r in rows] == [
        (c, layer) for c in ("default", "paper", "kv_group") for layer in (0, 1)
    ]
    for r in rows:
        assert r["deterministic"] and r["extra"] is None and 0.0 < r["density"] <= 1.0
        assert r["block_index"] == ((1, 1, 32, 32), "int32")
        assert r["qkvo"] == 2 * (2 + 1) * 2048 * 64 * 4
