#!/usr/bin/env bash
# test_anchors.sh — perf/anchor_etcd.sh and perf/anchor_zk.sh against Debian's etcd 3.4 and
# ZooKeeper 3.8 on 127.0.0.1: for each system a 1-member and a 3-member cluster is started (the
# last line lists the client endpoints, DIR/pids holds one live pid per member), answers
# (etcd: etcdctl put on m1, linearizable get on every member; ZooKeeper: ruok/srvr on every
# member, zkCli create on m1 and get on every member), survives restart-member of m2 (recovery_s
# printed, the data still there), and is stopped by PID with no process of its dir left.
#
# Usage: tests/perf/test_anchors.sh
# Exits 77 (SKIP) when etcd/etcdctl or java/ZooKeeper are not installed, 0 when every check
# passes, 1 otherwise. Ports: 25000-25999 (the anchors' range of issue 5).
set -uo pipefail

ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
missing=""
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
    missing+=" etcd/etcdctl (Debian etcd-server, etcd-client)"
command -v java >/dev/null && [ -r /usr/share/java/zookeeper.jar ] && [ -x "$ZKCLI" ] ||
    missing+=" java/ZooKeeper (Debian zookeeper)"
if [ -n "$missing" ]; then
    echo "SKIP: test_anchors: not installed:$missing; run tools/install-deps.sh"
    exit 77
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$(mktemp -d /tmp/test_anchors.XXXXXX)
# Four clusters of at most 23 ports each, 30 apart, inside 25000-25999.
BASE=$((25000 + (RANDOM % 8) * 120))
FAILS=0
cleanup() {
    local c
    for c in etcd1 etcd3 zk1 zk3; do
        [ -f "$DIR/$c/pids" ] || continue
        bash "$ROOT/perf/anchor_${c%[13]}.sh" stop --dir "$DIR/$c" >/dev/null 2>&1
    done
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() { echo "ok   $1"; }
fail() {
    echo "FAIL $1"
    # shellcheck disable=SC2001 # every line of a multi-line text
    [ -z "${2:-}" ] || echo "$2" | sed 's/^/     /'
    FAILS=$((FAILS + 1))
}

expect() { # expect NAME WANT GOT
    if [[ $3 == *"$2"* ]]; then ok "$1"; else fail "$1: want '$2' in:" "$3"; fi
}

pids_of() { awk '{ print $2 }' "$1/pids"; }

# 0 while PID runs (exists, not a zombie: a zombie holds no port or file; init reaps it).
running() {
    local stat
    stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

# The running processes, other than this shell, whose command line names a member of DIR $1.
procs_naming() {
    local f pid
    for f in /proc/[0-9]*/cmdline; do
        pid=${f//[^0-9]/}
        [ "$pid" = "$$" ] && continue
        tr '\0' ' ' 2>/dev/null <"$f" | grep -q -F -- "$1/m" && running "$pid" && echo "$pid"
    done
}

# start SYS NAME MEMBERS PORT: starts the cluster, checks its endpoints and pid file; sets EPS.
start() {
    local sys=$1 d=$DIR/$2 n=$3 port=$4 out pid live=0 want="" i
    # --timeout 120: a loaded 2-core machine can stall ZooKeeper's first election for its
    # initLimit (20 s) and more.
    if ! out=$(bash "$ROOT/perf/anchor_$sys.sh" start --dir "$d" --members "$n" \
        --base-port "$port" --timeout 120 2>&1); then
        fail "$2: start" "$out"
        return 1
    fi
    EPS=$(echo "$out" | tail -1)
    for ((i = 0; i < n; i++)); do want+="${want:+,}127.0.0.1:$((port + 10 * i))"; done
    if [ "$EPS" = "$want" ]; then ok "$2: start prints endpoints $EPS"; else
        fail "$2: endpoints" "$out"
    fi
    for pid in $(pids_of "$d"); do running "$pid" && live=$((live + 1)); done
    if [ "$live" -eq "$n" ]; then ok "$2: $n live pids in pids"; else
        fail "$2: pids" "$(cat "$d/pids")"
    fi
}

# stop SYS NAME: stops the cluster; no pid of its pid file and no process naming its dir is left.
stop() {
    local sys=$1 d=$DIR/$2 pids out left=""
    pids=$(pids_of "$d")
    out=$(bash "$ROOT/perf/anchor_$sys.sh" stop --dir "$d" 2>&1) || fail "$2: stop" "$out"
    for pid in $pids; do running "$pid" && left+=" $pid"; done
    left+=$(procs_naming "$d" | tr '\n' ' ')
    if [ -z "${left// /}" ]; then ok "$2: stop leaves no process"; else
        fail "$2: left running:$left"
    fi
}

restart() { # restart SYS NAME MEMBER
    local out
    out=$(bash "$ROOT/perf/anchor_$1.sh" restart-member --dir "$DIR/$2" --member "$3" 2>&1)
    expect "$2: restart-member m$3 prints recovery_s" "recovery_s=" "$(echo "$out" | tail -1)"
}

etcd_checks() { # etcd_checks NAME MEMBERS ROUND: put anchor-ROUND, get anchor-1..ROUND
    local ep out r e=(etcdctl --dial-timeout 2s --command-timeout 5s)
    out=$("${e[@]}" --endpoints "${EPS%%,*}" put "anchor-$3" "v-$1-$3" 2>&1)
    expect "$1: etcdctl put anchor-$3 on m1" "OK" "$out"
    for ep in ${EPS//,/ }; do
        for ((r = 1; r <= $3; r++)); do
            out=$("${e[@]}" --endpoints "$ep" get "anchor-$r" --print-value-only 2>&1)
            expect "$1: etcdctl get anchor-$r on $ep" "v-$1-$r" "$out"
        done
    done
}

# zk_session EP WANT CMD...: runs the zkCli commands in one session on EP (one JVM start) until
# the output shows every value of WANT (space-separated; a follower may lag), 5 tries at most;
# prints the last output.
zk_session() {
    local ep=$1 want=$2 out t w all
    shift 2
    for ((t = 0; t < 5; t++)); do
        out=$(printf '%s\n' "$@" quit | timeout 30 "$ZKCLI" -server "$ep" 2>&1)
        all=1
        for w in $want; do [[ $out == *"$w"* ]] || all=0; done
        [ "$all" -eq 1 ] && break
        sleep 1
    done
    echo "$out"
}

four_letter() { # four_letter PORT WORD: ZooKeeper's answer to WORD on 127.0.0.1:PORT
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' \
        _ "$1" "$2" 2>/dev/null
}

zk_checks() { # zk_checks NAME MEMBERS ROUND: 4lw on every member, create /anchor-ROUND, get
    local ep out port r cmds want
    for ep in ${EPS//,/ }; do
        port=${ep##*:}
        out=$(four_letter "$port" ruok)
        expect "$1: ruok on $ep" "imok" "$out"
        out=$(four_letter "$port" srvr)
        if [ "$2" -eq 1 ]; then expect "$1: srvr on $ep" "Mode: standalone" "$out"; else
            expect "$1: srvr on $ep" "Mode: " "$(echo "$out" | grep -E 'Mode: (leader|follower)')"
        fi
    done
    # m1 creates /anchor-ROUND; every member reads /anchor-1 .. /anchor-ROUND.
    for ep in ${EPS//,/ }; do
        cmds=() want=""
        [ "$ep" != "${EPS%%,*}" ] || cmds+=("create /anchor-$3 v-$1-$3")
        for ((r = 1; r <= $3; r++)); do cmds+=("get /anchor-$r"); want+=" v-$1-$r"; done
        out=$(zk_session "$ep" "$want" "${cmds[@]}")
        [ "$ep" != "${EPS%%,*}" ] ||
            expect "$1: zkCli create /anchor-$3 on m1" "Created /anchor-$3" "$out"
        for ((r = 1; r <= $3; r++)); do
            expect "$1: zkCli get /anchor-$r on $ep" "v-$1-$r" "$out"
        done
    done
}

run_system() { # run_system SYS CHECKS PORT
    local sys=$1 checks=$2 port=$3
    if start "$sys" "${sys}1" 1 "$port"; then
        "$checks" "${sys}1" 1 1
        restart "$sys" "${sys}1" 1
        "$checks" "${sys}1" 1 2
        stop "$sys" "${sys}1"
    fi
    if start "$sys" "${sys}3" 3 "$((port + 30))"; then
        "$checks" "${sys}3" 3 1
        restart "$sys" "${sys}3" 2
        "$checks" "${sys}3" 3 2
        stop "$sys" "${sys}3"
    fi
}

run_system etcd etcd_checks "$BASE"
run_system zk zk_checks "$((BASE + 60))"

if [ "$FAILS" -ne 0 ]; then
    echo "test_anchors: $FAILS check(s) failed (dir $DIR, base port $BASE)"
    exit 1
fi
echo "test_anchors: all checks passed"
