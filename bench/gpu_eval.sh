#!/usr/bin/env bash
# Runs eval/decode_quality.py as several processes, one per method group, each on
# its own GPU (round robin over the visible GPUs), so a two-GPU machine evaluates twice as many
# methods in one call. Each group writes under $OUT/<group-index>/ with its own log.
#
#   GROUPS_SPEC="dense,sparse_prefill;default,keys4_10" GGUF=/tmp/models/.../x.gguf \
#     EVAL_TIMEOUT=540 bash bench/gpu_eval.sh [extra eval/decode_quality.py args]
#
# EVAL_TIMEOUT bounds each process (partial results are written after every task). The GPU
# tests can share the call: BEFORE_ON_GPU0="python3 -m pytest tests -m gpu -q" runs that
# command on GPU 0 before its group starts.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sketchwalk-out}
: "${GROUPS_SPEC:?set GROUPS_SPEC to method groups separated by ';'}"
: "${GGUF:?set GGUF to the model file}"
ASSETS=${ASSETS:-/tmp/gpu_assets/assets}
SITE=${SITE:-/tmp/site}
ngpu=$(nvidia-smi -L | wc -l)
IFS=';' read -r -a groups <<< "$GROUPS_SPEC"
pids=()
for i in "${!groups[@]}"; do
  gpu=$(( i % ngpu ))
  dir="$OUT/$i"; mkdir -p "$dir"
  (
    export CUDA_VISIBLE_DEVICES=$gpu PYTHONUNBUFFERED=1
    if [ "$gpu" -eq 0 ] && [ -n "${BEFORE_ON_GPU0:-}" ] && [ "$i" -eq 0 ]; then
      start=$(date +%s)
      bash -c "$BEFORE_ON_GPU0" > "$OUT/before-gpu0.log" 2>&1
      echo "== before (GPU 0) rc=$? in $(( $(date +%s) - start )) s" >> "$dir/eval.log"
    fi
    PYTHONPATH=$SITE timeout "${EVAL_TIMEOUT:-540}" python3 -m eval.decode_quality \
      --gguf "$GGUF" --assets "$ASSETS" --methods "${groups[$i]}" --out "$dir" "$@" \
      >> "$dir/eval.log" 2>&1
    echo "== group $i (${groups[$i]}) on GPU $gpu rc=$?" >> "$dir/eval.log"
  ) &
  pids+=($!)
  [ "$ngpu" -eq 1 ] && wait "${pids[-1]}"  # one GPU: groups run one after another
done
wait
for i in "${!groups[@]}"; do
  echo "---- group $i: ${groups[$i]}"
  grep -E "^== |^\| |failed|Error" "$OUT/$i/eval.log" | tail -30
done
[ -f "$OUT/before-gpu0.log" ] && { echo "---- before (GPU 0)"; grep -E "passed|failed|FAILED|ERROR" "$OUT/before-gpu0.log" | tail -15; }
# One archive: the device tool brings back only a few files per call.
tar czf /tmp/eval.tar.gz -C "$OUT" . && mv /tmp/eval.tar.gz "$OUT/" &&
  find "$OUT" -mindepth 1 -type f ! -name eval.tar.gz ! -name '*.md' -delete
exit 0
