# Sourced by scripts/test.sh and scripts/demo.sh: a virtual environment (.venv, reused when
# present) with torch and the build tools, and sketchwalk built against that torch.
# Environment: SKETCHWALK_VENV (.venv), PYTHON (python3), SKETCHWALK_TORCH (torch==2.14.1),
# SKETCHWALK_TORCH_INDEX (unset: PyPI; else pip's --index-url for torch alone, e.g. PyTorch's
# CPU-only wheels), SKETCHWALK_CUDA / SKETCHWALK_CUDA_ARCHS (see README).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One build per machine: without a GPU the CUDA kernels would only be compiled, not used, so
# the demo and the tests share one CPU-only build unless asked (CI sets SKETCHWALK_CUDA=ON to
# compile-check the kernels).
if [ -z "${SKETCHWALK_CUDA:-}" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
  export SKETCHWALK_CUDA=OFF
fi
VENV=${SKETCHWALK_VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${SKETCHWALK_TORCH:-torch==2.14.1}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import torch" 2>/dev/null; then
  echo "== installing $TORCH_SPEC${SKETCHWALK_TORCH_INDEX:+ from $SKETCHWALK_TORCH_INDEX}"
  if [ "${SKETCHWALK_CUDA:-}" = OFF ] && [ -z "${SKETCHWALK_TORCH_INDEX:-}" ]; then
    # PyPI's Linux torch wheels carry the CUDA libraries (~4 GB); the CPU-only ones live on
    # PyTorch's own index, which this script does not assume is reachable.
    echo "   no GPU here: PyPI's torch brings its CUDA libraries (~4 GB, unused). For the CPU-only"
    echo "   wheels (~200 MB) rerun with SKETCHWALK_TORCH_INDEX=https://download.pytorch.org/whl/cpu"
  fi
  python -m pip install -q ${SKETCHWALK_TORCH_INDEX:+--index-url "$SKETCHWALK_TORCH_INDEX"} "$TORCH_SPEC"
fi
echo "== installing build tools"
python -m pip install -q "scikit-build-core>=0.10" "cmake>=3.26" ninja numpy
echo "== building sketchwalk (SKETCHWALK_CUDA=${SKETCHWALK_CUDA:-AUTO}, archs ${SKETCHWALK_CUDA_ARCHS:-8.0;9.0a})"
echo "   first build on 2 CPU cores: ~3 min CPU-only, ~5 min with the CUDA sources; later ones"
echo "   recompile only what changed. [n/N] counts the files compiled:"
start=$(date +%s)
log="${TMPDIR:-/tmp}/sketchwalk-build.log"
# The full log goes to $log; the compile steps are echoed as they finish (pipefail keeps pip's
# status: a failed build stops here with the end of the log).
# One build folder per SKETCHWALK_CUDA setting: switching it back and forth reuses each one's
# objects instead of recompiling every file (CMake would reconfigure one shared folder).
build_dir="build/{wheel_tag}-cuda-${SKETCHWALK_CUDA:-auto}"
if ! python -m pip install -v --no-build-isolation --no-deps -C build-dir="$build_dir" . 2>&1 | tee "$log" |
    { grep --line-buffered -oE '\[[0-9]+/[0-9]+\] [A-Za-z]+ [A-Za-z+]+ object [^ ]+' | sed -u 's/^/   /' || true; }; then
  echo "== build failed; the end of $log:"; tail -40 "$log"; exit 1
fi
echo "== built in $(( $(date +%s) - start )) s"
python -m sketchwalk info
