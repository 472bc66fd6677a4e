#!/usr/bin/env bash
# Diagnoses the stable-ABI crash of docs/stable_abi.md (step 1) on the GPU machine: builds a
# CPU-only copy with SKETCHWALK_STABLE_ABI_OPS=ON into /tmp/stable (the op is
# CompositeExplicitAutograd, so CUDA tensors reach it without CUDA kernels), calls
# push_query_window_ with a q_sketch of the wrong shape on CPU and then on CUDA tensors (the
# error path that crashed), and, where gdb exists, prints a native backtrace of the CUDA call.
#   bash bench/stable_abi_backtrace.sh            # logs under $OUT/stable_abi/
#   CXX=/usr/bin/g++ STABLE_TARGET=/tmp/stable_sys STABLE_BUILD_DIR=/tmp/stable-build-sys \
#     STABLE_TAG=_sys NO_GDB=1 bash bench/stable_abi_backtrace.sh   # another compiler beside it
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sketchwalk-out}/stable_abi
mkdir -p "$OUT"
TARGET=${STABLE_TARGET:-/tmp/stable}
if [ ! -d "$TARGET/sketchwalk" ]; then
  SKETCHWALK_CUDA=OFF SKETCHWALK_STABLE_ABI_OPS=ON CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-8} \
    python3 -m pip install --no-build-isolation --no-deps --target "$TARGET" \
    -C build-dir="${STABLE_BUILD_DIR:-/tmp/stable-build}" . > "$OUT/build${STABLE_TAG:-}.log" 2>&1
  echo "== stable-ABI CPU build rc=$? (CXX=${CXX:-unset}: $(${CXX:-c++} --version | head -1))"
fi
cat > "$OUT/call.py" <<'PY'
import sys, faulthandler, torch
faulthandler.enable()
import sketchwalk
print("stable ops:", sketchwalk.build_info().get("stable_abi_ops"), flush=True)
dev = sys.argv[1]
win = torch.zeros(1, 4, 8, 32, device=dev)
torch.ops.sketchwalk.push_query_window_(win, torch.ones(1, 4, 1, 32, device=dev), 3)  # valid
print(dev, "valid call ok:", float(win[0, 0, 3, 0]), flush=True)
try:
    torch.ops.sketchwalk.push_query_window_(win, torch.zeros(1, 3, 1, 32, device=dev), 0)
    print(dev, "bad call: NO ERROR", flush=True)
except Exception as e:
    print(dev, "bad call raised", type(e).__name__, str(e)[:200], flush=True)
PY
for dev in cpu cuda; do
  log="$OUT/call${STABLE_TAG:-}_$dev.log"
  (cd /tmp && PYTHONPATH="$TARGET" timeout 120 python3 "$OUT/call.py" $dev) > "$log" 2>&1
  echo "== $dev rc=$?: $(grep -E 'raised|NO ERROR|Fatal|Segmentation' "$log" | head -3)"
done
if [ -n "${NO_GDB:-}" ]; then
  :
elif command -v gdb > /dev/null; then
  (cd /tmp && PYTHONPATH="$TARGET" timeout 300 gdb -batch -ex run -ex bt -ex "info sharedlibrary sketchwalk" \
    --args python3 "$OUT/call.py" cuda) > "$OUT/gdb.log" 2>&1
  echo "== gdb rc=$?"; grep -E "^#[0-9]+" "$OUT/gdb.log" | head -30
else
  echo "== no gdb on this machine"
fi
