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


def test_faults_land_mid_run_of_a_short_sustained_run():
    # 150 s at 0.2/s is 31 arrivals: the faults go after the 15th, not after half of the 64
    # prompts (an arrival the run never reached: a 150 s run on an H200 injected none).
    from types import SimpleNamespace

    from bench.python import bench_serving

    args = SimpleNamespace(duration=150.0, rate=0.2)
    assert bench_serving.fault_arrival(args, 64) == 15
    assert bench_serving.fault_arrival(SimpleNamespace(duration=0.0, rate=0.0), 64) == 32
    assert bench_serving.fault_arrival(SimpleNamespace(duration=1.0, rate=0.5), 64) == 1


def test_results_are_taken_while_waiting_for_the_next_arrival():
    """The fault request is cancelled as soon as its first token streams, even when the next
    arrival is seconds away (a 620 s run at 0.2/s once saw the cancel land 11 tokens late)."""
    import time
    from types import SimpleNamespace

    from bench.python import bench_serving

    streamed = SimpleNamespace(
        request_id=bench_serving.CANCEL_ID, generated_tokens=[7], is_finished=lambda: False
    )

    class Manager:
        def __init__(self):
            self.pending, self.cancelled_at = [streamed], None

        def get_result(self, timeout):
            if self.pending:
                return self.pending.pop()
            time.sleep(timeout)
            return None

        def cancel_request(self, rid):
            self.cancelled_at = time.perf_counter()

        def is_running(self):
            return True

    manager, faults = Manager(), {bench_serving.CANCEL_ID: dict(submitted=True)}
    start = time.perf_counter()
    bench_serving.collect_until(start + 0.5, {}, faults, manager, poll_s=0.01)
    assert time.perf_counter() >= start + 0.5  # waited for the arrival
    assert manager.cancelled_at is not None and manager.cancelled_at - start < 0.25
    assert faults[bench_serving.CANCEL_ID]["streamed"] == 1
