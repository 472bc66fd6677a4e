"""Shared test helpers: random inputs, block indices, torch same-dtype baselines."""

from __future__ import annotations

import re

import pytest
import torch

import reference as R
from conftest import poison

# Module-level parameter lists (narrow runs with -k).
SEQ_LENS = [1, 63, 64, 65, 1000]
GQA = [(1, 1), (4, 1), (7, 1), (8, 2)]  # (num_q_heads, num_kv_heads): ratios 1, 4, 7, 4
ATTN_HEAD_DIMS = [64, 128]  # sketchwalk.limits.ATTENTION_HEAD_DIMS (test_limits.py)
B = 64  # the block size of every index and kernel: sketchwalk.limits.BLOCK_SIZE (test_limits.py)
SKETCH_HEAD_DIMS = [64, 96, 128, 256]
ATTN_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def ops():
    sw = pytest.importorskip("sketchwalk")
    return sw.ops


def random_qkv(batch, hq, hkv, tq, tk, d, dtype, device, scale=1.0):
    q = (torch.randn(batch, hq, tq, d, device=device) * scale).to(dtype)
    k = (torch.randn(batch, hkv, tk, d, device=device) * scale).to(dtype)
    v = torch.randn(batch, hkv, tk, d, device=device).to(dtype)
    return q, k, v


def random_keep(batch, g, tq, tk, block_size, device, p=0.4, empty_rows=True):
    """Random causal block mask [batch, g, Nq, Nk]; some rows may be empty or hold only
    blocks with no visible key for some of the row's queries."""
    nq, nk = R.ceil_div(tq, block_size), R.ceil_div(tk, block_size)
    causal, _ = R._causal_block_mask(nq, nk, tq, tk, block_size, device)
    keep = (torch.rand(batch, g, nq, nk, device=device) < p) & causal
    if empty_rows and nq > 2:
        keep[0, 0, 1] = False
    return keep


def torch_masked_baseline(
    q, k, v, block_index, num_selected, block_size, softmax_scale=None, q_chunk_blocks=None
):
    """torch SDPA in q's own dtype under the same token mask (GQA expanded), rows with no
    visible key set to 0. The 'torch_same_dtype' term of the tolerance rule."""
    bsz, hq, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    grp = hq // hkv
    g = block_index.shape[1]
    nq = R.ceil_div(tq, block_size)
    chunk = nq if q_chunk_blocks is None else q_chunk_blocks
    ke = k.repeat_interleave(grp, dim=1)
    ve = v.repeat_interleave(grp, dim=1)
    outs = []
    for c0 in range(0, nq, chunk):
        t0, t1 = c0 * block_size, min(tq, (c0 + chunk) * block_size)
        m = R.token_mask_from_block_index(block_index, num_selected, tq, tk, block_size, t0, t1)
        m = m.repeat_interleave(hq // g, dim=1) if g > 1 else m
        o = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, t0:t1], ke, ve, attn_mask=m, scale=softmax_scale
        )
        o = torch.where(m.any(-1, keepdim=True), o, torch.zeros((), dtype=o.dtype, device=o.device))
        outs.append(o)
    return torch.cat(outs, dim=2)


def assert_raises_naming(fn, *names, exc=(RuntimeError, ValueError)):
    """fn() raises exc whose message mentions one of `names` (as a whole word)."""
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    pattern = "|".join(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])" for n in names)
    assert re.search(pattern, msg), f"error message does not name any of {names}: {msg!r}"
    return msg


def sketch_params(head_dim, sketch_dim, device, seed=0):
    """(signs float32 [n], coords int64 [m]) drawn here, independent of sketch_transform."""
    n = R.next_pow2(head_dim)
    g = torch.Generator().manual_seed(1234 + seed)
    signs = (torch.randint(0, 2, (n,), generator=g) * 2 - 1).float()
    coords = torch.randperm(n, generator=g)[:sketch_dim]
    return signs.to(device), coords.to(device)


def decode_index(lens, num_kv_heads: int, width: int, device, p: float = 0.5):
    """A random decode block index per KV group (index_heads = num_kv_heads, one row each):
    each sequence keeps a random subset of its live blocks and always its own last block, none
    past its length. Returns (block_index [batch, G, 1, width], num_selected [batch, G, 1])."""
    keep = torch.rand(len(lens), num_kv_heads, 1, width, device=device) < p
    for b, n in enumerate(lens):
        nb = R.ceil_div(n, 64)
        keep[b, ..., nb:] = False
        keep[b, ..., nb - 1] = True
    return R.mask_to_block_index(keep)


def run_without_sync(fn):
    """fn() under torch.cuda.set_sync_debug_mode("error"): a host synchronization inside raises."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        return fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def capture_graph(fn):
    """fn() once on a side stream (warm-up), then captured in a CUDA graph: (graph, what fn
    returned during the capture: the tensors each replay writes)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


def cu_seqlens(lens, device):
    """int32 [len(lens) + 1] offsets of packed sequences of these lengths (flash-attn varlen)."""
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    return torch.tensor(cu, dtype=torch.int32, device=device)


def seq_args(lens_q, lens_k, window, exclude, attend, device):
    """select_blocks_varlen's seq_args: int32 [rows, 5] from per-row lists."""
    rows = [list(r) for r in zip(lens_q, lens_k, window, exclude, attend)]
    return torch.tensor(rows, dtype=torch.int32, device=device)


def reuse_poisoned(nbytes, device):
    """Leave a freed NaN block in the caching allocator, so that an output a kernel fails to
    write shows NaN rather than the zeros a fresh allocation may hold."""
    if device == "cuda":
        poison(torch.empty(nbytes // 4 + 1024, device=device))


def tiny_llama(device="cpu", dtype=torch.float32, **config):
    """A random 3-layer Llama (4 query / 2 KV heads, head_dim 64, vocabulary 128), seeded, in
    eval mode; `config` overrides LlamaConfig fields."""
    import transformers

    torch.manual_seed(0)
    fields = dict(
        vocab_size=128,
        hidden_size=256,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )
    cfg = transformers.LlamaConfig(**{**fields, **config})
    return transformers.LlamaForCausalLM(cfg).to(device, dtype).eval()


def random_layers(num_layers, tokens, device, seed, hq=4, hkv=2, d=64):
    """num_layers [(q, k, v)] of batch 1 (q [1, hq, tokens, d], k and v [1, hkv, tokens, d];
    q and k scaled by 3 for peaked attention), drawn from `seed` on the CPU, moved to device."""
    g = torch.Generator().manual_seed(seed)
    return [
        [(torch.randn(1, h, tokens, d, generator=g) * s).to(device) for h, s in sc]
        for sc in [((hq, 3.0), (hkv, 3.0), (hkv, 1.0))] * num_layers
    ]
