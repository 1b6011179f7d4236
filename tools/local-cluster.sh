#!/usr/bin/env bash
# local-cluster.sh — starts and stops a keel cluster on this machine's loopback, one keeld per
# node with its own data dir and ports, for tests, benchmarks and trying things out.
# Run with --help for the usage and the port layout.
set -euo pipefail

usage() {
    cat <<EOF
Usage: tools/local-cluster.sh start [--nodes N] [--dir DIR] [--base-port P] [--shards S]
                                    [--timeout SEC] [-- KEELD-FLAGS...]
       tools/local-cluster.sh stop  [--dir DIR] [--timeout SEC]

start  starts N keeld processes (nodes n1..nN) on 127.0.0.1, each with its data dir
       DIR/nI and its log DIR/nI.log, records "nI PID" lines in DIR/pids, waits until
       'keelctl endpoint status' shows a leader for every shard on every node, and prints
       the client endpoints, comma-separated, on its last line:
           127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579
       (give that line to keelctl --endpoints or keelbench --endpoints).
stop   sends SIGTERM to every PID of DIR/pids that is still a keeld, waits up to the
       timeout, then SIGKILLs what is left, and removes DIR/pids. Data dirs are kept
       (remove DIR to start from scratch).

Options:
  --nodes N       nodes (default 3)
  --dir DIR       where data dirs, logs and the pid file go (default ./local-cluster)
  --base-port P   port layout base (default 2279, so n1 serves clients on 2379)
  --shards S      shards per node, passed to keeld (default: keeld's, one per core); at
                  most 49 (the port layout below)
  --timeout SEC   start: seconds to wait for every shard's leader (default 30);
                  stop: seconds between SIGTERM and SIGKILL (default 10)
  -- FLAGS...     start: more flags for every keeld (e.g. -- --split-keys 8)

Port layout, node i = 1..N:
  client (router) port   C(i) = P + 100*i             n1: 2379, n2: 2479, n3: 2579
  client port of shard s C(i) + 1 + s                 n1: 2380, 2381, ...
  peer port (shard 0)    R(i) = P + 100*i + 50        n1: 2429, n2: 2529, n3: 2629
  peer port of shard s   R(i) + s                     n1: 2429, 2430, ...
Each keeld runs as:
  keeld --name nI --initial-cluster n1=http://127.0.0.1:R(1),...,nN=http://127.0.0.1:R(N)
        --initial-cluster-state new --listen-client 127.0.0.1:C(i)
        --listen-peer 127.0.0.1:R(i) --data-dir DIR/nI [--shards S]

Programs: \$KEEL_BUILD/bin/keeld and keelctl when KEEL_BUILD is set, else build/bin/ of this
repository. Exit status: 0 ok, 1 a node failed or the cluster did not elect leaders in
time (the message names the log to read), 2 usage.
EOF
}

die_usage() {
    echo "local-cluster.sh: $1" >&2
    echo "Run tools/local-cluster.sh --help for the usage." >&2
    exit 2
}

die() {
    echo "local-cluster.sh: $1" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${KEEL_BUILD:+$KEEL_BUILD/bin}
BIN=${BIN:-$ROOT/build/bin}

CMD=${1:-}
[ -n "$CMD" ] || die_usage "no command (start or stop)"
shift
NODES=3
DIR=./local-cluster
BASE=2279
SHARDS=
TIMEOUT=
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
    --) shift; EXTRA=("$@"); break ;;
    --nodes) NODES=${2:-}; shift 2 || die_usage "--nodes needs a value" ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    --dir) DIR=${2:-}; shift 2 || die_usage "--dir needs a value" ;;
    --dir=*) DIR=${1#*=}; shift ;;
    --base-port) BASE=${2:-}; shift 2 || die_usage "--base-port needs a value" ;;
    --base-port=*) BASE=${1#*=}; shift ;;
    --shards) SHARDS=${2:-}; shift 2 || die_usage "--shards needs a value" ;;
    --shards=*) SHARDS=${1#*=}; shift ;;
    --timeout) TIMEOUT=${2:-}; shift 2 || die_usage "--timeout needs a value" ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument: $1" ;;
    esac
done
case "$CMD" in
-h | --help) usage; exit 0 ;;
start | stop) ;;
*) die_usage "unknown command: $CMD (start or stop)" ;;
esac

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
if ! is_uint "$NODES" || [ "$NODES" -lt 1 ] || [ "$NODES" -gt 9 ]; then
    die_usage "--nodes: 1 to 9 (a Raft group holds at most 9 members)"
fi
if ! is_uint "$BASE" || [ "$BASE" -lt 1 ]; then die_usage "--base-port: a port number"; fi
[ $((BASE + 100 * NODES + 50 + 49)) -le 65535 ] || die_usage "--base-port too high for $NODES nodes"
[ -z "$SHARDS" ] || { is_uint "$SHARDS" && [ "$SHARDS" -ge 1 ] && [ "$SHARDS" -le 49 ]; } ||
    die_usage "--shards: 1 to 49 (the port layout leaves 49 ports per node)"
[ -z "$TIMEOUT" ] || { is_uint "$TIMEOUT" && [ "$TIMEOUT" -ge 1 ]; } ||
    die_usage "--timeout: whole seconds >= 1"
[ -n "$DIR" ] || die_usage "--dir must not be empty"
PIDS=$DIR/pids

client_port() { echo $((BASE + 100 * $1)); }
peer_port() { echo $((BASE + 100 * $1 + 50)); }

# A PID from the pid file that is still node NAME's keeld (a reused PID is left alone).
is_our_keeld() {
    local name=$1 pid=$2
    [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -F -- "keeld" &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -F -- "--data-dir $DIR/$name "
}

stop_cluster() {
    local wait_s=${TIMEOUT:-10} name pid live
    [ -f "$PIDS" ] || { echo "local-cluster.sh: no $PIDS: nothing to stop"; return 0; }
    while read -r name pid; do
        if is_our_keeld "$name" "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    done <"$PIDS"
    for ((t = 0; t < wait_s * 10; t++)); do
        live=0
        while read -r name pid; do is_our_keeld "$name" "$pid" && live=1; done <"$PIDS"
        [ "$live" -eq 0 ] && break
        sleep 0.1
    done
    while read -r name pid; do
        if is_our_keeld "$name" "$pid"; then
            echo "local-cluster.sh: $name (pid $pid) ignored SIGTERM for ${wait_s}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done <"$PIDS"
    rm -f "$PIDS"
    echo "stopped"
}

# The nodes' endpoints, comma-separated.
endpoints() {
    local eps="" i
    for ((i = 1; i <= NODES; i++)); do eps+="${eps:+,}127.0.0.1:$(client_port "$i")"; done
    echo "$eps"
}

# Fails (naming the log) when a node has exited.
check_alive() {
    local name pid
    while read -r name pid; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null && st=0 || st=$?
            echo "local-cluster.sh: $name (pid $pid) exited (status $st): read $DIR/$name.log" >&2
            tail -n 5 "$DIR/$name.log" >&2 || true
            return 1
        fi
    done <"$PIDS"
}

# 0 when every node answers endpoint status and every shard it reports has a leader row.
# Sets WHY to what is missing.
cluster_ready() {
    local out
    WHY=""
    if ! out=$("$BIN/keelctl" --timeout 1000 --endpoints "$(endpoints)" endpoint status 2>&1); then
        WHY=$(echo "$out" | grep '^Error' | paste -sd ';' -)
        return 1
    fi
    # Rows: endpoint, id, shard, role, leader, term, commit, applied, last, revision, lag.
    WHY=$(echo "$out" | awk -F', ' -v nodes="$NODES" '
        NF >= 5 { ep[$1] = 1; shard[$3] = 1; if ($4 == "leader") led[$3] = 1 }
        END {
            n = 0; for (e in ep) n++
            if (n < nodes) { print n " of " nodes " nodes answered"; exit }
            for (s in shard) if (!(s in led)) { print "shard " s " has no leader"; exit }
            if (length(shard) == 0) print "no shard reported"
        }')
    [ -z "$WHY" ]
}

# The logs of the nodes WHY names (an endpoint that failed), else every node's.
logs_to_read() {
    local i logs=""
    for ((i = 1; i <= NODES; i++)); do
        if [[ "$WHY" == *"127.0.0.1:$(client_port "$i")"* ]]; then logs+="${logs:+ }$DIR/n$i.log"; fi
    done
    echo "${logs:-$DIR/n1.log ... $DIR/n$NODES.log (no node names itself leader of that shard)}"
}

start_cluster() {
    local wait_s=${TIMEOUT:-30} i name cluster="" pid
    [ -x "$BIN/keeld" ] || die "no $BIN/keeld: build first (make) or set KEEL_BUILD"
    [ -x "$BIN/keelctl" ] || die "no $BIN/keelctl: build first (make) or set KEEL_BUILD"
    if [ -f "$PIDS" ]; then
        while read -r name pid; do
            is_our_keeld "$name" "$pid" && die "$name (pid $pid) of $PIDS still runs: stop it first"
        done <"$PIDS"
        rm -f "$PIDS"
    fi
    mkdir -p "$DIR"
    for ((i = 1; i <= NODES; i++)); do
        cluster+="${cluster:+,}n$i=http://127.0.0.1:$(peer_port "$i")"
    done
    : >"$PIDS"
    for ((i = 1; i <= NODES; i++)); do
        name=n$i
        mkdir -p "$DIR/$name"
        "$BIN/keeld" --name "$name" --initial-cluster "$cluster" --initial-cluster-state new \
            --listen-client "127.0.0.1:$(client_port "$i")" \
            --listen-peer "127.0.0.1:$(peer_port "$i")" --data-dir "$DIR/$name" \
            ${SHARDS:+--shards "$SHARDS"} ${EXTRA[@]+"${EXTRA[@]}"} >"$DIR/$name.log" 2>&1 &
        echo "$name $!" >>"$PIDS"
    done
    WHY="not asked yet"
    for ((t = 0; t < wait_s * 5; t++)); do
        check_alive || { stop_cluster >/dev/null; exit 1; }
        cluster_ready && break
        sleep 0.2
    done
    if [ -n "$WHY" ]; then
        echo "local-cluster.sh: no leader for every shard after ${wait_s}s: $WHY" >&2
        echo "local-cluster.sh: read $(logs_to_read); the nodes are still running:" \
            "tools/local-cluster.sh stop --dir $DIR" >&2
        exit 1
    fi
    "$BIN/keelctl" --endpoints "$(endpoints)" -w table endpoint status || true
    endpoints
}

if [ "$CMD" = start ]; then start_cluster; else stop_cluster; fi
