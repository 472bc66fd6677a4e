"""``python -m sketchwalk info``: what this build holds. ``python -m sketchwalk example``:
a small runnable example (one layer's prefill and a few decode steps vs dense attention).
``python -m sketchwalk serve MODEL ...``: ``transformers serve`` with Sketch&Walk
(integrations/hf_serve.py)."""

from __future__ import annotations

import argparse
import json
import time


def _info() -> None:
    import sketchwalk

    print(json.dumps(sketchwalk.build_info(), indent=2))


def _example(num_tokens: int, decode_steps: int) -> None:
    import torch

    import sketchwalk
    from sketchwalk.attention import dense_causal_attention

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    batch, hq, hkv, d = 1, 8, 2, 128
    q = torch.randn(batch, hq, num_tokens, d, device=device, dtype=dtype)
    k = torch.randn(batch, hkv, num_tokens + decode_steps, d, device=device, dtype=dtype)
    v = torch.randn_like(k)
    state = sketchwalk.SketchWalkState(sketchwalk.SketchWalkConfig())
    layer = 2  # the first sparse layer with the default dense_layers=2
    t0 = time.perf_counter()
    out = sketchwalk.sketchwalk_attention(
        q, k[:, :, :num_tokens], v[:, :, :num_tokens], layer, state
    )
    t1 = time.perf_counter()
    ref = dense_causal_attention(q, k[:, :, :num_tokens], v[:, :, :num_tokens])
    rel = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    print(
        "Random q/k/v spread attention evenly over the keys (dense output ~ the mean of all\n"
        "values), so dropping most blocks moves the output by a relative difference of order 1\n"
        "here; real models concentrate attention and keep task accuracy (bench/RESULTS.md).\n"
        "density = the kept fraction actually achieved."
    )
    print(
        f"device={device} dtype={dtype} prefill tokens={num_tokens}: "
        f"density={state.last_density[layer]:.3f} rel.diff vs dense={rel:.3f} time={t1 - t0:.3f}s"
    )
    for step in range(decode_steps):
        n = num_tokens + step + 1
        qd = torch.randn(batch, hq, 1, d, device=device, dtype=dtype)
        out = sketchwalk.sketchwalk_attention(qd, k[:, :, :n], v[:, :, :n], layer, state)
        ref = dense_causal_attention(qd, k[:, :, :n], v[:, :, :n])
        rel = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
        print(
            f"  decode step {step + 1}: keys={n} density={state.last_density[layer]:.3f} "
            f"rel.diff vs dense={rel:.3f}"
        )


def main(argv: list[str] | None = None) -> None:
    import sys

    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # its options are transformers serve's: parsed there
        if not from_command_line:  # called from code: serve in this process
            from sketchwalk.integrations import hf_serve

            hf_serve.main(argv[1:])
            return
        import os

        # From the command line, run as the launcher module itself, which the processes the
        # server spawns import again (integrations/hf_serve.py: a package's __main__ is not),
        # with this interpreter's own flags (-I, -X, ... before -m).
        flags = sys.orig_argv[1 : sys.orig_argv.index("-m")] if "-m" in sys.orig_argv else []
        launcher = "sketchwalk.integrations.hf_serve"
        os.execv(sys.executable, [sys.executable, *flags, "-m", launcher, *argv[1:]])
    parser = argparse.ArgumentParser(prog="python -m sketchwalk")
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("info", help="version, torch/CUDA built with, GPU archs compiled in")
    sub.add_parser("serve", help="transformers serve with Sketch&Walk (serve --help)")
    ex = sub.add_parser("example", help="one layer of Sketch&Walk vs dense attention")
    ex.add_argument("--tokens", type=int, default=4096)
    ex.add_argument("--decode-steps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.cmd == "example":
        _example(args.tokens, args.decode_steps)
    else:
        _info()


if __name__ == "__main__":
    main()
