#!/usr/bin/env bash
# bench_cluster.sh — the replicated figures of issue 4, in one run: keelbench against a fresh
# local 3-node cluster (tools/local-cluster.sh: 3 keelds on 127.0.0.1, 2 shards each, so 2 Raft
# groups), every put acknowledged only once durable (fdatasync) on a quorum.
#
#   perf/bench_cluster.sh [--quick] [--build DIR] [--shard-aware] [--failover]
#
# Cases: saturated puts and linearizable gets, 64 connections x 16 outstanding, 256 B values,
# 16 B keys, 100,000 keys, connections spread over the three nodes' client ports (a follower
# forwards writes to its group's leader; any member serves linearizable reads after a read-index
# round). --shard-aware sends each shard's requests to its leader's shard port instead.
# --failover also runs perf/failover_bench (kill -9 a leader, 6 rounds, median time to the
# first write a new leader acknowledged). keelbench's keys are hex: the cluster splits at "8".
# keeld CPU seconds of all three nodes per case are read from /proc. KEELD_FLAGS adds flags to
# every keeld (e.g. KEELD_FLAGS="--leader-flush-gap-ms 0"). Ends with a summary line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=${KEEL_BUILD:-build}
DUR=10
AWARE=""
FAILOVER=0
while (($#)); do
    case $1 in
    --quick) DUR=3 ;;
    --build) BUILD=$2; shift ;;
    --shard-aware) AWARE=--shard-aware ;;
    --failover) FAILOVER=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench_cluster: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
BIN=$BUILD/bin
[[ -x $BIN/keeld && -x $BIN/keelbench ]] || make release >/dev/null
DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench_cluster.XXXXXX")
BASE=$((20000 + RANDOM % 8000))
export KEEL_BUILD=$BUILD
trap 'bash tools/local-cluster.sh stop --dir "$DIR/c" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
EP=$(bash tools/local-cluster.sh start --dir "$DIR/c" --base-port "$BASE" --shards 2 \
    -- --split-keys 8 ${KEELD_FLAGS:-} | tail -1)
PIDS=$(cat "$DIR/c/pids" 2>/dev/null | awk '{print $NF}' | tr '\n' ' ')
B=("$BIN/keelbench" --endpoints "$EP" --keys 100000 --key-size 16 --value-size 256
    --duration "$DUR" $AWARE)
source perf/bench_lib.sh # (the script runs from the repository root)
echo "bench_cluster: 3 nodes x 2 shards on 127.0.0.1 ($EP) ${AWARE:+(shard-aware client)}"
sleep 6 # leader balancing spreads the two groups' leaders over the nodes
run put_64x16 --op put --conns 64 --depth 16 --threads 2
run get_64x16 --op get --conns 64 --depth 16 --threads 2 --no-preload
FO=""
if ((FAILOVER)); then
    bash tools/local-cluster.sh stop --dir "$DIR/c" >/dev/null
    line=$("$BIN/failover_bench" --rounds 6 | tail -1)
    echo "failover   ${line#summary: }"
    FO=" failover_median_ms=$(sed -n 's/.*failover_median_ms=\([^ ]*\).*/\1/p' <<<"$line")"
fi
echo "summary: put_ops_s=$(field put_64x16 ops_s) get_ops_s=$(field get_64x16 ops_s)" \
    "put_p50_ms=$(field put_64x16 p50_ms) get_p50_ms=$(field get_64x16 p50_ms)$FO"
