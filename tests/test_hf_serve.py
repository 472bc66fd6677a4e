"""`python -m sketchwalk serve` (integrations/hf_serve.py): transformers serve's OpenAI-compatible
server with Sketch&Walk, started as a user would, on a tiny random Llama saved with a word-level
tokenizer; an OpenAI client's completions are answered, by the Sketch&Walk engine (its log line;
under transformers 5.25 the engine runs in a spawned process, which the launcher must reach too)."""

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

transformers = pytest.importorskip("transformers")
for _name in ("fastapi", "uvicorn", "openai", "transformers.cli.serve"):
    pytest.importorskip(_name)
import openai  # noqa: E402

from sketchwalk.integrations import hf_serve  # noqa: E402
from utils import tiny_llama  # noqa: E402


def tiny_model_dir(path) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "[PAD]", "[EOS]"] + [f"w{i}" for i in range(125)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    tiny_llama(max_position_embeddings=4096, eos_token_id=2, pad_token_id=1).save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_serve_answers_openai_completions_with_sketchwalk(tmp_path):
    model = tiny_model_dir(tmp_path / "model")
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    cmd = [sys.executable, "-m", "sketchwalk", "serve", model, "--device", "cpu"]
    cmd += ["--port", str(port), "--cb-num-blocks", "64", "--cb-block-size", "64"]
    cmd += ["--cb-max-batch-tokens", "256", "--sketchwalk-config", '{"kblocks_frac": 0.1}']
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while True:  # until the server listens
            assert server.poll() is None, open(tmp_path / "serve.log").read()[-3000:]
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.5)
        client = openai.OpenAI(base_url=f"http://localhost:{port}/v1", api_key="unused")
        # 700 tokens: chunked over the 256-token steps, past the dense prefix and the window.
        prompts = [" ".join(f"w{(i * s) % 120 + 3}" for i in range(700)) for s in (7, 11)]

        def complete(prompt):
            return client.completions.create(
                model=model, prompt=prompt, max_tokens=5, temperature=0, timeout=120
            )

        with ThreadPoolExecutor(2) as pool:  # two requests at once: one continuous batch
            answers = list(pool.map(complete, prompts))
        for a in answers:
            assert a.usage.completion_tokens == 5 and a.usage.prompt_tokens == 700
            assert len(a.choices[0].text.split()) == 5
    finally:
        server.terminate()
        server.wait(timeout=60)
    text = open(tmp_path / "serve.log").read()
    assert "serves with Sketch&Walk ({'kblocks_frac': 0.1})" in text, text[-3000:]


def test_serve_refuses_what_sketchwalk_cannot_run():
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    with pytest.raises(ValueError, match="use_cuda_graph"):
        hf_serve.serving_config_from(ContinuousBatchingConfig(use_cuda_graph=True))
    cb = hf_serve.serving_config_from(ContinuousBatchingConfig(max_batch_tokens=123))
    assert cb.max_batch_tokens == 123 and cb.scheduler_type == "sketchwalk"
    with pytest.raises(SystemExit):
        hf_serve.main(["model", "--attn-implementation", "sdpa"])
    for bad in ("[1]", '{"no_such_field": 1}', '{"kblocks_frac": 2.0}'):
        with pytest.raises(SystemExit):  # argparse's error, naming --sketchwalk-config
            hf_serve.main(["model", "--sketchwalk-config", bad])
