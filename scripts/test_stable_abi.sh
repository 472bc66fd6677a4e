#!/usr/bin/env bash
# The stable-ABI build (docs/stable_abi.md: the ops of csrc/stable/ registered through PyTorch's
# stable C shim instead of its C++ ABI), CPU-only, into build/stable-abi/, and the tests of the
# ops it moves plus the error, opcheck and fake suites, against that build. Runs after
# scripts/test.sh (which made the virtual environment); CI runs both (.ci/run).
#
#   bash scripts/test_stable_abi.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(realpath "${SKETCHWALK_VENV:-.venv}")/bin/python
TARGET=build/stable-abi/site
rm -rf "$TARGET"
echo "== stable-ABI build (CPU-only) into $TARGET"
SKETCHWALK_CUDA=OFF SKETCHWALK_STABLE_ABI_OPS=ON CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$PY" -m pip install -q --no-build-isolation --no-deps --target "$TARGET" \
  -C build-dir=build/stable-abi/build .
ops=$(cd /tmp && PYTHONPATH="$(realpath "$OLDPWD/$TARGET")" "$PY" -c \
  "import sketchwalk; print(' '.join(sketchwalk.build_info()['stable_abi_ops']))")
echo "== stable-ABI ops of this build: ${ops:-none}"
[ -n "$ops" ] || { echo "the stable-ABI build registered no stable op"; exit 1; }
tests=""
for op in $ops; do tests+=" tests/test_${op%_}.py"; done
# shellcheck disable=SC2086  # one path per op
PYTHONPATH="$TARGET" "$PY" -m pytest $tests tests/test_errors.py tests/test_opcheck.py \
  tests/test_fakes.py -q -rfE -p no:cacheprovider "$@"
