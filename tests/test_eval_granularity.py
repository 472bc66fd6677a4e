"""eval/granularity.py, the key-block-width oracle of issue 21's granularity ablation: its block
rule on a hand-made mass, and its attention against dense causal attention (every candidate
kept) and against a float64 masked attention of its own rule (odd sizes: 200 and 65 tokens)."""

import types

import pytest
import torch
import torch.nn.functional as F

G = pytest.importorskip("eval.granularity")


def test_keep_mask_keeps_the_diagonal_the_sink_and_the_heaviest_candidates():
    # 4 query blocks of 64 over 256 tokens, key blocks of 16 (4 per query block).
    mass = torch.zeros(4, 16)
    mass[1, 2] = 1.0  # query block 1: candidates are key blocks 1..3; 2 the heaviest
    mass[2, 3] = 5.0  # query block 2: candidates are key blocks 1..7; 3 and 6 heaviest
    mass[2, 6] = 4.0
    keep = G.keep_mask(mass, 0, 256, 16, 2 / 7, dense_last=1)
    assert keep[0].nonzero().flatten().tolist() == [0, 1, 2, 3]  # the diagonal (and the sink)
    assert keep[1].nonzero().flatten().tolist() == [0, 2, 4, 5, 6, 7]  # 3 candidates x 2/7 -> 1
    assert keep[2].nonzero().flatten().tolist() == [0, 3, 6, 8, 9, 10, 11]
    assert keep[3].nonzero().flatten().tolist() == list(range(16))  # the last query block


def _attend(q, k, v, layer=2):
    module = types.SimpleNamespace(layer_idx=layer)
    out, weights = G.granularity_attention(module, q, k, v, None)
    assert weights is None and out.shape == (1, q.shape[2], q.shape[1], q.shape[3])
    return out.transpose(1, 2)


@pytest.mark.parametrize("tokens", [65, 200])
@pytest.mark.parametrize("key_block", [64, 32, 16])
def test_every_candidate_kept_is_dense_attention(tokens, key_block):
    G.SETTINGS.update(key_block=key_block, keep_frac=1.0, dense_layers=2, dense_last_q_blocks=0)
    q, k, v = (
        torch.randn(1, 4, tokens, 32),
        torch.randn(1, 2, tokens, 32),
        torch.randn(1, 2, tokens, 32),
    )
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(_attend(q, k, v), want, atol=1e-5, rtol=1e-5)
    assert G.LAST_DENSITY[2] == pytest.approx(1.0)


@pytest.mark.parametrize("key_block", [64, 16])
def test_sparse_attention_matches_its_float64_rule(key_block):
    tokens, keep_frac = 200, 0.5
    G.SETTINGS.update(
        key_block=key_block, keep_frac=keep_frac, dense_layers=2, dense_last_q_blocks=1
    )
    g = torch.Generator().manual_seed(key_block)
    q, k, v = (torch.randn(1, h, tokens, 16, generator=g) * 2 for h in (4, 2, 2))
    got = _attend(q, k, v)
    qd, kd, vd = (
        q[0].double(),
        k[0].double().repeat_interleave(2, 0),
        v[0].double().repeat_interleave(2, 0),
    )
    logits = qd @ kd.transpose(-1, -2) / 4.0
    causal = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    probs = torch.softmax(logits.masked_fill(~causal, float("-inf")), -1).sum(0)  # [T, T]
    nq, nk = -(-tokens // 64), -(-tokens // key_block)
    mass = torch.zeros(nq, nk, dtype=torch.float64)
    for t in range(tokens):
        for j in range(nk):
            mass[t // 64, j] += probs[t, j * key_block : (j + 1) * key_block].sum()
    keep = G.keep_mask(mass, 0, tokens, key_block, keep_frac, 1)
    allowed = (
        keep.repeat_interleave(64, 0)[:tokens].repeat_interleave(key_block, 1)[:, :tokens] & causal
    )
    want = torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1) @ vd
    torch.testing.assert_close(got[0].double(), want, atol=1e-5, rtol=1e-4)
    assert G.LAST_DENSITY[2] == pytest.approx(allowed.sum().item() / (tokens * (tokens + 1) / 2))
    assert G.LAST_DENSITY[2] < 1.0


def test_dense_layers_are_dense():
    G.SETTINGS.update(key_block=16, keep_frac=0.0, dense_layers=2, dense_last_q_blocks=0)
    q, k, v = torch.randn(1, 2, 130, 16), torch.randn(1, 2, 130, 16), torch.randn(1, 2, 130, 16)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(_attend(q, k, v, layer=1), want, atol=1e-5, rtol=1e-5)
    assert G.LAST_DENSITY[1] == 1.0
