"""Is the 64-token key block the limit? (issue 21) An exact-ranking oracle whose key blocks are
`key_block` tokens wide (64, 32, 16), as a transformers attention implementation in plain
PyTorch: per 64-row query block, the exact causal attention mass of every key block (summed
over heads and rows) ranks the candidates, the top `keep_frac` of them are kept, and exact
attention runs under that token mask. Equal `keep_frac` keeps an equal share of tokens at every
granularity, so the rows compare rankings of finer blocks at the same density (recorded).

The rule (the package's shape, at any key-block width g dividing 64): per query block i (rows
64 i .. 64 i + 63), the key blocks over its own 64 tokens (the diagonal) and the first key block
(the sink) are kept; the candidates are the other key blocks before the diagonal, of which the
round(keep_frac x count) with the largest mass are kept; the last `dense_last_q_blocks` query
blocks and the first `dense_layers` layers are dense; causal inside the kept blocks. Whole
prompts only (perplexity: no cache, no padding, batch 1). CPU or GPU; it costs about two dense
attentions (the mass and the masked attention come from one product of q and k per 256 rows).

    from eval import granularity
    granularity.install(model, key_block=32, keep_frac=0.16)
    ... model(ids) ...; granularity.LAST_DENSITY   # {layer: kept fraction of the causal area}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "eval_granularity"
QUERY_BLOCK = 64
CHUNK_ROWS = 256  # query rows per product (a multiple of QUERY_BLOCK)

SETTINGS = dict(key_block=64, keep_frac=0.16, dense_layers=2, dense_last_q_blocks=4)
LAST_DENSITY: dict[int, float] = {}


def install(
    model, key_block: int, keep_frac: float, dense_layers: int = 2, dense_last_q_blocks: int = 4
):
    """Make `model` attend through this oracle (transformers' AttentionInterface)."""
    from transformers import AttentionInterface

    if key_block < 1 or QUERY_BLOCK % key_block:
        raise ValueError(f"key_block must divide {QUERY_BLOCK}, got {key_block}")
    if not 0.0 <= keep_frac <= 1.0:
        raise ValueError(f"keep_frac must lie in [0, 1], got {keep_frac}")
    SETTINGS.update(
        key_block=key_block,
        keep_frac=keep_frac,
        dense_layers=dense_layers,
        dense_last_q_blocks=dense_last_q_blocks,
    )
    AttentionInterface.register(NAME, granularity_attention)
    LAST_DENSITY.clear()
    model.set_attn_implementation(NAME)


def keep_mask(
    mass: torch.Tensor,
    first_block: int,
    num_tokens: int,
    key_block: int,
    keep_frac: float,
    dense_last: int,
) -> torch.Tensor:
    """Kept key blocks [q_blocks, num_key_blocks] (bool) of query blocks first_block ..
    first_block + q_blocks - 1 from their mass [q_blocks, num_key_blocks] (the rule above)."""
    q_blocks, nk = mass.shape
    per_q = QUERY_BLOCK // key_block
    total_q = -(-num_tokens // QUERY_BLOCK)
    keep = torch.zeros(q_blocks, nk, dtype=torch.bool, device=mass.device)
    for r in range(q_blocks):
        i = first_block + r
        diag = i * per_q  # first key block of the diagonal
        last = min(nk, diag + per_q)  # one past the last causal key block
        if i >= total_q - dense_last:
            keep[r, :last] = True
            continue
        keep[r, diag:last] = True
        keep[r, 0] = True
        candidates = torch.arange(1, max(1, diag), device=mass.device)
        count = round(keep_frac * candidates.numel())
        if count > 0:
            top = mass[r, candidates].topk(count).indices
            keep[r, candidates[top]] = True
    return keep


def granularity_attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
):
    """transformers attention: query [1, H, T, D], key / value [1, Hkv, T, D] -> ([1, T, H, D],
    None)."""
    layer = int(getattr(module, "layer_idx", 0))
    batch, heads, tokens, dim = query.shape
    if batch != 1 or key.shape[2] != tokens:
        raise NotImplementedError("eval.granularity runs whole prompts of batch 1 (perplexity)")
    scale = scaling if scaling is not None else dim**-0.5
    if layer < SETTINGS["dense_layers"]:
        out = F.scaled_dot_product_attention(
            query, key, value, is_causal=True, scale=scale, enable_gqa=True
        )
        LAST_DENSITY[layer] = 1.0
        return out.transpose(1, 2).contiguous(), None
    g = SETTINGS["key_block"]
    group = heads // key.shape[1]
    k = key[0].repeat_interleave(group, dim=0).float()  # [H, T, D]
    v = value[0].repeat_interleave(group, dim=0).float()
    q = query[0].float()
    nk = -(-tokens // g)
    out = torch.empty(heads, tokens, dim, dtype=torch.float32, device=query.device)
    keys = torch.arange(tokens, device=query.device)
    kept_pairs = 0
    for start in range(0, tokens, CHUNK_ROWS):
        stop = min(tokens, start + CHUNK_ROWS)
        rows = torch.arange(start, stop, device=query.device)
        logits = torch.matmul(q[:, start:stop], k.transpose(-1, -2)) * scale  # [H, rows, T]
        causal = keys[None, :] <= rows[:, None]  # [rows, T]
        logits.masked_fill_(~causal, float("-inf"))
        probs = torch.softmax(logits, dim=-1).sum(0)  # [rows, T], summed over heads
        q_blocks = -(-(stop - start) // QUERY_BLOCK)
        pad_rows = q_blocks * QUERY_BLOCK - (stop - start)
        pad_keys = nk * g - tokens
        mass = (
            F.pad(probs, (0, pad_keys, 0, pad_rows)).view(q_blocks, QUERY_BLOCK, nk, g).sum((1, 3))
        )
        keep = keep_mask(
            mass,
            start // QUERY_BLOCK,
            tokens,
            g,
            SETTINGS["keep_frac"],
            SETTINGS["dense_last_q_blocks"],
        )
        token_keep = keep.repeat_interleave(QUERY_BLOCK, 0)[: stop - start].repeat_interleave(g, 1)[
            :, :tokens
        ]
        allowed = token_keep & causal
        kept_pairs += int(allowed.sum())
        logits.masked_fill_(~allowed, float("-inf"))
        out[:, start:stop] = torch.matmul(torch.softmax(logits, dim=-1), v)
    LAST_DENSITY[layer] = kept_pairs / (tokens * (tokens + 1) / 2)
    return out.to(query.dtype).transpose(0, 1)[None].contiguous(), None
