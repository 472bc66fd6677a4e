#!/usr/bin/env bash
# The stable-ABI build (docs/stable_abi.md: every op registered from csrc/stable/ through
# PyTorch's stable C shim instead of its C++ ABI) into build/stable-abi/, an audit that the module
# references no torch C++ symbol, and the CPU test suite against that build. CPU-only unless SKETCHWALK_CUDA=ON (CI: then the stable CUDA wrappers are compiled
# and audited too, for SKETCHWALK_STABLE_CUDA_ARCHS, default 9.0a: one arch proves they build).
# Runs after scripts/test.sh (which made the virtual environment); CI runs both (.ci/run).
#
#   bash scripts/test_stable_abi.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(realpath "${SKETCHWALK_VENV:-.venv}")/bin/python
TARGET=build/stable-abi/site
rm -rf "$TARGET"
cuda=${SKETCHWALK_CUDA:-OFF}
[ "$cuda" = ON ] || cuda=OFF
echo "== stable-ABI build (SKETCHWALK_CUDA=$cuda) into $TARGET"
SKETCHWALK_CUDA=$cuda SKETCHWALK_CUDA_ARCHS=${SKETCHWALK_STABLE_CUDA_ARCHS:-9.0a} \
  SKETCHWALK_STABLE_ABI_OPS=ON CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$PY" -m pip install -q --no-build-isolation --no-deps --target "$TARGET" \
  -C build-dir=build/stable-abi/build .
ops=$(cd /tmp && PYTHONPATH="$(realpath "$OLDPWD/$TARGET")" "$PY" -c \
  "import sketchwalk; print(' '.join(sketchwalk.build_info()['stable_abi_ops']))")
echo "== stable-ABI ops of this build: ${ops:-none}"
[ -n "$ops" ] || { echo "the stable-ABI build registered no stable op"; exit 1; }
# The module binds to no torch C++ symbol (only the stable C shim): the point of the build. An
# undefined symbol of the built module naming a c10/at/caffe2/torch C++ entity (a libtorch
# function, or one of ours taking an at::Tensor) fails; torch::stable and torch::headeronly are
# header-only.
so=$(ls "$TARGET"/sketchwalk/_C*.so)
if nm -uC --dynamic "$so" | sed -E 's/torch::(stable|headeronly)::/header_only::/g' |
  grep -E '(^|[^A-Za-z0-9_])(c10|at|caffe2|torch)::'; then
  echo "$so references torch C++ symbols (above): not a stable-ABI module"; exit 1
fi
echo "== $(basename "$so"): no torch C++ symbol referenced"
# The whole CPU suite against that build: the moved ops' own tests, and every other op and
# integration calling them through the dispatcher.
PYTHONPATH="$TARGET" "$PY" -m pytest tests -q -rfE -p no:cacheprovider "$@"
