"""bench/python/bench_serving.py runs end to end on the CPU (random weights, random prompts):
every request is answered, the bad ones are refused alone, no selection state is left."""

import json
import sys

import pytest

from conftest import device_params

pytest.importorskip("transformers.generation.continuous_batching")


@pytest.mark.parametrize("device", device_params())
def test_serving_bench_smoke(tmp_path, monkeypatch, device):
    from bench.python import bench_serving

    out = tmp_path / "serving"
    argv = "--random --requests 3 --min-tokens 64 --max-tokens 300 --new-tokens 4 --rate 0 "
    argv += "--max-batch-tokens 256 --page-size 64 --num-blocks 64 --faults "
    argv += "--cache-tokens-hint 4096 --drain-timeout 120 --methods sketchwalk "
    argv += f"--device {device} --out {out}"
    monkeypatch.setattr(sys, "argv", ["bench_serving", *argv.split()])
    bench_serving.main()
    result = json.loads(out.with_suffix(".json").read_text())
    (m,) = result["methods"]
    assert (m["requests"], m["finished"], m["lost"], m["states_left"]) == (3, 3, 0, [])
    assert m["generated_tokens"] == 12 and m["engine_alive_at_end"]
    # Recorded for both phases (None when nothing was); prompts this short keep about all.
    assert 0.0 < m["density"]["prefill"] <= 1.0 and 0.0 < m["density"]["decode"] <= 1.0
    assert "empty prompt" in m["faults"]["fault_empty"]["outcome"]
    assert "whole cache" in m["faults"]["fault_too_long"]["outcome"]
    # Cancelled when its first token streamed, long before its 64 tokens: dropped, not finished.
    cancel = m["faults"]["fault_cancel"]
    assert cancel["streamed"] >= 1 and cancel["outcome"].startswith("cancelled after"), cancel
    md = out.with_suffix(".md").read_text()
    assert "| sketchwalk |" in md and "fault_cancel: cancelled after" in md


def test_serving_bench_profiles_forwards_of_the_engine_thread(tmp_path, monkeypatch):
    from bench.python import bench_serving

    out = tmp_path / "serving"
    # 2 requests of 64-200 tokens and 12 new tokens each: at least 12 forwards, 1 + 10 profiled.
    argv = "--random --requests 2 --min-tokens 64 --max-tokens 200 --new-tokens 12 --rate 0 "
    argv += "--max-batch-tokens 256 --page-size 64 --num-blocks 64 --warmup-tokens 0 "
    argv += f"--methods sketchwalk --device cpu --profile --profile-skip 1 --out {out}"
    monkeypatch.setattr(sys, "argv", ["bench_serving", *argv.split()])
    bench_serving.main()
    text = (tmp_path / "serving_sketchwalk_profile.txt").read_text()
    assert "# sketchwalk: forwards 1..10 (10)" in text
    assert "sketchwalk::sparse_prefill_varlen" in text  # the step's one attention call
