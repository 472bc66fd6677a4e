#!/usr/bin/env bash
# Configures and builds bench/cpp (the nvbench executable sketchwalk_bench) with the Python
# environment that is active: installs cuda-bench (nvbench) and CMake >= 3.30.4 into it,
# then a standalone, torch-free CMake build. Compile-only on a machine without a GPU.
#
#   bash bench/cpp/build.sh                     # -> build/bench-cpp/sketchwalk_bench
#   SKETCHWALK_CUDA_ARCHS=9.0a BENCH_BUILD_DIR=/tmp/b bash bench/cpp/build.sh
#   SKETCHWALK_BENCH_NO_PIP=1 ...               # the packages are already installed
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BENCH_BUILD_DIR:-build/bench-cpp}
ARCHS=${SKETCHWALK_CUDA_ARCHS:-8.0;9.0a}
PYTHON=${PYTHON:-python}
if [ -z "${SKETCHWALK_BENCH_NO_PIP:-}" ]; then
  "$PYTHON" -m pip install -q "cuda-bench==0.3.0" "cmake>=3.30.4" ninja
fi
# The pip-installed cmake (>= 3.30.4) and ninja live next to the interpreter, which need not
# be on PATH (CI calls this with PYTHON=.venv/bin/python).
BIN="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")"
CMAKE="$BIN/cmake"
[ -x "$CMAKE" ] || CMAKE=cmake
NINJA_ARG=()
[ -x "$BIN/ninja" ] && NINJA_ARG=(-DCMAKE_MAKE_PROGRAM="$BIN/ninja")
echo "== bench/cpp: configuring ($("$CMAKE" --version | head -1), archs $ARCHS) in $BUILD_DIR"
start=$(date +%s)
"$CMAKE" -S bench/cpp -B "$BUILD_DIR" -G Ninja "${NINJA_ARG[@]}" -DSKETCHWALK_CUDA_ARCHS="$ARCHS" \
  -DPython3_EXECUTABLE="$("$PYTHON" -c 'import sys; print(sys.executable)')"
"$CMAKE" --build "$BUILD_DIR"
echo "== bench/cpp built in $(( $(date +%s) - start )) s: $BUILD_DIR/sketchwalk_bench"
