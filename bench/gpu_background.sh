#!/usr/bin/env bash
# Runs one command on the GPU machine past a call's time limit (a run's command is stopped
# after 10 minutes; issue 22's load run lasts longer). `start` detaches the command in a
# process session of its own (the machine keeps such a process until it goes back; see the
# device README) with OUT=/tmp/bg/<name>, since $OUT is emptied before each call; `wait`
# blocks up to SECONDS for it to end, then copies its files under $OUT/<name>/ and prints its
# exit status. Chain the calls quickly: the machine goes back after ~30 s idle.
#
#   bash bench/gpu_background.sh start sustained bash bench/gpu_serving.sh ...   # returns at once
#   bash bench/gpu_background.sh wait sustained 540                               # next call(s)
set -uo pipefail
cd "$(dirname "$0")/.."
BG=${BG:-/tmp/bg}
action=${1:?start|wait}; name=${2:?name}; shift 2
dir="$BG/$name"
case "$action" in
  start)
    [ $# -gt 0 ] || { echo "usage: $0 start NAME COMMAND..." >&2; exit 2; }
    rm -rf "$dir"; mkdir -p "$dir"
    OUT="$dir" setsid bash -c '"$@" > "$OUT/command.log" 2>&1; echo $? > "$OUT/rc"' bash "$@" \
      < /dev/null > /dev/null 2>&1 &
    echo "== $name started at $(date -u +%T) (pid $!): $*"
    ;;
  wait)
    limit=${1:-540}; start=$(date +%s)
    [ -d "$dir" ] || { echo "== $name was never started on this machine" >&2; exit 1; }
    while [ ! -f "$dir/rc" ] && [ $(( $(date +%s) - start )) -lt "$limit" ]; do sleep 5; done
    mkdir -p "${OUT:-/tmp/sketchwalk-out}/$name" && cp -a "$dir"/. "${OUT:-/tmp/sketchwalk-out}/$name/"
    if [ -f "$dir/rc" ]; then echo "== $name ended, rc=$(cat "$dir/rc")"; else echo "== $name still running"; fi
    tail -15 "$dir/command.log"
    ;;
  *) echo "usage: $0 start|wait NAME ..." >&2; exit 2 ;;
esac
