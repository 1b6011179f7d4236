#!/usr/bin/env bash
# mem_load.sh — the memory and recovery case of issue 5 for one system: the resident set of a
# started 1-member server before and after keelbench loads N keys into it, then the time the
# member takes to serve again when restarted on that data. Run with --help for the usage.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: perf/mem_load.sh --system keel|etcd|zookeeper --endpoints EP --pid PID [--dir DIR]
                        [--keys N] [--settle-s S] [--timeout SEC] [--no-restart]
                        [-- MORE-KEELBENCH-FLAGS...]

The server (pid PID, serving EP) must run already, as the only member of its cluster: keel from
tools/local-cluster.sh --nodes 1 (or keeld by hand), etcd and ZooKeeper from
perf/anchor_etcd.sh / perf/anchor_zk.sh start --members 1 (DIR: the --dir given to them).

1. reads VmRSS of PID (/proc/PID/status);
2. runs keelbench --system S --endpoints EP --op load --keys N --key-size 16 --value-size 256
   --conns 16 --depth 64 --threads 2 [MORE-KEELBENCH-FLAGS], timing it (load_s);
3. waits S seconds (default 5) for background work (GC, compaction) to settle, reads VmRSS
   again and prints
       rss_before_mb=X rss_after_mb=X rss_growth_mb=X load_s=X
4. unless --no-restart, stops the member with SIGTERM (by PID) and starts it again on its
   data, then prints the new pid and, as the last line, the seconds from the exec until it
   serves again:
       pid=NEWPID
       recovery_s=X
   etcd, zookeeper: perf/anchor_*.sh restart-member --dir DIR --member 1 (serves = etcdctl
   endpoint health / srvr says standalone). keel: the same keeld command line is run again in
   the same working directory, its output appended to the file the old one wrote to; serves =
   'keelctl get' returns the value of a key (mem_load/sentinel) put before the stop. DIR/pids,
   when it lists PID, is updated to the new pid (so tools/local-cluster.sh stop still works).

Options:
  --keys N         keys to load (default 1000000)
  --settle-s S     seconds between the end of the load and the second RSS reading (default 5)
  --timeout SEC    longest wait for the restarted member (default 300)
Programs: keelbench and keelctl from $KEEL_BUILD/bin (default build/bin of this repository).
MB are MiB. Exit status: 0 ok, 1 a step failed (the message says which), 2 usage.
EOF
}

die_usage() {
    echo "mem_load.sh: $1" >&2
    echo "Run perf/mem_load.sh --help for the usage." >&2
    exit 2
}

die() {
    echo "mem_load.sh: $1" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${KEEL_BUILD:+$KEEL_BUILD/bin}
BIN=${BIN:-$ROOT/build/bin}
SYSTEM="" EP="" PID="" DIR="" KEYS=1000000 SETTLE_S=5 TIMEOUT=300 RESTART=1 EXTRA=()

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --) shift; EXTRA=("$@"); break ;;
        --system | --endpoints | --pid | --dir | --keys | --settle-s | --timeout)
            [ $# -ge 2 ] || die_usage "$1 needs a value"
            case "$1" in
            --system) SYSTEM=$2 ;;
            --endpoints) EP=$2 ;;
            --pid) PID=$2 ;;
            --dir) DIR=$2 ;;
            --keys) KEYS=$2 ;;
            --settle-s) SETTLE_S=$2 ;;
            --timeout) TIMEOUT=$2 ;;
            esac
            shift 2
            ;;
        --no-restart) RESTART=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
        esac
    done
    case "$SYSTEM" in
    keel | etcd | zookeeper) ;;
    *) die_usage "--system: keel, etcd or zookeeper" ;;
    esac
    [ -n "$EP" ] || die_usage "--endpoints: the member's client endpoint (127.0.0.1:PORT)"
    [[ $PID =~ ^[0-9]+$ ]] || die_usage "--pid: the member's server pid"
    [[ $KEYS =~ ^[1-9][0-9]*$ ]] || die_usage "--keys: a count >= 1"
    [[ $SETTLE_S =~ ^[0-9]+$ ]] || die_usage "--settle-s: whole seconds"
    [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die_usage "--timeout: whole seconds >= 1"
    if [ "$SYSTEM" != keel ] && [ "$RESTART" -eq 1 ] && [ -z "$DIR" ]; then
        die_usage "--dir: the cluster's dir (as given to perf/anchor_*.sh), for restart-member"
    fi
}

# 0 while PID runs (exists, not a zombie).
running() {
    local stat
    stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

since_s() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# Runs the load; prints keelbench's summary line on stderr; sets LOAD_S.
load() {
    local t0 out
    t0=$EPOCHREALTIME
    if ! out=$("$BIN/keelbench" --system "$SYSTEM" --endpoints "$EP" --op load --keys "$KEYS" \
        --key-size 16 --value-size 256 --conns 16 --depth 64 --threads 2 \
        ${EXTRA[@]+"${EXTRA[@]}"} 2>&1); then
        echo "$out" | tail -n 15 >&2
        die "keelbench failed (its output is above)"
    fi
    LOAD_S=$(since_s "$t0")
    echo "mem_load.sh: keelbench: $(echo "$out" | tail -1)" >&2
}

# SIGTERM to PID, SIGKILL after 10 s; returns once it no longer runs.
stop_pid() {
    local t
    kill -TERM "$1" 2>/dev/null || true
    for ((t = 0; t < 100; t++)); do running "$1" || return 0; sleep 0.1; done
    echo "mem_load.sh: pid $1 ignored SIGTERM for 10 s: SIGKILL" >&2
    kill -KILL "$1" 2>/dev/null || true
    for ((t = 0; t < 50; t++)); do running "$1" || return 0; sleep 0.1; done
    die "pid $1 survived SIGKILL"
}

# In DIR/pids, the line of pid $1 gets pid $2 (when DIR/pids lists $1).
repoint_pid_file() {
    [ -n "$DIR" ] && [ -f "$DIR/pids" ] || return 0
    awk -v old="$1" -v new="$2" '$2 == old { $2 = new } { print }' "$DIR/pids" >"$DIR/pids.tmp"
    mv "$DIR/pids.tmp" "$DIR/pids"
}

# keel: the same keeld command line again, in the same working directory, appending to the
# file the old one wrote its output to. Prints pid=NEW and recovery_s=X.
restart_keel() {
    local ctl=("$BIN/keelctl" --endpoints "$EP" --timeout 1000) argv=() cwd log t0 new deadline
    "${ctl[@]}" put mem_load/sentinel here >/dev/null || die "keelctl put before the restart failed"
    mapfile -d '' argv <"/proc/$PID/cmdline"
    cwd=$(readlink "/proc/$PID/cwd")
    log=$(readlink "/proc/$PID/fd/2" 2>/dev/null) || log=""
    [ -f "$log" ] || log=${DIR:-$cwd}/keeld-mem_load.log
    stop_pid "$PID"
    t0=$EPOCHREALTIME
    (cd "$cwd" && exec "${argv[@]}" </dev/null >>"$log" 2>&1) &
    new=$!
    repoint_pid_file "$PID" "$new"
    deadline=$((SECONDS + TIMEOUT))
    until [ "$("${ctl[@]}" get mem_load/sentinel --print-value-only 2>/dev/null)" = here ]; do
        running "$new" || { tail -n 15 "$log" >&2; die "the restarted keeld exited: read $log"; }
        [ "$SECONDS" -lt "$deadline" ] || die "the restarted keeld does not serve after ${TIMEOUT}s"
        sleep 0.05
    done
    echo "pid=$new"
    echo "recovery_s=$(since_s "$t0")"
}

restart_anchor() {
    local script out
    script=$ROOT/perf/anchor_${SYSTEM/zookeeper/zk}.sh
    out=$(bash "$script" restart-member --dir "$DIR" --member 1 --timeout "$TIMEOUT") ||
        die "$script restart-member failed"
    echo "pid=$(awk '$1 == "m1" { print $2 }' "$DIR/pids")"
    echo "$out" | grep '^recovery_s=' | tail -1
}

main() {
    local before_kb after_kb
    parse_args "$@"
    [ -x "$BIN/keelbench" ] || die "no $BIN/keelbench: build first (make) or set KEEL_BUILD"
    [ "$SYSTEM" != keel ] || [ -x "$BIN/keelctl" ] || die "no $BIN/keelctl: build or set KEEL_BUILD"
    running "$PID" || die "pid $PID does not run"
    before_kb=$(rss_kb "$PID")
    load
    sleep "$SETTLE_S"
    running "$PID" || die "pid $PID exited during the load"
    after_kb=$(rss_kb "$PID")
    echo "rss_before_mb=$(mb "$before_kb") rss_after_mb=$(mb "$after_kb")" \
        "rss_growth_mb=$(mb $((after_kb - before_kb))) load_s=$LOAD_S"
    [ "$RESTART" -eq 1 ] || return 0
    if [ "$SYSTEM" = keel ]; then restart_keel; else restart_anchor; fi
}

main "$@"
