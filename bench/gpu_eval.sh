#!/usr/bin/env bash
# Runs eval/decode_quality.py as many concurrent processes, one per group, spread round robin
# over the visible GPUs. A process of this evaluation is bound by the host's kernel launches
# (small model, one Python thread), so one GPU serves several at once; keep the groups at or
# below the core count. Each group writes under $OUT/<group-index>/ with its own log.
#
#   GROUPS_SPEC="dense|--lengths 4096;paper20|--lengths 8192" MODEL=smollm2-135m \
#     GGUF=/tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf EVAL_TIMEOUT=540 \
#     bash bench/gpu_eval.sh [args for every group]
#   METHODS="dense paper20 narrow20" LENGTHS="4096 8192" ... bash bench/gpu_eval.sh ...
#
# A group is "methods[|its own extra arguments]"; without GROUPS_SPEC, one group per method of
# METHODS and length of LENGTHS. MODEL (a name of examples/assets.py) is
# converted once from GGUF to a Hugging Face folder under the asset root before the groups
# start, so each process loads it in seconds; without MODEL every process loads GGUF itself.
# EVAL_TIMEOUT bounds each process (partial results are written after every task).
# SIDE_JOB, a command, runs beside the groups (its own log, on the last GPU): perplexity.
# Set SKETCHWALK_COMMIT=<the commit sent> in the command: the device copy's git state can be
# stale (the runs of 2026-11-30 stamped 233cf20+dirty on code of later commits).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sketchwalk-out}
if [ -z "${GROUPS_SPEC:-}" ]; then
  : "${METHODS:?set GROUPS_SPEC, or METHODS and LENGTHS}" "${LENGTHS:?set LENGTHS}"
  GROUPS_SPEC=$(for m in $METHODS; do for L in $LENGTHS; do printf '%s|--lengths %s;' "$m" "$L"; done; done)
  GROUPS_SPEC=${GROUPS_SPEC%;}
fi
: "${GGUF:?set GGUF to the model file}"
ASSETS=${ASSETS:-/tmp/gpu_assets/assets}
SITE=${SITE:-/tmp/site}
export SKETCHWALK_ASSETS=$ASSETS PYTHONPATH=$SITE PYTHONUNBUFFERED=1
# One thread per process: the processes share the cores.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
# Expandable segments let each process give back what its longest prompt reserved: two dozen
# processes peaked at 139 GB of one H200 without, 47 GB with (2026-12-01).
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
ngpu=$(nvidia-smi -L | wc -l)
mkdir -p "$OUT"

if [ -n "${MODEL:-}" ]; then
  mkdir -p "$ASSETS/gguf" && ln -sf "$GGUF" "$ASSETS/gguf/$(basename "$GGUF")"
  start=$(date +%s)
  # ... and its tokenizer folder made once too (decode_quality.tokenizer_dir), not by every group.
  python3 -c "from examples import assets; from transformers import AutoTokenizer
from eval.decode_quality import tokenizer_dir
d = assets.ensure_model('$MODEL'); print(d, tokenizer_dir(AutoTokenizer.from_pretrained(str(d)), '$MODEL'))" \
    > "$OUT/convert.log" 2>&1
  echo "== converted $MODEL rc=$? in $(( $(date +%s) - start )) s"
  source_args=(--model "$MODEL")
else
  source_args=(--gguf "$GGUF")
fi

IFS=';' read -r -a groups <<< "$GROUPS_SPEC"
for i in "${!groups[@]}"; do
  methods=${groups[$i]%%|*}
  own=""; [[ "${groups[$i]}" == *"|"* ]] && own=${groups[$i]#*|}
  dir="$OUT/$i"; mkdir -p "$dir"
  (
    export CUDA_VISIBLE_DEVICES=$(( i % ngpu ))
    # shellcheck disable=SC2086  # $own holds several arguments
    timeout "${EVAL_TIMEOUT:-540}" python3 -m eval.decode_quality "${source_args[@]}" \
      --methods "$methods" --out "$dir" $own "$@" >> "$dir/eval.log" 2>&1
    echo "== group $i ($methods $own) on GPU $CUDA_VISIBLE_DEVICES rc=$?" >> "$dir/eval.log"
  ) &
done
if [ -n "${SIDE_JOB:-}" ]; then
  (CUDA_VISIBLE_DEVICES=$(( ngpu - 1 )) timeout "${EVAL_TIMEOUT:-540}" bash -c "$SIDE_JOB" \
     > "$OUT/side.log" 2>&1; echo "== side job rc=$?" >> "$OUT/side.log") &
fi
wait
for i in "${!groups[@]}"; do
  echo "---- group $i: ${groups[$i]}"
  grep -E "^== |RULER mean|failed|Error" "$OUT/$i/eval.log" | tail -6
done
[ -f "$OUT/side.log" ] && { echo "---- side job"; grep -E "^== |^\| |Error" "$OUT/side.log" | tail -30; }
# One archive: the device tool brings back only a few files per call.
# Archived beside $OUT first, so that two of these runs (one per MODEL, OUT=$OUT/<model>) can
# run side by side without sharing a temporary file.
tar czf "$OUT.eval.tar.gz" -C "$OUT" . && mv "$OUT.eval.tar.gz" "$OUT/eval.tar.gz" &&
  find "$OUT" -mindepth 1 -type f ! -name eval.tar.gz -delete
exit 0
