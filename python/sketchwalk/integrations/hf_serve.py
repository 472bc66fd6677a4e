"""``transformers serve`` with Sketch&Walk: an OpenAI-compatible HTTP server on transformers'
continuous batching.

    python -m sketchwalk serve MODEL [--sketchwalk-config JSON] [options of transformers serve]
    python -m sketchwalk.integrations.hf_serve MODEL ...     (the same: the first runs this one)

MODEL is what ``transformers serve`` takes (a hub id or a local Hugging Face folder). The
launcher runs transformers' own CLI with ``--continuous-batching`` added. That CLI accepts no
third-party attention name and builds its engine through one public method,
``model.init_continuous_batching(..., continuous_batching_config=...)`` (transformers 5.17 and
5.25). So the launcher leaves loading alone and wraps that method: the model is configured for
Sketch&Walk there (hf_serving.enable, with the SketchWalkConfig of ``--sketchwalk-config``), and
the engine settings the server chose (its ``--cb-*`` options) carry over into
hf_serving.serving_config. Settings Sketch&Walk cannot run (``--cb-use-cuda-graph``) fail there,
with that message. Leave ``--attn-implementation`` unset.

transformers 5.25 loads the model and runs the engine in a process of its own, started with
multiprocessing's "spawn": such a process imports the main module of the launching process again,
under the name ``__mp_main__`` (but never a package's ``__main__``: hence this module is the one
that runs), and this module then installs the same wrapper from the environment variable the
launcher sets (ENV_CONFIG).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys

from . import hf_serving

__all__ = ["install", "main", "serving_config_from"]

_CONFIG: list = [None]  # the SketchWalkConfig the wrapped method configures models with
ENV_CONFIG = (
    "SKETCHWALK_SERVE_CONFIG"  # the launcher's SketchWalkConfig fields (JSON), for children
)


def serving_config_from(engine_config):
    """hf_serving.serving_config() carrying every field of `engine_config` (a transformers
    ContinuousBatchingConfig, or None) that differs from its default, except the scheduler,
    which must stay Sketch&Walk's."""
    changed = _changed_fields(engine_config)
    changed.pop("scheduler_type", None)
    return hf_serving.serving_config(**changed)


def _changed_fields(config) -> dict:
    """The fields of a dataclass config (or None) that differ from its type's defaults."""
    if config is None:
        return {}
    default = type(config)()
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    }


def install(config=None) -> None:
    """Make every model's init_continuous_batching serve with Sketch&Walk (`config`, a
    SketchWalkConfig; None: the defaults). Installed once per process; a later call replaces
    the config."""
    # The class that defines the method for every generating model (5.17 and 5.25).
    from transformers.generation.continuous_batching import ContinuousMixin

    _CONFIG[0] = config
    if getattr(ContinuousMixin.init_continuous_batching, "_sketchwalk", False):
        return
    original = ContinuousMixin.init_continuous_batching
    signature = inspect.signature(original)
    if "continuous_batching_config" not in signature.parameters:
        raise RuntimeError(
            "sketchwalk serve: this transformers' init_continuous_batching takes no "
            "continuous_batching_config argument (supported: transformers 5.17-5.25)"
        )

    def init_continuous_batching(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        engine_config = bound.arguments.get("continuous_batching_config")
        cb = serving_config_from(engine_config)
        hf_serving.enable(self, _CONFIG[0])  # the model's attention and Sketch&Walk config
        bound.arguments["continuous_batching_config"] = cb
        print(
            f"sketchwalk: {type(self).__name__} serves with Sketch&Walk "
            f"({_changed_fields(_CONFIG[0]) or 'the defaults'})",
            file=sys.stderr,
            flush=True,
        )
        return original(*bound.args, **bound.kwargs)

    init_continuous_batching._sketchwalk = True
    init_continuous_batching.__doc__ = original.__doc__
    ContinuousMixin.init_continuous_batching = init_continuous_batching


def install_from_environment() -> bool:
    """install() with the SketchWalkConfig fields of ENV_CONFIG, in a process the server spawned;
    False (nothing installed) when the variable is unset."""
    fields = os.environ.get(ENV_CONFIG)
    if fields is None:
        return False
    import sketchwalk

    install(sketchwalk.SketchWalkConfig(**json.loads(fields)))
    return True


def main(argv: list[str] | None = None) -> None:
    """python -m sketchwalk serve MODEL [--sketchwalk-config JSON] [transformers serve options]"""
    import sketchwalk

    parser = argparse.ArgumentParser(
        prog="python -m sketchwalk serve",
        description=__doc__.split("\n\n")[0],
        epilog="Every other option goes to `transformers serve` (see `transformers serve --help`).",
    )
    parser.add_argument(
        "--sketchwalk-config",
        default="{}",
        help="SketchWalkConfig fields as JSON, e.g. '{\"kblocks_frac\": 0.06}' (default: {})",
    )
    ours, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        fields = json.loads(ours.sketchwalk_config)
    except json.JSONDecodeError as err:
        parser.error(f"--sketchwalk-config must be a JSON object: {err}")
    if not isinstance(fields, dict):
        parser.error("--sketchwalk-config must be a JSON object")
    if any(
        a.startswith("--attn-implementation") or a.startswith("--attn_implementation") for a in rest
    ):
        parser.error("leave --attn-implementation unset: the launcher sets Sketch&Walk's")
    try:
        config = sketchwalk.SketchWalkConfig(**fields)
    except (TypeError, ValueError) as err:
        parser.error(f"--sketchwalk-config: {err}")
    install(config)
    os.environ[ENV_CONFIG] = json.dumps(fields)  # for the processes the server spawns
    if "--continuous-batching" not in rest:
        rest.append("--continuous-batching")
    from transformers.cli.transformers import main as transformers_cli

    sys.argv = ["transformers", "serve", *rest]
    transformers_cli()


if __name__ == "__main__":
    main()
elif __name__ == "__mp_main__":  # a process the server spawned (module docstring)
    install_from_environment()
