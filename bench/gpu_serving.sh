#!/usr/bin/env bash
# The serving benchmark (bench/python/bench_serving.py) on the GPU machine, one setting after
# the other (never two at once: they time the GPU), each a process of its own with its own
# timeout; inside a process the methods run one after the other on one loaded model.
#
#   GGUF=/tmp/models/.../model.gguf \
#   SERVING_SPEC="32k|--min-tokens 30000 --max-tokens 31500 --requests 16;8k|--min-tokens 7800 ..." \
#   SERVING_TIMEOUT=300 bash bench/gpu_serving.sh [args for every setting]
# Writes $OUT/serving_<name>.{json,md,log}. Run bench/gpu_assets.sh assemble first (/tmp/site
# holds the gguf reader).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sketchwalk-out}
: "${GGUF:?set GGUF to the model file}" "${SERVING_SPEC:?set SERVING_SPEC}"
export PYTHONPATH=${SITE:-/tmp/site} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
mkdir -p "$OUT"
IFS=';' read -r -a settings <<< "$SERVING_SPEC"
for s in "${settings[@]}"; do
  name=${s%%|*}; own=""; [[ "$s" == *"|"* ]] && own=${s#*|}
  start=$(date +%s)
  # shellcheck disable=SC2086  # the setting's arguments are words
  timeout "${SERVING_TIMEOUT:-300}" python3 -m bench.python.bench_serving --gguf "$GGUF" \
    --out "$OUT/serving_$name" $own "$@" > "$OUT/serving_$name.log" 2>&1
  echo "== serving $name rc=$? in $(( $(date +%s) - start )) s"
  if [ -f "$OUT/serving_$name.md" ]; then cat "$OUT/serving_$name.md"; else tail -15 "$OUT/serving_$name.log"; fi
done
