"""Sketch&Walk inside transformers' continuous batching (integrations/hf_serving.py), on the CPU
with a small random Llama: every block kept, it answers token for token as dense SDPA through
the same engine (chunked prefill, a one-token prompt, decode rows mixed with prefill rows);
sparse, each request answers as it does alone through the single-sequence path; the requests'
selection states are freed when they finish or are cancelled; bad settings are refused."""

import dataclasses
import threading

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.generation.continuous_batching")

import sketchwalk  # noqa: E402
from conftest import device_params  # noqa: E402
from sketchwalk.integrations import hf_serving  # noqa: E402
from utils import tiny_llama  # noqa: E402

LENS = (300, 70, 1, 650)  # 300 and 650 cross the 256-token batches: chunked prefill


@pytest.fixture(scope="module")
def model():
    """float32 on the CPU: the token-for-token comparisons with dense SDPA and with the
    single-sequence path (on CUDA the kernels take 16-bit inputs, where greedy tokens of a random
    model may flip between two correct kernels; the CUDA kernels are checked against the float64
    reference in their own tests)."""
    return tiny_llama()


@pytest.fixture(scope="module", params=device_params())
def served_model(request):
    """The engine's request handling on each device (bfloat16 on CUDA, as served)."""
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device")
        return tiny_llama("cuda", torch.bfloat16)
    return tiny_llama()


def prompts():
    g = torch.Generator().manual_seed(1)
    return [torch.randint(1, 128, (n,), generator=g).tolist() for n in LENS]


def gen_config(new_tokens=4):
    return transformers.GenerationConfig(
        max_new_tokens=new_tokens, do_sample=False, eos_token_id=-1, pad_token_id=0
    )


def engine(**overrides):
    return {**dict(max_batch_tokens=256, num_blocks=64, page_size=64), **overrides}


def run_batch(model, cb_config, ins=None):
    out = model.generate_batch(
        ins or prompts(),
        generation_config=gen_config(),
        continuous_batching_config=cb_config,
        progress_bar=False,
    )
    return {k: o.generated_tokens for k, o in out.items()}


def test_every_block_kept_answers_as_dense_sdpa(model, monkeypatch):
    model.set_attn_implementation("sdpa")  # the engine's dense path, same settings otherwise
    dense_cb = dataclasses.replace(hf_serving.serving_config(**engine()), scheduler_type="fifo")
    dense = run_batch(model, dense_cb)
    keep_all = sketchwalk.SketchWalkConfig(window_frac=1.0, decode_window_frac=1.0, dense_layers=0)

    def device_read(kwargs):  # the rows' lengths come from the scheduler, not the device
        raise AssertionError("cu_seq_lens read from the device")

    monkeypatch.setattr(hf_serving, "_packed_lengths", device_read)
    got = run_batch(model, hf_serving.enable(model, keep_all, **engine()))
    assert got == dense
    assert hf_serving.active_requests() == []  # every request's state freed when it finished


@pytest.mark.parametrize("decode_pool", [True, False])
def test_sparse_requests_answer_as_alone(model, decode_pool, monkeypatch):
    # One step holds every prompt (no chunks), so each request's selection is its own prefill's;
    # with or without the decode pool (decode_pool.py), the same tokens.
    from sketchwalk.decode_pool import Keys4DecodePool

    pooled_steps = []
    stacked = Keys4DecodePool.stacked
    monkeypatch.setattr(
        Keys4DecodePool, "stacked", lambda *a: pooled_steps.append(1) or stacked(*a)
    )
    cfg = sketchwalk.SketchWalkConfig(kblocks_frac=0.1, dense_layers=1)
    cb = hf_serving.enable(model, cfg, decode_pool=decode_pool, **engine(max_batch_tokens=2048))
    together = run_batch(model, cb)
    hf_serving.enable(model, cfg)  # (the pool back on for the tests after this one)
    assert bool(pooled_steps) == decode_pool
    for i, ids in enumerate(prompts()):
        alone = model.generate(
            torch.tensor([ids], device=model.device),
            generation_config=gen_config(),
            attention_mask=None,
        )[0, len(ids) :].tolist()
        assert together[f"req_{i}"] == alone, i
    assert hf_serving.active_requests() == []


def test_cancelled_request_is_freed_and_the_others_are_served(served_model):
    cfg = sketchwalk.SketchWalkConfig(kblocks_frac=0.1)
    cb = hf_serving.enable(served_model, cfg, **engine())
    manager = served_model.init_continuous_batching(
        generation_config=gen_config(new_tokens=40), continuous_batching_config=cb
    )
    manager.start()
    try:
        ids = [manager.add_request(p, max_new_tokens=40) for p in prompts()]
        for _ in range(600):  # cancel request 3 once it holds a selection state (running)
            if ids[3] in hf_serving.active_requests():
                break
            threading.Event().wait(0.05)
        assert ids[3] in hf_serving.active_requests()
        manager.cancel_request(ids[3])
        done, deadline = {}, threading.Event()
        timer = threading.Timer(300, deadline.set)
        timer.start()
        while len(done) < 3 and not deadline.is_set():
            result = manager.get_result(timeout=1.0)
            if result is not None and result.is_finished():
                done[result.request_id] = result
        timer.cancel()
        assert set(ids[:3]) <= set(done), f"served {sorted(done)}"
        assert all(len(done[i].generated_tokens) == 40 for i in ids[:3])
    finally:
        manager.stop(block=True)
    assert hf_serving.active_requests() == []


def test_bad_settings_are_refused(model):
    for bad in (dict(use_cuda_graph=True), dict(allow_block_sharing=True)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            hf_serving.serving_config(**bad)
    with pytest.raises(ValueError, match="scheduler_type"):
        hf_serving.serving_config(scheduler_type="fifo")
    with pytest.raises(ValueError, match="no field"):
        hf_serving.serving_config(not_a_field=1)
    with pytest.raises(ValueError, match="cpu_offload_space"):
        hf_serving.serving_config(cpu_offload_space=1.0)
    with pytest.raises(ValueError, match="decode_scorer"):
        hf_serving.enable(model, sketchwalk.SketchWalkConfig.paper())
    with pytest.raises(NotImplementedError, match="sparse_decode"):
        hf_serving.enable(model, sparse_decode=False)
    # A float32 model on CUDA is refused before the engine starts (its step would fail inside
    # the engine's loop and end every request in flight); CPU float32 and CUDA 16-bit pass.
    with pytest.raises(ValueError, match="float16 or bfloat16.*--dtype bfloat16"):
        hf_serving.check_model_dtype(torch.device("cuda", 0), torch.float32)
    hf_serving.check_model_dtype(torch.device("cuda"), torch.bfloat16)
    hf_serving.check_model_dtype(torch.device("cpu"), torch.float32)
    q = torch.zeros(1, 4, 2, 64)
    kv = torch.zeros(1, 2, 2, 64)
    kwargs = dict(cu_seq_lens_q=torch.tensor([0, 2]), block_table=torch.zeros(1, 1))
    hf_serving.enable(model)  # (the refusals above may leave another config on the model)
    attn = model.model.layers[0].self_attn
    with pytest.raises(NotImplementedError, match="block table"):
        hf_serving.cb_attention(attn, q, kv, kv, kwargs)


def test_bad_requests_fail_alone_and_the_others_are_served(served_model):
    cb = hf_serving.enable(served_model, sketchwalk.SketchWalkConfig(kblocks_frac=0.1), **engine())
    manager = served_model.init_continuous_batching(
        generation_config=gen_config(), continuous_batching_config=cb
    )
    capacity = 64 * 64  # num_blocks x page_size of engine(): the whole cache, in tokens
    manager.start()
    try:
        good = [manager.add_request(p, max_new_tokens=4) for p in prompts()[:2]]
        manager.add_request([], request_id="empty", max_new_tokens=4)
        manager.add_request([5] * capacity, request_id="too_long", max_new_tokens=4)
        done = {}
        for _ in range(600):
            r = manager.get_result(timeout=0.5)
            if r is not None and r.is_finished():
                done[r.request_id] = r
            if len(done) == 4:
                break
    finally:
        manager.stop(block=True)
    assert "empty prompt" in done["empty"].error
    assert "more than the whole cache holds" in done["too_long"].error
    assert all(done[g].error is None and len(done[g].generated_tokens) == 4 for g in good)
    assert hf_serving.active_requests() == []


def test_several_sequences_per_request_are_refused_alone(served_model):
    cb = hf_serving.enable(served_model, sketchwalk.SketchWalkConfig(kblocks_frac=0.1), **engine())
    gen = transformers.GenerationConfig(
        max_new_tokens=4, do_sample=True, num_return_sequences=2, eos_token_id=-1, pad_token_id=0
    )
    manager = served_model.init_continuous_batching(
        generation_config=gen, continuous_batching_config=cb
    )
    manager.start()
    try:
        rid = manager.add_request(prompts()[1], max_new_tokens=4)
        result = None
        for _ in range(120):
            result = manager.get_result(timeout=0.5)
            if result is not None and result.request_id == rid:
                break
    finally:
        manager.stop(block=True)
    assert result is not None and "several sequences" in (result.error or "")
    assert hf_serving.active_requests() == []
