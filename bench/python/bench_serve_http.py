"""Serving over HTTP (issue 22): an OpenAI client sends needle requests at a fixed rate to a
running OpenAI-compatible server (`python -m sketchwalk serve MODEL`, or `transformers serve
MODEL --continuous-batching` for the dense path) and measures what a user sees: time to first
token and time per output token from the streamed chunks (p50, p99), output throughput, answers
correct / crossed / failed. The prompts are bench_serving.py's (same seed, same needles), as text.

    python -m sketchwalk serve ./model-folder --device cuda --port 8000 &
    python -m bench.python.bench_serve_http --url http://localhost:8000/v1 --model ./model-folder \\
        --tokenizer ./model-folder --requests 16 --min-tokens 30000 --max-tokens 31500 --rate 0.5 \\
        --label sketchwalk --out /tmp/serve_http_sketchwalk
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from bench.python.bench_serving import latencies, make_requests, needle_answer


def one_request(client, args, req: dict, out: dict) -> None:
    """Streams one completion; fills out[req id] with arrival, chunk times, text or error."""
    rec = dict(arrival=time.perf_counter(), stamps=[], text="", error=None)
    out[req["id"]] = rec
    try:
        stream = client.completions.create(
            model=args.model,
            prompt=req["text"],
            max_tokens=args.new_tokens,
            temperature=0,
            stream=True,
            timeout=args.timeout,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                rec["stamps"].append(time.perf_counter())
                rec["text"] += chunk.choices[0].text
    except Exception as err:  # a failed request is counted, the others go on
        rec["error"] = f"{type(err).__name__}: {err}"[:300]


def run(args) -> dict:
    import openai
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    requests = make_requests(args, tok)
    client = openai.OpenAI(base_url=args.url, api_key="unused", max_retries=0)
    results: dict[str, dict] = {}
    threads = []
    t0 = time.perf_counter()
    for i, req in enumerate(requests):
        due = t0 + (i / args.rate if args.rate > 0 else 0.0)
        time.sleep(max(0.0, due - time.perf_counter()))
        th = threading.Thread(target=one_request, args=(client, args, req, results), daemon=True)
        th.start()
        threads.append(th)
    for th in threads:
        th.join(timeout=args.timeout)
    values = {r["value"] for r in requests}
    chunks, timed = 0, []
    correct = crossed = failed = 0
    for req in requests:
        rec = results.get(req["id"])
        if rec is None or rec["error"] or not rec["stamps"]:
            failed += 1
            continue
        timed.append((rec["arrival"], rec["stamps"]))
        chunks += len(rec["stamps"])
        own, other = needle_answer(rec["text"], req, values)
        correct += own
        crossed += other
    times = latencies(timed)
    last = times.pop("last_token")
    span = last - t0 if last is not None else None
    return dict(
        label=args.label,
        url=args.url,
        model=args.model,
        requests=len(requests),
        min_tokens=args.min_tokens,
        max_tokens=args.max_tokens,
        new_tokens=args.new_tokens,
        rate=args.rate,
        failed=failed,
        errors=sorted({r["error"] for r in results.values() if r["error"]})[:5],
        streamed_chunks=chunks,
        chunks_per_s=chunks / span if span else None,
        **times,
        answers_correct=correct,
        answers_crossed=crossed,
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.python.bench_serve_http", description=__doc__)
    p.add_argument("--url", default="http://localhost:8000/v1")
    p.add_argument("--model", required=True, help="the model name the server was started with")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder (prompt lengths)")
    p.add_argument("--label", default="server")
    p.add_argument("--requests", type=int, default=16)
    p.add_argument("--min-tokens", type=int, default=4096)
    p.add_argument("--max-tokens", type=int, default=32768)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--rate", type=float, default=1.0, help="arrivals per second; 0 = all at once")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="stem of the .json written")
    args = p.parse_args()
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
