#!/usr/bin/env bash
# keeld_tsan.sh — keeld's threads under ThreadSanitizer: a keeld built with -DKEEL_TSAN=ON serves a
# mixed load on its router port (so requests cross cores through xcore: forwards, replies,
# doorbells, gathers), snapshots while it does, then drains on SIGTERM. Any data race makes TSan
# (halt_on_error=1) stop keeld with exit 66 and a report; the script fails then. Runs twice: with
# the default io_uring mode and MSG_RING doorbells, and with the plain ring and eventfd doorbells.
#
# Usage: tests/tsan/keeld_tsan.sh BUILD_DIR   (BUILD_DIR/bin holds keeld, keelctl, keelbench)
set -euo pipefail
BIN=${1:?usage: keeld_tsan.sh BUILD_DIR}/bin
for p in keeld keelctl keelbench; do
    [[ -x $BIN/$p ]] || { echo "keeld_tsan: $BIN/$p is missing" >&2; exit 1; }
done

PORT=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../../tools/free_port.py" 2)
DIR=$(mktemp -d /tmp/keeld_tsan.XXXXXX)
LOG=$DIR/keeld.log
PID=""
cleanup() {
    [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(cd "$(dirname "$0")" && pwd)/suppressions.txt"
run_once() {
echo "keeld_tsan: keeld $*"
rm -rf "$DIR/data"
"$BIN/keeld" --data-dir "$DIR/data" --listen-client "127.0.0.1:$PORT" --shards 2 \
    --split-keys 8 --snapshot-wal-bytes 1M "$@" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do
    "$BIN/keelctl" --endpoints "127.0.0.1:$PORT" status >/dev/null 2>&1 && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG"; echo "keeld_tsan: keeld died at start"; exit 1; }
    sleep 0.2
done

ep="127.0.0.1:$PORT"
"$BIN/keelbench" --endpoints "$ep" --op mixed --read-ratio 0.5 --conns 8 --depth 8 --keys 5000 \
    --duration 3 --warmup 0 | tail -1
"$BIN/keelctl" --endpoints "$ep" get 0 --from-key --count-only
"$BIN/keelctl" --endpoints "$ep" status -w table
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
if ((rc != 0)) || grep -q 'ThreadSanitizer' "$LOG"; then
    cat "$LOG"
    echo "keeld_tsan: keeld exited $rc under ThreadSanitizer" >&2
    exit 1
fi
grep -c snapshot "$LOG" | xargs echo "keeld_tsan: ok; snapshot log lines:"
}

# The default mode (MSG_RING doorbells), then the fallbacks (plain ring, eventfd doorbells).
run_once
run_once --io-uring-mode plain --no-msg-ring
