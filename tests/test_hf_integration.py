"""attn_implementation="sketchwalk" in Hugging Face transformers (integrations/hf.py).

Tiny random-weight Llama / Qwen2 / Mistral models built from configs (no downloads),
640-token prompts (10 blocks of 64):
logits equal SDPA's at full density (every causal block kept), greedy and sampled
generate() run through prefill and decode, left-padded rows equal the same rows run
alone, a new prompt starts a new walk, and unsupported cache use raises.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from utils import B as BLOCK  # the one block-size constant

transformers = pytest.importorskip("transformers")
sketchwalk = pytest.importorskip("sketchwalk")
hf = pytest.importorskip("sketchwalk.integrations.hf")

ARCHS = ["llama", "qwen2", "mistral"]
VOCAB = 256

PROMPT_LEN = 640  # 10 blocks: enough candidates for the selection to drop some
NEW_TOKENS = 6


def tiny_config(arch: str):
    common = dict(
        vocab_size=VOCAB,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,  # head_dim 64
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=None,
        bos_token_id=1,
    )
    if arch == "llama":
        return transformers.LlamaConfig(**common)
    if arch == "qwen2":
        return transformers.Qwen2Config(**common, use_sliding_window=False)
    if arch == "mistral":
        return transformers.MistralConfig(**common, sliding_window=None)
    raise ValueError(arch)


def make_pair(arch: str, device: str = "cpu", dtype=torch.float32):
    """(sdpa model, sketchwalk model) with identical random weights. Each model gets a config
    object of its own: transformers 5.2x keeps the object it is given, and configure() writes
    to it, so one shared config would switch the dense model to sketchwalk as well."""
    dense = transformers.AutoModelForCausalLM.from_config(
        tiny_config(arch), attn_implementation="sdpa"
    )
    dense = dense.to(device=device, dtype=dtype).eval()
    sparse = transformers.AutoModelForCausalLM.from_config(
        tiny_config(arch), attn_implementation="sdpa"
    )
    sparse.load_state_dict(dense.state_dict())
    sparse = sparse.to(device=device, dtype=dtype).eval()
    return dense, sparse


def sparse_config(**overrides):
    base = sketchwalk.SketchWalkConfig(block_size=BLOCK, dense_layers=1, dense_last_q_blocks=2)
    return dataclasses.replace(base, **overrides)


def full_density_config():
    # A window as long as the sequence keeps every causal block (and token) in prefill
    # and in decode (the decode knobs too), whatever the walk scores are.
    return sparse_config(
        kblocks_frac=1.0,
        window_frac=1.0,
        sink_frac=1.0,
        decode_kblocks_frac=1.0,
        decode_window_frac=1.0,
        decode_sink_frac=1.0,
    )


def prompts(batch: int, length: int, device: str = "cpu") -> torch.Tensor:
    return torch.randint(2, VOCAB, (batch, length), device=device)


def left_pad(ids: torch.Tensor, pads: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = ids.clone()
    mask = torch.ones_like(ids)
    for row, pad in enumerate(pads):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return ids, mask


def test_registered():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    assert hf.ATTN_IMPLEMENTATION in AttentionInterface._global_mapping
    assert hf.ATTN_IMPLEMENTATION in AttentionMaskInterface._global_mapping


def test_configure_stores_config_on_model():
    _, model = make_pair("llama")
    cfg = hf.configure(model, sparse_config(), kblocks_frac=0.3)
    assert model.config._attn_implementation == "sketchwalk"
    assert model.config.sketchwalk_config["kblocks_frac"] == 0.3
    assert hf.get_config(model) == cfg
    assert isinstance(model.config.to_dict()["sketchwalk_config"], dict)  # JSON-serializable


@pytest.mark.parametrize("arch", ARCHS)
def test_full_density_logits_match_sdpa(arch):
    dense, sparse = make_pair(arch)
    assert dense.config is not sparse.config
    hf.configure(sparse, full_density_config())
    ids = prompts(2, PROMPT_LEN)
    with torch.no_grad():
        expected = dense(ids).logits
        actual = sparse(ids).logits
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
    density = hf.last_density(sparse)
    assert density, "the package recorded no density"
    for layer, value in density.items():
        assert value == pytest.approx(1.0), f"layer {layer} kept {value}"


@pytest.mark.parametrize("arch", ARCHS)
def test_full_density_generate_matches_sdpa_left_padded(arch):
    dense, sparse = make_pair(arch)
    hf.configure(sparse, full_density_config())
    ids, mask = left_pad(prompts(2, PROMPT_LEN), [0, 150])
    kw = dict(attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        expected = dense.generate(ids, **kw)
        actual = sparse.generate(ids, **kw)
        # Logits of the real (non-pad) positions also match.
        lg_dense = dense(ids, attention_mask=mask).logits
        lg_sparse = sparse(ids, attention_mask=mask).logits
    assert torch.equal(actual, expected), f"\n{actual[:, PROMPT_LEN:]}\n{expected[:, PROMPT_LEN:]}"
    real = mask.bool()
    torch.testing.assert_close(lg_sparse[real], lg_dense[real], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_sparse_generate_greedy_and_sampling(arch):
    _, model = make_pair(arch)
    hf.configure(model, sparse_config())
    ids = prompts(1, PROMPT_LEN)
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        density = hf.last_density(model)
        decode_density = hf.last_density(model, "decode")
        torch.manual_seed(0)
        sampled = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=True, top_k=20)
    assert greedy.shape == (1, PROMPT_LEN + NEW_TOKENS)
    assert sampled.shape == (1, PROMPT_LEN + NEW_TOKENS)
    sparse_layers = [d for layer, d in density.items() if layer >= 1]
    assert sparse_layers and all(0.0 < d < 1.0 for d in sparse_layers), density
    assert decode_density, "decode steps recorded no density"


@pytest.mark.parametrize("arch", ARCHS)
def test_left_padded_rows_equal_rows_alone(arch):
    """Padding is sliced away: each row of a left-padded batch generates exactly what it
    generates alone (same walk, same selection)."""
    _, model = make_pair(arch)
    hf.configure(model, sparse_config())
    base = prompts(2, PROMPT_LEN)
    pads = [0, 130]
    ids, mask = left_pad(base, pads)
    kw = dict(max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        batched = model.generate(ids, attention_mask=mask, **kw)
        alone = [model.generate(base[row : row + 1, pad:], **kw) for row, pad in enumerate(pads)]
    for row in range(2):
        assert torch.equal(batched[row, PROMPT_LEN:], alone[row][0, -NEW_TOKENS:]), row


def test_left_padded_prefill_is_one_ragged_call_per_layer(monkeypatch):
    """The prefill of a padded batch runs as one ragged step per layer, and its decode steps as
    one batched call per op (no row loop in either)."""
    import sketchwalk

    _, model = make_pair("llama")
    hf.configure(model, sparse_config())
    calls = []
    real = sketchwalk.sketchwalk_attention_varlen

    def counting(q, k, v, layer_idx, states, plan):
        calls.append((layer_idx, plan.phases(), q.shape[0]))
        return real(q, k, v, layer_idx, states, plan)

    monkeypatch.setattr(sketchwalk, "sketchwalk_attention_varlen", counting)
    rows = []
    single = sketchwalk.sketchwalk_attention
    monkeypatch.setattr(
        sketchwalk, "sketchwalk_attention", lambda *a, **kw: rows.append(1) or single(*a, **kw)
    )
    base = prompts(2, PROMPT_LEN)
    ids, mask = left_pad(base, [0, 130])
    with torch.no_grad():
        model.generate(ids, attention_mask=mask, max_new_tokens=3, do_sample=False, pad_token_id=0)
    layers = model.config.num_hidden_layers
    assert [c[0] for c in calls] == list(range(layers))
    assert all(c[1] == ("prefill", "prefill") and c[2] == 2 * PROMPT_LEN - 130 for c in calls)
    assert not rows, "decode steps of a padded batch ran row by row"
    assert hf.last_density(model, "decode")


def test_dense_decode_after_sparse_prefill():
    """sparse_decode=False: decode steps attend densely (density 1.0), padding still sliced."""
    _, model = make_pair("llama")
    hf.configure(model, sparse_config(), sparse_decode=False)
    base = prompts(2, PROMPT_LEN)
    pads = [0, 130]
    ids, mask = left_pad(base, pads)
    kw = dict(max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        batched = model.generate(ids, attention_mask=mask, **kw)
        decode_density = hf.last_density(model, "decode")
        alone = model.generate(base[1:, pads[1] :], **kw)
    assert decode_density and all(d == 1.0 for d in decode_density.values()), decode_density
    assert torch.equal(batched[1, PROMPT_LEN:], alone[0, -NEW_TOKENS:])


def test_new_prompt_starts_a_new_walk():
    _, model = make_pair("llama")
    hf.configure(model, sparse_config())
    first, second = prompts(1, PROMPT_LEN), prompts(1, PROMPT_LEN + 17)
    kw = dict(max_new_tokens=NEW_TOKENS, do_sample=False)
    with torch.no_grad():
        model.generate(first, **kw)
        after_first = model.generate(second, **kw)
        hf.reset(model)
        fresh = model.generate(second, **kw)
    assert torch.equal(after_first, fresh)


def test_chunked_prefill_at_full_density_matches_sdpa():
    """A prompt fed in two chunks over the cache, then greedy decode: at full density the logits
    and tokens equal SDPA's (every causal block kept by the chunk rule too)."""
    dense, sparse = make_pair("llama")
    hf.configure(sparse, full_density_config())
    ids = prompts(1, PROMPT_LEN)
    with torch.no_grad():
        want = dense(ids).logits
        first = sparse(ids[:, :400], use_cache=True)
        second = sparse(ids[:, 400:], past_key_values=first.past_key_values, use_cache=True)
    got = torch.cat([first.logits, second.logits], dim=1)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert all(d == pytest.approx(1.0) for d in hf.last_density(sparse).values())


def test_decode_after_a_prefill_without_a_cache_object():
    """A prefill run with use_cache and no cache given binds none; its next step (one token on
    the cache it returned) is a decode step of the same sequence, not a new chunk."""
    _, model = make_pair("llama")
    hf.configure(model, sparse_config())
    ids = prompts(1, PROMPT_LEN)
    with torch.no_grad():
        out = model(ids, use_cache=True)
        prefill = hf.last_density(model)
        model(out.logits[:, -1:].argmax(-1), past_key_values=out.past_key_values, use_cache=True)
    assert hf.last_density(model) == prefill  # a chunk would have replaced the prefill's
    assert hf.last_density(model, "decode")


def test_chunked_prefill_then_generate_sparse():
    """Chunks at the default knobs: sparse (density below 1 in the sparse layers), then decode
    steps continue the same sequence."""
    _, model = make_pair("llama")
    hf.configure(model, sparse_config())
    ids = prompts(1, PROMPT_LEN)
    with torch.no_grad():
        out = model(ids[:, :256], use_cache=True)
        out = model(ids[:, 256:], past_key_values=out.past_key_values, use_cache=True)
        density = hf.last_density(model)
        cache = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        for _ in range(3):
            out = model(nxt, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
    assert any(0.0 < d < 1.0 for layer, d in density.items() if layer >= 1), density
    assert hf.last_density(model, "decode")


def test_generate_reusing_a_cache_across_prompts():
    """generate() on a longer prompt with the cache of its prefix (cache reuse): the new tokens
    are a chunk over fresh states; at full density the output equals SDPA's with the same reuse."""
    import copy

    dense, sparse = make_pair("llama")
    hf.configure(sparse, full_density_config())
    ids = prompts(1, PROMPT_LEN)
    kw = dict(max_new_tokens=NEW_TOKENS, do_sample=False)
    with torch.no_grad():
        prefix_d = dense(ids[:, :300], use_cache=True).past_key_values
        prefix_s = sparse(ids[:, :300], use_cache=True).past_key_values
        sparse(prompts(1, 200))  # another sequence in between: the states move on
        want = dense.generate(ids, past_key_values=copy.deepcopy(prefix_d), **kw)
        got = sparse.generate(ids, past_key_values=copy.deepcopy(prefix_s), **kw)
    assert torch.equal(got, want)


def test_right_padding_raises():
    _, model = make_pair("llama")
    hf.configure(model, sparse_config())
    ids = prompts(2, PROMPT_LEN)
    mask = torch.ones_like(ids)
    mask[1, -10:] = 0
    with torch.no_grad(), pytest.raises(NotImplementedError, match="left padding"):
        model(ids, attention_mask=mask)


@pytest.mark.gpu
@pytest.mark.parametrize("arch", ARCHS)
def test_full_density_logits_match_sdpa_cuda_bf16(arch):
    dense, sparse = make_pair(arch, device="cuda", dtype=torch.bfloat16)
    hf.configure(sparse, full_density_config())
    ids = prompts(2, PROMPT_LEN, device="cuda")
    with torch.no_grad():
        expected = dense(ids).logits.float()
        actual = sparse(ids).logits.float()
    # bf16: both paths round differently; compare against the logit scale.
    err = (actual - expected).abs().max().item()
    assert err <= 0.05 * expected.abs().max().item(), err


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_static_cache_generate_matches_dynamic(arch):
    # A fixed-capacity cache: prefill from the first slots, decode lengths from position_ids on
    # the device. Same tokens and densities as the dynamic cache.
    _, sparse = make_pair(arch)
    hf.configure(sparse, sparse_config())
    ids = prompts(2, PROMPT_LEN)
    dynamic = sparse.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    dynamic_density = hf.last_density(sparse, "decode")
    static = sparse.generate(
        ids, max_new_tokens=NEW_TOKENS, do_sample=False, cache_implementation="static"
    )
    assert torch.equal(static, dynamic)
    static_density = hf.last_density(sparse, "decode")
    assert static_density.keys() == dynamic_density.keys() and static_density
    for layer, d in dynamic_density.items():
        assert static_density[layer] == pytest.approx(d, rel=1e-9), f"layer {layer}"


@pytest.mark.parametrize("first", ["static", "dynamic"])
def test_static_cache_without_configure(first):
    """The README's lines as written: a model switched to "sketchwalk" without configure() (no
    hook records the cache) still tells a fixed-capacity cache's empty slots from keys, whether
    the static generate comes first or after a dynamic one, and gives the dynamic tokens."""
    _, model = make_pair("llama")
    model.set_attn_implementation("sketchwalk")
    ids = prompts(1, 100)
    kw = dict(max_new_tokens=NEW_TOKENS, do_sample=False)
    with torch.no_grad():
        if first == "static":
            static = model.generate(ids, cache_implementation="static", **kw)
            dynamic = model.generate(ids, **kw)
        else:
            dynamic = model.generate(ids, **kw)
            static = model.generate(ids, cache_implementation="static", **kw)
    assert torch.equal(static, dynamic)


def test_static_cache_needs_keys4():
    _, sparse = make_pair("llama")
    hf.configure(sparse, sparse_config(decode_scorer="walk"))
    with pytest.raises(NotImplementedError, match="keys4"):
        sparse.generate(
            prompts(1, PROMPT_LEN), max_new_tokens=2, do_sample=False, cache_implementation="static"
        )


def test_unsupported_head_dim_refused_at_configure():
    cfg = tiny_config("llama")
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 8, 2, 32
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    with pytest.raises(ValueError, match="head_dim 32"):
        hf.configure(model, sparse_config())


def test_import_does_not_import_transformers_and_registers_after():
    import subprocess
    import sys

    code = (
        "import sys, sketchwalk; assert 'transformers' not in sys.modules, 'imported'; "
        "from transformers import AttentionInterface; "
        "assert 'sketchwalk' in AttentionInterface._global_mapping, 'not registered'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_static_cache_dense_decode_reports_full_density():
    _, sparse = make_pair("llama")
    hf.configure(sparse, sparse_config(), sparse_decode=False)
    sparse.generate(
        prompts(1, PROMPT_LEN), max_new_tokens=3, do_sample=False, cache_implementation="static"
    )
    decode = hf.last_density(sparse, "decode")
    assert decode and all(v == pytest.approx(1.0) for v in decode.values())
