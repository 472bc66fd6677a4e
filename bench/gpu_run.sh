#!/usr/bin/env bash
# One call on the GPU machine: build against its torch, run the GPU tests, compute-sanitizer
# on a small subset, and the performance table. Logs and results go under $OUT.
#
#   STAGES="build test sanitize bench" SKETCHWALK_COMMIT=<sha> bash bench/gpu_run.sh
#   TEST_FILES="tests/test_keys4_decode_step.py" limits the GPU tests, SANITIZE_FILES the sanitizer's;
#   BENCH_ARGS go to bench_attention.py. STAGES="wheel test" WHEEL=<path> installs a wheel built
#   elsewhere (the stable-ABI wheel of the README's `pip wheel` command, built against another torch) in
#   place of the build stage.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sketchwalk-out}
mkdir -p "$OUT"
STAGES=${STAGES:-build test sanitize bench}
export PYTHONUNBUFFERED=1
status=0
has() { [[ " $STAGES " == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

if has build; then
  start=$(date +%s)
  SKETCHWALK_CUDA=ON SKETCHWALK_CUDA_ARCHS=${SKETCHWALK_CUDA_ARCHS:-9.0a} CMAKE_BUILD_PARALLEL_LEVEL=16 \
    python3 -m pip install --no-build-isolation --no-deps -v . > "$OUT/build.log" 2>&1
  rc=$?
  echo "== build rc=$rc in $(( $(date +%s) - start )) s"
  if [ $rc -ne 0 ]; then grep -E "error|Error" "$OUT/build.log" | head -40; tail -30 "$OUT/build.log"; exit 1; fi
  (cd /tmp && python3 -m sketchwalk info)
fi

if has wheel; then
  python3 -m pip install --no-deps --force-reinstall -q "$WHEEL" > "$OUT/wheel.log" 2>&1
  rc=$?
  echo "== installed $(basename "$WHEEL") rc=$rc"
  if [ $rc -ne 0 ]; then tail -20 "$OUT/wheel.log"; exit 1; fi
  (cd /tmp && python3 -m sketchwalk info)
fi

if has test; then
  start=$(date +%s)
  python3 -m pytest ${TEST_FILES:-tests} -m gpu -q -ra ${PYTEST_X--x} -p no:cacheprovider ${PYTEST_ARGS:-} > "$OUT/pytest-gpu.log" 2>&1
  rc=$?; status=$(( status | rc ))
  echo "== GPU tests rc=$rc in $(( $(date +%s) - start )) s"
  grep -E "passed|failed|FAILED|ERROR" "$OUT/pytest-gpu.log" | tail -25
fi

SANITIZE_DEFAULT="tests/test_sparse_prefill.py tests/test_sparse_prefill_arch.py tests/test_sparse_decode.py tests/test_hadamard_sketch.py
  tests/test_score_blocks.py tests/test_select_blocks.py tests/test_update_block_sketch.py tests/test_update_block_matrix.py
  tests/test_update_window_logits.py tests/test_window_block_scores.py tests/test_push_query_window.py
  tests/test_hadamard_sketch_varlen.py tests/test_select_blocks_varlen.py tests/test_sparse_prefill_varlen.py
  tests/test_sparse_decode_paged.py tests/test_keys4_paged.py tests/test_select_decode_blocks.py tests/test_quantize_keys4.py
  tests/test_score_blocks_keys4.py tests/test_select_blocks_keys4.py tests/test_keys4_decode_step.py tests/test_errors.py"
if has sanitize; then
  # Only the project's kernels are instrumented (their names all carry the sketchwalk
  # namespace): PyTorch's own kernels used by the tests (SDPA, copies) are not ours to check,
  # and instrumenting them makes the run several times slower.
  for tool in memcheck racecheck; do
    timeout ${SANITIZE_TIMEOUT:-240} compute-sanitizer --tool $tool --kernel-name kns=sketchwalk \
      --error-exitcode 99 python3 -m pytest ${SANITIZE_FILES:-$SANITIZE_DEFAULT} \
      -m gpu -q -x -p no:cacheprovider -k "${SANITIZE_K:-(cuda or sm80 or sm90) and not slow}" \
      > "$OUT/sanitize-$tool.log" 2>&1
    rc=$?; status=$(( status | rc ))
    echo "== compute-sanitizer $tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize-$tool.log" | tail -1)" \
      "$(grep -E '[0-9]+ passed' "$OUT/sanitize-$tool.log" | tail -1)"
  done
fi

if has bench; then
  python3 -m bench.python.bench_attention --out "$OUT/RESULTS.md" --json "$OUT/results.json" ${BENCH_ARGS:-} \
    > "$OUT/bench.log" 2>&1
  rc=$?; status=$(( status | rc ))
  echo "== bench rc=$rc"; tail -45 "$OUT/bench.log"
fi
exit $status
