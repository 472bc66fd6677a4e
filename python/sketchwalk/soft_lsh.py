"""SOCKET's soft-collision decode scorer ("SOft Collision Kernel EsTimator", arXiv 2602.06283),
as a decode scorer of this package: ``SketchWalkConfig(decode_scorer="socket")``.

The rule, written from the authors' description and code (amarka8/SOCKET, its research
pipeline), with their defaults:

- ``TABLES`` hash tables of ``PLANES`` random hyperplanes each (Gaussian, one draw per head_dim
  and seed, shared by every layer and head); R = 2^PLANES buckets per table.
- A key is hashed hard: in table l, its code is the sign bits of its projections on the
  table's planes, packed most significant first.
- The query is hashed soft: in table l, p_l(r) = softmax_r(<tanh(planes_l q) / sqrt(D), c_r> / T)
  over the hypercube corners c_r in {-1, +1}^PLANES (corner r's bits in the codes' order),
  temperature T = ``TEMPERATURE``.
- A key's score for a query head is ||v|| * sum_l p_l(code_l(key)): the soft collision evidence
  summed over tables, weighted by its value's norm.

Here a 64-key block scores its best key per query head (the maximum over its keys), summed over
the KV group's query heads, and the blocks are chosen per KV group by the keys4 rule (sink,
window, quantile of the decode knobs) for the package's block-sparse decode; the authors keep a
token-level top-M instead. The maximum keeps what a token-level top-M sees: summed over a block,
the evidence every key gets drowns the one key that matters (SmolLM2, CPU, 4 samples:
niah_single_1 at 1K 25 with the sum, 100 with the maximum, as with keys4). The keys' codes and
value norms are kept per layer and sequence (on the SketchWalkState) and extended by the new key
of each step. This float32 PyTorch version is what decides whether SOCKET earns kernels;
tests/reference.py holds its float64 reference.
"""

from __future__ import annotations

import itertools
import weakref

import torch

NAME = "socket"
TABLES = 60  # L: hash tables (the authors' pipeline default)
PLANES = 8  # P: hyperplanes per table, R = 2^P = 256 buckets (their GPT-FAST code uses 10)
TEMPERATURE = 0.3  # of the query's soft assignment

_PLANES: dict[tuple, torch.Tensor] = {}
_CORNERS: dict[tuple, torch.Tensor] = {}
# Per SketchWalkState: {layer_idx: (codes uint8 [B, Hkv, T, L], value norms float32 [B, Hkv, T])}.
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def hyperplanes(head_dim: int, seed: int, device, tables: int = TABLES, planes: int = PLANES):
    """float32 [tables, planes, head_dim], N(0, 1), drawn on the CPU from `seed` (the same on
    every device)."""
    key = (head_dim, seed, str(device), tables, planes)
    if key not in _PLANES:
        g = torch.Generator().manual_seed(0x50C4E7 + seed)
        _PLANES[key] = torch.randn(tables, planes, head_dim, generator=g).to(device)
    return _PLANES[key]


def corners(planes: int, device) -> torch.Tensor:
    """float32 [planes, 2^planes]: column r is bucket r's corner, bit p of r (most significant
    first) -> +1, else -1, as hash_keys packs the codes."""
    key = (planes, str(device))
    if key not in _CORNERS:
        rows = list(itertools.product([-1.0, 1.0], repeat=planes))  # [R, P], MSB first
        _CORNERS[key] = torch.tensor(rows, dtype=torch.float32).t().contiguous().to(device)
    return _CORNERS[key]


def hash_keys(k: torch.Tensor, planes_: torch.Tensor) -> torch.Tensor:
    """Bucket codes uint8 [B, Hkv, T, L] of keys k [B, Hkv, T, D] (planes <= 8 bits)."""
    bits = torch.einsum("bhtd,lpd->bhtlp", k.float(), planes_) >= 0
    weights = 1 << torch.arange(planes_.shape[1] - 1, -1, -1, device=k.device)
    return (bits.to(torch.int32) * weights).sum(-1).to(torch.uint8)


def query_probs(q: torch.Tensor, planes_: torch.Tensor, temperature: float = TEMPERATURE):
    """Soft bucket probabilities float32 [B, Hq, L, R] of queries q [B, Hq, 1, D]."""
    proj = torch.einsum("bhd,lpd->bhlp", q[:, :, 0].float(), planes_)
    logits = (torch.tanh(proj) / q.shape[-1] ** 0.5) @ corners(planes_.shape[1], q.device)
    return torch.softmax(logits / temperature, dim=-1)


def block_scores(probs, codes, value_norms, block_size: int = 64) -> torch.Tensor:
    """float32 [B, Hkv, ceil(T / block_size)]: per KV group, the sum over its query heads of the
    block's best key, max_t ||v_t|| * sum_l probs[l, code_l(t)]. probs [B, Hq, L, R], codes
    [B, Hkv, T, L], value_norms [B, Hkv, T]."""
    batch, hq, tables, buckets = probs.shape
    hkv, tokens = codes.shape[1], codes.shape[2]
    group = hq // hkv
    idx = codes.permute(0, 1, 3, 2).long()[:, :, None].expand(batch, hkv, group, tables, tokens)
    hits = torch.gather(probs.view(batch, hkv, group, tables, buckets), -1, idx)  # [..., L, T]
    scores = hits.sum(dim=3) * value_norms[:, :, None]  # [B, Hkv, G, T]
    n = -(-tokens // block_size)
    scores = torch.nn.functional.pad(scores, (0, n * block_size - tokens))  # scores are >= 0
    return scores.view(batch, hkv, group, n, block_size).amax(-1).sum(2).contiguous()


def score(q, k, layer_idx: int, state, v=None) -> torch.Tensor:
    """The registered decode scorer: block scores [B, Hkv, ceil(Tk / 64)] of the step's query q
    [B, Hq, 1, D] over keys k and values v [B, Hkv, Tk, D]. The keys' codes and value norms are
    kept on `state` per layer; a step one key past them hashes only the new key."""
    if v is None:
        raise ValueError("socket: the scorer needs the step's values (registered needs_values)")
    planes_ = hyperplanes(k.shape[-1], state.config.seed, k.device)
    layers = _KEYS.setdefault(state, {})
    num_keys = k.shape[2]
    # The codes belong to the layer's decode state: a prefill or chunk replaces that object (and
    # reset() drops it), so codes kept for another sequence are never reused.
    owner = state.layers.get(layer_idx)
    kept = layers.get(layer_idx)
    if (
        kept is not None
        and kept[2] is owner
        and kept[0].shape[2] == num_keys - 1
        and kept[0].shape[:2] == k.shape[:2]
    ):
        codes = torch.cat([kept[0], hash_keys(k[:, :, -1:], planes_)], dim=2)
        norms = torch.cat([kept[1], v[:, :, -1:].float().norm(dim=-1)], dim=2)
    else:  # a first step after a prefill, or keys this state has not seen: hash them all
        codes, norms = hash_keys(k, planes_), v.float().norm(dim=-1)
    layers[layer_idx] = (codes, norms, owner)
    return block_scores(query_probs(q, planes_), codes, norms, state.config.block_size)


def register() -> None:
    from . import scorers

    scorers.register_decode_scorer(NAME, score, needs_values=True, per_kv_group=True)
