#!/usr/bin/env bash
# Sets up a fresh machine and runs the test suite (scripts/setup_env.sh: venv, torch, build),
# then pytest. Extra arguments go to pytest. CUDA tests run where a GPU is present.
#
#   bash scripts/test.sh
#   SKETCHWALK_CUDA=OFF bash scripts/test.sh -k sparse
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
python -m pip install -q -r scripts/test_requirements.txt
echo "== pytest"
# -rfE: the reasons of failures and errors only; a CPU machine skips every CUDA case (about
# 1300), which the summary line counts instead of listing them.
python -c "import torch; torch.cuda.is_available() or print('no CUDA device: the CUDA cases are skipped (counted in the summary)')"
python -m pytest tests -q -rfE "$@"
