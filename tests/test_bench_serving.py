"""bench/python/bench_serving.py runs end to end on the CPU (random weights, random prompts):
every request is answered, the bad ones are refused alone, no selection state is left."""

import json
import sys

import pytest

pytest.importorskip("transformers.generation.continuous_batching")


def test_serving_bench_smoke(tmp_path, monkeypatch):
    from bench.python import bench_serving

    out = tmp_path / "serving"
    argv = "--random --requests 3 --min-tokens 64 --max-tokens 300 --new-tokens 4 --rate 0 "
    argv += "--max-batch-tokens 256 --page-size 64 --num-blocks 64 --faults "
    argv += f"--cache-tokens-hint 4096 --drain-timeout 120 --methods sketchwalk --out {out}"
    monkeypatch.setattr(sys, "argv", ["bench_serving", *argv.split()])
    bench_serving.main()
    result = json.loads(out.with_suffix(".json").read_text())
    (m,) = result["methods"]
    assert (m["requests"], m["finished"], m["lost"], m["states_left"]) == (3, 3, 0, [])
    assert m["generated_tokens"] == 12 and m["engine_alive_at_end"]
    assert "empty prompt" in m["faults"]["fault_empty"]["outcome"]
    assert "whole cache" in m["faults"]["fault_too_long"]["outcome"]
    assert "| sketchwalk |" in out.with_suffix(".md").read_text()
