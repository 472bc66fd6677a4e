#!/usr/bin/env bash
# The HTTP serving benchmark on the GPU machine (issue 22): for each server, start it on one
# model folder, wait until it listens, run bench/python/bench_serve_http.py's OpenAI client
# against it, stop it. "sketchwalk" is `python -m sketchwalk serve`; "dense" is transformers
# serve's own continuous batching with SDPA, the same engine settings (no CUDA graphs).
#
#   GGUF=/tmp/models/.../model.gguf MODEL=qwen2.5-coder-1.5b SERVERS="dense sketchwalk" \
#     CB_ARGS="--cb-num-blocks 2048 --cb-block-size 256 --cb-max-batch-tokens 8192" \
#     bash bench/gpu_serve_http.sh --requests 16 --min-tokens 30000 --max-tokens 31500 --rate 0.5
# The GGUF is converted once to a Hugging Face folder (examples/assets.py). Needs
# bench/gpu_assets.sh assemble with serve_wheels staged (/tmp/serve_site). Writes
# $OUT/serve_http_<server>.{json,log}. DEVICE=cpu runs it on a CPU box (a small model, short prompts).
# Both servers load the model in DTYPE (default bfloat16 on CUDA, float32 on CPU): the converted
# folder's config says float32, which the servers' "auto" would keep.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/sketchwalk-out}
ASSETS=${ASSETS:-/tmp/gpu_assets/assets}
: "${GGUF:?set GGUF}" "${MODEL:?set MODEL (a name of examples/assets.py)}"
export SKETCHWALK_ASSETS=$ASSETS PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=${SERVE_SITE:-/tmp/serve_site}:${SITE:-/tmp/site}
mkdir -p "$OUT" "$ASSETS/gguf"
[ -e "$ASSETS/gguf/$(basename "$GGUF")" ] || ln -s "$GGUF" "$ASSETS/gguf/$(basename "$GGUF")"
dir=$(python3 -c "from examples import assets; print(assets.ensure_model('$MODEL'))" 2> "$OUT/convert.log" | tail -1)
[ -d "$dir" ] || { echo "gpu_serve_http: no model folder ($(tail -3 "$OUT/convert.log"))"; exit 1; }
echo "== model folder $dir"
port=${PORT:-8321}
device=${DEVICE:-cuda}
if [ "$device" = cpu ]; then dtype=${DTYPE:-float32}; else dtype=${DTYPE:-bfloat16}; fi
for server in ${SERVERS:-dense sketchwalk}; do
  # shellcheck disable=SC2086  # CB_ARGS are words
  case "$server" in
    sketchwalk) cmd=(python3 -m sketchwalk serve "$dir" --device "$device" --dtype "$dtype" --port "$port" ${CB_ARGS:-}) ;;
    dense) cmd=(python3 -m transformers.cli.transformers serve "$dir" --continuous-batching
                --attn-implementation sdpa --no-cb-use-cuda-graph --device "$device" --dtype "$dtype" --port "$port" ${CB_ARGS:-}) ;;
    *) echo "unknown server $server"; continue ;;
  esac
  (cd /tmp && exec "${cmd[@]}") > "$OUT/serve_http_${server}_server.log" 2>&1 &
  pid=$!
  start=$(date +%s); listening=1
  until python3 -c "import socket; socket.create_connection(('localhost', $port), 1)" 2>/dev/null; do
    if ! kill -0 $pid 2>/dev/null || [ $(( $(date +%s) - start )) -gt 180 ]; then
      echo "== $server: the server did not start"; tail -15 "$OUT/serve_http_${server}_server.log"
      listening=0; break
    fi
    sleep 1
  done
  if [ $listening -eq 0 ]; then kill $pid 2>/dev/null; port=$(( port + 1 )); continue; fi
  echo "== $server listening after $(( $(date +%s) - start )) s"
  timeout "${CLIENT_TIMEOUT:-400}" python3 -m bench.python.bench_serve_http --url "http://localhost:$port/v1" \
    --model "$dir" --tokenizer "$dir" --label "$server" --out "$OUT/serve_http_$server" "$@" \
    > "$OUT/serve_http_$server.log" 2>&1
  echo "== $server client rc=$?"; tail -22 "$OUT/serve_http_$server.log"
  kill $pid; wait $pid 2>/dev/null
  grep -E "serves with Sketch&Walk|Error|error" "$OUT/serve_http_${server}_server.log" | head -5
  port=$(( port + 1 ))
done
