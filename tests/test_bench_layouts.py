"""The block layouts bench/python/bench_attention.py hands to FlexAttention: the 64x64 keep
matrix read back from a block index, and the 128x128 layout coarsened from it, whose reported
density must be the token-level causal fraction it really keeps."""

import sys
from pathlib import Path

import pytest
import torch

import reference as R

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
bench = pytest.importorskip("bench.python.bench_attention")


def _random_keep(n, p, seed):
    g = torch.Generator().manual_seed(seed)
    keep = (torch.rand(n, n, generator=g) < p).tril()
    return keep | torch.eye(n, dtype=torch.bool)


@pytest.mark.parametrize("n,p", [(2, 0.5), (16, 0.2), (34, 0.4)])
def test_keep_matrix_reads_back_the_index(n, p):
    keep = _random_keep(n, p, n)
    idx, cnt = R.mask_to_block_index(keep.view(1, 1, n, n))
    assert torch.equal(bench.keep_matrix(idx, cnt), keep)


@pytest.mark.parametrize("n,p", [(2, 0.5), (16, 0.2), (34, 0.4)])
def test_coarsened_layout_density_is_the_token_level_fraction(n, p):
    keep = _random_keep(n, p, 100 + n)
    keep128, density = bench.coarsen_to_128(keep)
    n2 = n // 2
    assert keep128.shape == (n2, n2)
    assert keep128.diagonal().all() and not keep128.triu(1).any()  # diagonal kept, causal
    t = n * 64
    tokens = keep128.repeat_interleave(128, 0).repeat_interleave(128, 1)
    pairs = (tokens & torch.ones(t, t, dtype=torch.bool).tril()).sum().item()
    assert density == pytest.approx(pairs / (t * (t + 1) / 2), rel=1e-12)
    # The budget: a quarter of the kept 64-blocks of the two 64-rows, at least the diagonal.
    budget = (keep.view(n2, 2, n).sum((1, 2)).float() / 4).round().clamp(min=1)
    assert torch.equal(
        keep128.sum(-1).float(), torch.minimum(budget, torch.arange(1, n2 + 1).float())
    )


def test_short_kernel_name_keeps_the_kernels_own_name():
    """The selection's kernels live in an anonymous namespace, whose "(" once cut every name to
    "" and summed them into one row (the 8K selection profile of 2026-12-07)."""
    short = bench.short_kernel_name
    assert (
        short("void sketchwalk::(anonymous namespace)::hadamard_sketch_kernel<float, 128, 8>(P)")
        == "hadamard_sketch_kernel"
    )
    assert short("sketchwalk::(anonymous namespace)::score_row_stats_kernel(float*)") == (
        "score_row_stats_kernel"
    )
    assert short("Memcpy DtoD (Device -> Device)") == "Memcpy DtoD "
    assert short("sm80_xmma_gemm_f32f32_f32f32_f32_nn_n_tilesize32x32x8_stage3") == (
        "sm80_xmma_gemm_f32f32_f32f32_f32_nn_n_ti"
    )
