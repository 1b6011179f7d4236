#!/usr/bin/env bash
# bench_keeld.sh — the single-node figures of issue 3, in one run: keelbench against a fresh keeld
# (2 shards, durable writes: every put is acknowledged after its WAL fdatasync).
#
#   perf/bench_keeld.sh [--quick] [--build DIR] [--shard-aware] [--split-keys K]
#
# Cases: saturated puts and gets (64 connections x 16 outstanding, 256 B values, 16 B keys,
# 100,000 keys), then sequential puts (1 x 1) with keelbench's --fsync-probe measuring the raw
# write+fdatasync latency of the same filesystem in the same run. keelbench's keys are hex, so
# with 2 shards the server is started with --split-keys 8 (half the hex space each); the default
# map puts hex keys on one shard (it is tuned for path-like keys: docs/architecture.md).
# keeld CPU seconds per case are read from /proc, so throughput per CPU second can be compared on
# a machine the load generator shares. Prints one line per case and ends with a summary line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${KEEL_BUILD:-build}
DUR=10
AWARE=""
SPLIT=8
while (($#)); do
    case $1 in
    --quick) DUR=2 ;;
    --build) BUILD=$2; shift ;;
    --shard-aware) AWARE=--shard-aware ;;
    --split-keys) SPLIT=$2; shift ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bench_keeld: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
BIN=$BUILD/bin
[[ -x $BIN/keeld && -x $BIN/keelbench ]] || make release >/dev/null
PORT=$(python3 "$(dirname "${BASH_SOURCE[0]}")/../tools/free_port.py" 2)
DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench_keeld.XXXXXX")
PID=""
trap '[[ -n $PID ]] && kill -TERM $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
"$BIN/keeld" --data-dir "$DIR/data" --listen-client "127.0.0.1:$PORT" --shards 2 \
    --split-keys "$SPLIT" --quiet &
PID=$!
sleep 0.5
PIDS=$PID
B=("$BIN/keelbench" --endpoints "127.0.0.1:$PORT" --keys 100000 --key-size 16 --value-size 256
    --duration "$DUR" $AWARE)
source perf/bench_lib.sh # (the script runs from the repository root)
echo "bench_keeld: keeld 2 shards (split $SPLIT) on 127.0.0.1:$PORT, data in $DIR ${AWARE:+(shard-aware client)}"
run put_64x16 --op put --conns 64 --depth 16 --threads 2
run get_64x16 --op get --conns 64 --depth 16 --threads 2 --no-preload
run put_1x1 --op put --conns 1 --depth 1 --fsync-probe "$DIR/data"
echo "summary: put_ops_s=$(field put_64x16 ops_s) get_ops_s=$(field get_64x16 ops_s)" \
    "put_1x1_p50_ms=$(field put_1x1 p50_ms) fsync_p50_ms=$(field put_1x1 fsync_p50_ms)" \
    "put_p50_vs_fdatasync=$(field put_1x1 put_p50_vs_fdatasync)"
