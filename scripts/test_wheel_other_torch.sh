#!/usr/bin/env bash
# One stable-ABI wheel, two torch minor versions (docs/stable_abi.md, "CI: built against X,
# passes CPU tests under Y"): builds the wheel once against the torch of the main virtual
# environment (scripts/test.sh made it) and runs the CPU test suite with that same file under
# that torch and, installed into a second environment, under another torch minor version. CPU-only: a wheel with the CUDA
# kernels needs a CUDA build of torch (libtorch_cuda), which the second environment lacks; the
# GPU machine runs that wheel under its own torch (bench/gpu_run.sh, WHEEL=).
#
#   bash scripts/test_wheel_other_torch.sh [pytest args]
#   SKETCHWALK_OTHER_TORCH=torch==2.13.0 (default; pip takes the CPU build this machine keeps on disk)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(realpath "${SKETCHWALK_VENV:-.venv}")/bin/python
OTHER_TORCH=${SKETCHWALK_OTHER_TORCH:-torch==2.13.0}
WORK=build/other-torch
OTHER=$PWD/$WORK/venv
rm -rf "$WORK/wheelhouse"
echo "== the stable-ABI wheel (CPU only), built against torch $("$PY" -c 'import torch; print(torch.__version__)')"
SKETCHWALK_CUDA=OFF SKETCHWALK_STABLE_ABI_OPS=ON CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/wheelhouse" \
  -C build-dir="$WORK/build" .
wheel=$(ls "$WORK"/wheelhouse/sketchwalk-*.whl)
echo "   $(basename "$wheel")"
echo "== a second environment with $OTHER_TORCH and the test requirements"
[ -x "$OTHER/bin/python" ] || python3 -m venv "$OTHER"
"$OTHER/bin/python" -m pip install -q "$OTHER_TORCH"
"$OTHER/bin/python" -m pip install -q -r scripts/test_requirements.txt
"$OTHER/bin/python" -m pip install -q --no-deps --force-reinstall "$wheel"
# The point of the job: the wheel's torch and the running torch differ in their minor version.
(cd /tmp && "$OTHER/bin/python" - <<'EOF'
import sketchwalk
info = sketchwalk.build_info()
built = info["built_with_torch"].split("+")[0].split(".")[:2]
running = info["running_torch"].split("+")[0].split(".")[:2]
print(f"   built with torch {info['built_with_torch']}, running torch {info['running_torch']}, "
      f"abi {info['abi']} ({info['runs_on_torch']})")
assert info["abi"] == "stable", info
assert built != running, f"the second torch must be another minor version: {built} == {running}"
EOF
)
echo "== the CPU test suite with that wheel under the build torch, then under the other one"
unpacked=$PWD/$WORK/unpacked
rm -rf "$unpacked"
"$PY" -m pip install -q --no-deps --target "$unpacked" "$wheel"
PYTHONPATH="$unpacked" "$PY" -m pytest tests -q -rfE -p no:cacheprovider "$@"
"$OTHER/bin/python" -m pytest tests -q -rfE -p no:cacheprovider "$@"
