"""Serving under load (issue 22): requests arriving at a fixed rate into transformers' continuous
batching, Sketch&Walk against the dense path of the same engine, same model and settings.

Each request is a needle in a haystack (examples/demo.py's prompt) with a key and value of its
own, so an answer is checked (its value in the output) and a crossed one is caught (another
request's value in it). Per method: output throughput (generated tokens per second, first arrival
to last finish), time to first token and time per output token (p50, p99; from the engine's
per-token timestamps), answers correct / crossed / lost, GPU memory over time (allocated,
sampled every 0.5 s; its peak against its value after the first minute) and the selection states
left when the run ends (hf_serving.active_requests(): must be none). `--faults` adds a request too
long for the cache, an empty one and one cancelled mid-stream. `--duration S` keeps submitting at
the rate for S seconds (the sustained run), cycling through the prompts.

    # GPU, from the repository root (model from examples/assets.py or a GGUF):
    python -m bench.python.bench_serving --gguf /tmp/models/.../model.gguf --requests 64 \\
        --min-tokens 4096 --max-tokens 32768 --new-tokens 32 --rate 1 --methods dense,sketchwalk
    # CPU smoke test (random weights, random token prompts: answers not checked):
    python -m bench.python.bench_serving --random --requests 6 --min-tokens 64 --max-tokens 700

Methods: "dense" is the engine's own "sdpa" path; "sketchwalk" the defaults;
"sketchwalk_keep_all" keeps every block (our kernels at density 1: the cost of the path itself);
"sketchwalk_stacked" the defaults with the decode sequences' 4-bit keys stacked anew in every
layer and step instead of pooled (what the pool saves; same selection).
Both run with CUDA graphs and asynchronous batching off (Sketch&Walk needs them off:
integrations/hf_serving.py), the same page size, batch-token budget and cache size.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import threading
import time
from pathlib import Path

import torch

import sketchwalk
from bench.python.commit import git_commit
from sketchwalk.integrations import hf_serving

KEYS = ("lucky-falcon", "quiet-harbor", "amber-violin", "brisk-meadow", "silver-canyon")


def load(args):
    """(model, tokenizer or None, name) on args.device."""
    import transformers

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    if args.random:
        torch.manual_seed(0)
        cfg = transformers.LlamaConfig(
            vocab_size=256,
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=65536,
        )
        return transformers.LlamaForCausalLM(cfg).to(args.device, dtype).eval(), None, "random"
    from examples import assets

    if args.gguf:
        model, tok = assets.load_gguf(args.gguf, dtype=dtype, device=args.device)
        return model, tok, assets.model_name_for_gguf(args.gguf)
    model, tok = assets.load_model(args.model, dtype=dtype, device=args.device)
    return model, tok, args.model


def make_requests(args, tok) -> list[dict]:
    """Prompt token ids (and text) with their needle (key, value); lengths uniform in [min,
    max]. Also used by bench_serve_http.py (args: requests, min_tokens, max_tokens, seed)."""
    from examples import demo

    rng = random.Random(args.seed)
    out = []
    for i in range(args.requests):
        n = rng.randint(args.min_tokens, args.max_tokens)
        key, value = rng.choice(KEYS), str(rng.randint(1_000_000, 9_999_999))
        text = None
        if tok is None:
            ids = [rng.randrange(1, 256) for _ in range(n)]
        else:
            text = demo.build_prompt(tok, n, rng.uniform(0.05, 0.95), key, value)
            ids = tok(text, add_special_tokens=False).input_ids
        out.append(dict(id=f"r{i}", ids=ids, text=text, key=key, value=value))
    return out


def cb_config(args, method: str, model):
    common = dict(
        max_batch_tokens=args.max_batch_tokens,
        page_size=args.page_size,
        **({"num_blocks": args.num_blocks} if args.num_blocks else {}),
    )
    if method == "dense":  # the engine's own path, with the settings Sketch&Walk runs under
        import dataclasses

        model.set_attn_implementation("sdpa")
        cfg = hf_serving.serving_config(**common)
        return dataclasses.replace(cfg, scheduler_type="fifo")
    knobs = dict(window_frac=1.0, decode_window_frac=1.0) if method.endswith("keep_all") else {}
    pool = not method.endswith("stacked")
    return hf_serving.enable(
        model, sketchwalk.SketchWalkConfig(**knobs), decode_pool=pool, **common
    )


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class MemorySampler(threading.Thread):
    def __init__(self, device: str):
        super().__init__(daemon=True)
        self.device, self.samples, self.stop = device, [], threading.Event()

    def run(self):
        start = time.perf_counter()
        while not self.stop.is_set():
            if self.device.startswith("cuda"):
                used = torch.cuda.memory_allocated(torch.device(self.device))
                self.samples.append((time.perf_counter() - start, used))
            self.stop.wait(0.5)


def run_method(args, model, tok, method: str, requests: list[dict]) -> dict:
    from transformers import GenerationConfig

    stop_ids = [tok.eos_token_id] if tok is not None and tok.eos_token_id is not None else [-1]
    gen = GenerationConfig(
        max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=stop_ids, pad_token_id=0
    )
    if args.warmup_tokens:  # first-call costs (kernel loads, allocator growth) out of the timing
        model.generate_batch(
            [r["ids"][: args.warmup_tokens] for r in requests[:2]],
            generation_config=gen,
            continuous_batching_config=cb_config(args, method, model),
            progress_bar=False,
        )
    hf_serving.record_densities(method != "dense")
    manager = model.init_continuous_batching(
        generation_config=gen, continuous_batching_config=cb_config(args, method, model)
    )
    memory = MemorySampler(args.device)
    submitted: dict[str, dict] = {}
    results: dict[str, object] = {}
    faults: dict[str, str] = {}
    manager.start()
    memory.start()
    t0 = time.perf_counter()
    try:
        i = 0
        while True:  # arrivals at the fixed rate; cycling through the prompts for --duration
            due = t0 + (i / args.rate if args.rate > 0 else 0.0)
            if args.duration and due - t0 > args.duration:
                break
            if not args.duration and i >= len(requests):
                break
            collect_until(due, results, faults, manager)
            req = dict(requests[i % len(requests)])
            req["id"] = f"{req['id']}_{i}"
            req["arrival"] = time.perf_counter()
            manager.add_request(
                req["ids"],
                request_id=req["id"],
                max_new_tokens=args.new_tokens,
                record_timestamps=True,
            )
            submitted[req["id"]] = req
            i += 1
            if args.faults and i == fault_arrival(args, len(requests)) and not faults:
                faults.update(inject_faults(args, manager, requests))
            while (r := manager.get_result(timeout=0)) is not None:
                collect(r, results, faults, manager)
        if args.faults and not faults:  # never skipped: a run too short for mid-run sends them now
            faults.update(inject_faults(args, manager, requests))
        deadline = time.perf_counter() + args.drain_timeout
        while (
            any(rid not in results for rid in submitted)
            and time.perf_counter() < deadline
            and manager.is_running()
        ):
            r = manager.get_result(timeout=1.0)
            if r is not None:
                collect(r, results, faults, manager)
        alive = manager.is_running()
    finally:
        manager.stop(block=True)
        memory.stop.set()
    for rid, fault in faults.items():  # what became of each bad request
        fault["outcome"] = fault_outcome(rid, fault, results.get(rid))
    summary = summarize(method, submitted, results, memory.samples, faults, tok, t0)
    summary["engine_alive_at_end"] = alive
    dense = dict(prefill=1.0, decode=1.0)
    summary["density"] = dense if method == "dense" else achieved_density(hf_serving.density_log())
    hf_serving.record_densities(False)
    del manager
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return summary


def achieved_density(log: list) -> dict:
    """The kept fraction the sparse layers actually computed (hf_serving.density_log()): prefill
    and chunk rows weighted by their causal area, decode steps averaged (None: none recorded)."""
    num = {"prefill": 0.0, "decode": 0.0}
    den = {"prefill": 0.0, "decode": 0.0}
    for phase, area, kept in log:
        if not kept:
            continue
        mean = float(torch.stack([k.float().cpu() for k in kept]).mean())
        key, weight = ("decode", 1.0) if phase == "decode" else ("prefill", float(area))
        num[key] += mean * weight
        den[key] += weight
    return {k: (num[k] / den[k] if den[k] else None) for k in num}


CANCEL_ID = "fault_cancel"


def fault_outcome(rid: str, fault: dict, r) -> str:
    """What became of a bad request (inject_faults): refused at submission, cancelled, failed
    with its own error, or (a defect) finished or still pending."""
    cancelled = "streamed" in fault
    if not fault["submitted"]:
        return fault.get("refused", "refused")
    if r is None:
        if cancelled:
            return f"cancelled after {fault['streamed']} streamed token(s): no result delivered"
        if rid == CANCEL_ID:
            return "never streamed a token (not cancelled)"
        return "no result (still pending when the run ended)"
    if r.error:
        return f"error: {r.error}"[:300]
    done = f"finished with {len(r.generated_tokens)} tokens ({r.status.name})"
    return done + (" although cancelled" if cancelled else "")


def collect(r, results: dict, faults: dict, manager) -> None:
    """Keeps a finished result; cancels the fault request when its first token streams (so the
    cancel lands mid-stream however fast the engine is) and counts what it had streamed."""
    cancel = faults.get(CANCEL_ID)
    if r.request_id == CANCEL_ID and cancel is not None and not r.is_finished():
        if "streamed" not in cancel:
            manager.cancel_request(CANCEL_ID)
        cancel["streamed"] = max(cancel.get("streamed", 0), len(r.generated_tokens))
        return
    if r.is_finished():
        results[r.request_id] = r


def collect_until(due: float, results: dict, faults: dict, manager, poll_s: float = 0.05) -> None:
    """Takes results (collect()) until time.perf_counter() reaches `due`: while waiting for
    the next arrival, not after it, so that a streamed token is seen (and the fault request
    cancelled) within poll_s rather than up to 1/rate late."""
    while (left := due - time.perf_counter()) > 0:
        r = manager.get_result(timeout=min(left, poll_s))
        if r is not None:
            collect(r, results, faults, manager)
        elif not manager.is_running():
            time.sleep(min(left, poll_s))  # get_result returns at once from a stopped engine


def fault_arrival(args, num_prompts: int) -> int:
    """The arrival after which --faults sends its bad requests: half of the run's arrivals (the
    prompts, or with --duration the arrivals it allows at --rate), so that they land mid-run.
    (Half of the prompts alone fell after the last arrival of a short sustained run.)"""
    arrivals = int(args.duration * args.rate) + 1 if args.duration else num_prompts
    return max(1, arrivals // 2)


def inject_faults(args, manager, requests) -> dict[str, dict]:
    """A request too long for the cache, an empty one, and one streamed and cancelled at its
    first token (collect()), sent mid-run: each must be refused or cleaned up while the other
    requests keep being served (summarize reads their outcome)."""
    out = {}
    # Longer than the whole cache: num_blocks x page_size when given, else --cache-tokens-hint.
    capacity = args.num_blocks * args.page_size if args.num_blocks else args.cache_tokens_hint
    too_long = requests[0]["ids"] * (1 + capacity // max(1, len(requests[0]["ids"])))
    for name, ids in (("too_long", too_long), ("empty", []), ("cancel", requests[-1]["ids"])):
        rid = f"fault_{name}"
        try:
            # The cancelled one may run long, so that the cancel lands before it ends.
            cancel = rid == CANCEL_ID
            new_tokens = max(args.new_tokens, 64) if cancel else args.new_tokens
            manager.add_request(ids, request_id=rid, max_new_tokens=new_tokens, streaming=cancel)
            out[rid] = dict(submitted=True)
        except Exception as err:  # refused at submission: the expected outcome for bad input
            out[rid] = dict(submitted=False, refused=f"{type(err).__name__}: {err}"[:300])
    return out


def latencies(timed: list[tuple[float, list[float]]]) -> dict:
    """From (arrival, token timestamps) per answered request: time to first token (first stamp
    minus arrival) and time per output token (mean gap between stamps), p50 and p99, and the
    last stamp of all ("last_token", None without any)."""
    ttft = [stamps[0] - arrival for arrival, stamps in timed if stamps]
    tpot = [(s[-1] - s[0]) / (len(s) - 1) for _, s in timed if len(s) > 1]
    return dict(
        ttft_p50_s=percentile(ttft, 50),
        ttft_p99_s=percentile(ttft, 99),
        tpot_p50_s=percentile(tpot, 50),
        tpot_p99_s=percentile(tpot, 99),
        last_token=max((s[-1] for _, s in timed if s), default=None),
    )


def needle_answer(text: str, req: dict, values: set[str]) -> tuple[bool, bool]:
    """(the request's own needle value is in the answer, another request's value is)."""
    return req["value"] in text, any(v in text for v in values - {req["value"]})


def summarize(method, submitted, results, memory, faults, tok, t0) -> dict:
    generated, correct, crossed, timed = 0, 0, 0, []
    values = {r["value"] for r in submitted.values()}
    errors = {}
    for rid, req in submitted.items():
        r = results.get(rid)
        if r is None:
            continue
        if r.error:
            errors[rid] = r.error
        toks = r.generated_tokens
        generated += len(toks)
        # From the request's arrival (a request the engine restarted keeps it).
        timed.append((req["arrival"], r.timestamps or []))
        if tok is not None:
            own, other = needle_answer(tok.decode(toks, skip_special_tokens=True), req, values)
            correct += own
            crossed += other
    times = latencies(timed)
    last = times.pop("last_token")
    span = (last - t0) if last is not None else None
    peak = max((m for _, m in memory), default=None)
    after_first_minute = [m for t, m in memory if t >= 60.0]
    return dict(
        method=method,
        requests=len(submitted),
        finished=sum(rid in results for rid in submitted),
        lost=sum(rid not in results for rid in submitted),
        errors=errors,
        generated_tokens=generated,
        output_tokens_per_s=generated / span if span else None,
        **times,
        answers_correct=correct if tok is not None else None,
        answers_crossed=crossed if tok is not None else None,
        peak_memory_bytes=peak,
        peak_after_first_minute_bytes=max(after_first_minute) if after_first_minute else None,
        memory_samples=memory,
        faults=faults,
        states_left=hf_serving.active_requests() if method != "dense" else [],
    )


class ForwardProfiler:
    """Profiles forwards [skip, skip + count) of the timed run (the engine calls the model from
    its own thread, where the profiler must run) and writes their top operators by device time
    and by host time to <out>_<method>_profile.txt. Those forwards run slower: read the run's
    timings from an unprofiled run."""

    def __init__(self, model, args, method: str, skip: int = 20, count: int = 10) -> None:
        self.model, self.args, self.method = model, args, method
        self.skip, self.count, self.calls, self.prof = skip, count, 0, None
        self.inner = model.forward
        model.forward = self.forward
        # The profiler's backend must first start in this (the main) thread: started first in the
        # engine's thread it may record nothing there.
        with torch.profiler.profile(activities=self.activities()):
            pass

    def activities(self) -> list:
        acts = [torch.profiler.ProfilerActivity.CPU]
        if self.args.device.startswith("cuda"):
            acts.append(torch.profiler.ProfilerActivity.CUDA)
        return acts

    def forward(self, *a, **kw):
        if self.calls == self.skip:
            self.prof = torch.profiler.profile(activities=self.activities())
            self.prof.__enter__()
        out = self.inner(*a, **kw)
        self.calls += 1
        if self.prof is not None and self.calls == self.skip + self.count:
            self.finish()
        return out

    def finish(self) -> None:
        if self.prof is None:
            return
        prof, self.prof = self.prof, None
        prof.__exit__(None, None, None)
        table = prof.key_averages()
        key = "cuda_time_total" if self.args.device.startswith("cuda") else "cpu_time_total"
        n = self.calls - self.skip
        text = (
            f"# {self.method}: forwards {self.skip}..{self.calls - 1} ({n}), top 30 by {key}\n"
            + table.table(sort_by=key, row_limit=30)
            + f"\n# {self.method}: top 30 by self CPU time\n"
            + table.table(sort_by="self_cpu_time_total", row_limit=30)
        )
        if self.args.out:
            Path(f"{self.args.out}_{self.method}_profile.txt").write_text(text)
        else:
            print(text)

    def remove(self) -> None:
        if self.prof is not None:  # the run ended inside the window: stopped here, in another
            # thread than the one it recorded, the profiler keeps none of its events
            self.prof.__exit__(None, None, None)
            self.prof = None
            note = (
                f"# {self.method}: the run ended after {self.calls} forwards, inside the window\n"
            )
            if self.args.out:
                Path(f"{self.args.out}_{self.method}_profile.txt").write_text(note)
        self.model.forward = self.inner


def markdown(result: dict) -> str:
    rows = result["methods"]

    def cell(x, scale=1.0, fmt="{:.3f}"):
        return "" if x is None else fmt.format(x * scale)

    # A --duration run cycles through the prompts: say how many it sent and for how long.
    sent = (
        f"{result['requests']} prompts cycled for {result['duration']:.0f} s"
        if result.get("duration")
        else f"{result['requests']} requests"
    )
    lines = [
        f"# Serving: {result['model']} on {result['device_name']}",
        "",
        f"{sent}, {result['min_tokens']}-{result['max_tokens']} prompt "
        f"tokens, {result['new_tokens']} new tokens, rate {result['rate']}/s, batch tokens "
        f"{result['max_batch_tokens']}, commit {result['commit']}, torch {result['torch']}, "
        f"transformers {result['transformers']}.",
        "",
        "| method | out tok/s | TTFT p50 / p99 (s) | TPOT p50 / p99 (ms) | correct | crossed | "
        "lost | peak mem (GB) | states left | density prefill / decode |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        lines.append(
            f"| {m['method']} | {cell(m['output_tokens_per_s'], fmt='{:.1f}')} | "
            f"{cell(m['ttft_p50_s'])} / {cell(m['ttft_p99_s'])} | "
            f"{cell(m['tpot_p50_s'], 1e3, '{:.1f}')} / {cell(m['tpot_p99_s'], 1e3, '{:.1f}')} | "
            f"{m['answers_correct']} | {m['answers_crossed']} | {m['lost']} | "
            f"{cell(m['peak_memory_bytes'], 1e-9, '{:.2f}')} | {len(m['states_left'])} | "
            f"{cell(m['density']['prefill'])} / {cell(m['density']['decode'])} |"
        )
    lines += [""] + [
        f"- {m['method']}: {m['requests']} submitted; {rid}: {f['outcome']}"
        for m in rows
        for rid, f in m.get("faults", {}).items()
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.python.bench_serving", description=__doc__)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--gguf", default="")
    p.add_argument("--random", action="store_true", help="tiny random Llama (CPU tests)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--methods", default="dense,sketchwalk")
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--min-tokens", type=int, default=4096)
    p.add_argument("--max-tokens", type=int, default=32768)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--rate", type=float, default=1.0, help="arrivals per second; 0 = all at once")
    p.add_argument("--duration", type=float, default=0.0, help="sustained run: seconds")
    p.add_argument("--drain-timeout", type=float, default=600.0)
    p.add_argument("--max-batch-tokens", type=int, default=8192)
    p.add_argument("--page-size", type=int, default=256)
    p.add_argument("--num-blocks", type=int, default=0, help="cache pages (0: the engine's)")
    p.add_argument("--faults", action="store_true")
    p.add_argument(
        "--warmup-tokens",
        type=int,
        default=1024,
        help="before each method's timed run, two requests of this many prompt tokens (0: none)",
    )
    p.add_argument(
        "--cache-tokens-hint",
        type=int,
        default=1 << 20,
        help="--faults' too-long prompt exceeds this many tokens (without --num-blocks)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile ten forwards of each timed run and write their top operators",
    )
    p.add_argument("--profile-skip", type=int, default=20, help="forwards before the profiled ten")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="stem of the .json / .md written")
    args = p.parse_args()
    if args.duration and args.rate <= 0:
        p.error("--duration needs --rate > 0 (arrivals at once never end a sustained run)")

    import transformers

    model, tok, name = load(args)
    requests = make_requests(args, tok)
    result = dict(
        model=name,
        device_name=torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        torch=torch.__version__,
        transformers=transformers.__version__,
        commit=git_commit(),
        **{
            k: getattr(args, k)
            for k in (
                "requests",
                "min_tokens",
                "max_tokens",
                "new_tokens",
                "rate",
                "duration",
                "max_batch_tokens",
                "page_size",
            )
        },
        methods=[],
    )
    for method in args.methods.split(","):
        profiler = (
            ForwardProfiler(model, args, method.strip(), args.profile_skip)
            if args.profile
            else None
        )
        try:
            result["methods"].append(run_method(args, model, tok, method.strip(), requests))
        finally:
            if profiler is not None:
                profiler.remove()
        print(markdown(result), flush=True)
        if args.out:  # after every method: a run stopped by a timeout keeps what it measured
            Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")
            Path(args.out + ".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
