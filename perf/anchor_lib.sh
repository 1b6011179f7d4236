# shellcheck shell=bash
# anchor_lib.sh — what perf/anchor_etcd.sh and perf/anchor_zk.sh share (sourced, not run): the
# command line, the pid file, start / stop / restart-member by PID and the wait until healthy.
#
# The sourcing script sets ANCHOR (its name, for messages), DEFAULT_DIR, DEFAULT_BASE and
# STOP_SEC, defines these hooks, then calls anchor_main "$@":
#   sys_usage             prints the usage text
#   sys_installed         0 when the server and its client tools exist; else prints why and
#                         which Debian packages bring them (tools/install-deps.sh)
#   sys_prepare           writes what every member needs before the first start (configs)
#   sys_launch I          starts member I in the background (stdin /dev/null, stdout and
#                         stderr to "$(member_log I)"); the server must be the process itself
#                         (exec, no wrapper), so $! is the pid to record
#   sys_owns I PID        0 when PID is still member I's server (its cmdline names member I's
#                         data dir or config), so a reused pid is never signalled
#   sys_healthy           0 when every member answers and one leader exists; else sets WHY
#   sys_leader            (optional) prints the leader's member number; stop stops it last
#
# Layout of DIR: DIR/anchor.conf ("members=N base_port=P"), DIR/pids ("mI PID" per member),
# DIR/mI/ (member I's data), DIR/mI.log (its log). Members are m1..mN.
# Exit status of every command: 0 ok, 1 failed (the message names the log to read), 2 usage.

die_usage() {
    echo "$ANCHOR: $1" >&2
    echo "Run $0 --help for the usage." >&2
    exit 2
}

die() {
    echo "$ANCHOR: $1" >&2
    exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Client port of member I; the sourcing script's header documents the whole layout.
client_port() { echo $((BASE + 10 * ($1 - 1))); }

member_log() { echo "$DIR/m$1.log"; }

# The client endpoints, comma-separated: 127.0.0.1:C(1),...,127.0.0.1:C(N).
endpoints() {
    local eps="" i
    for ((i = 1; i <= MEMBERS; i++)); do eps+="${eps:+,}127.0.0.1:$(client_port "$i")"; done
    echo "$eps"
}

now_s() { echo "$EPOCHREALTIME"; }

elapsed_s() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# Sets CMD, DIR, MEMBERS, BASE, MEMBER, TIMEOUT from the command line.
parse_args() {
    CMD=${1:-}
    [ -n "$CMD" ] || die_usage "no command (start, stop or restart-member)"
    shift
    DIR=$DEFAULT_DIR MEMBERS=1 BASE=$DEFAULT_BASE MEMBER="" TIMEOUT=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --dir | --members | --base-port | --member | --timeout)
            [ $# -ge 2 ] || die_usage "$1 needs a value"
            set_opt "$1" "$2"
            shift 2
            ;;
        --*=*) set_opt "${1%%=*}" "${1#*=}"; shift ;;
        -h | --help) sys_usage; exit 0 ;;
        *) die_usage "unknown argument: $1" ;;
        esac
    done
    case "$CMD" in
    -h | --help) sys_usage; exit 0 ;;
    start | stop | restart-member) ;;
    *) die_usage "unknown command: $CMD (start, stop or restart-member)" ;;
    esac
    check_args
}

set_opt() {
    case "$1" in
    --dir) DIR=$2 ;;
    --members) MEMBERS=$2 ;;
    --base-port) BASE=$2 ;;
    --member) MEMBER=$2 ;;
    --timeout) TIMEOUT=$2 ;;
    *) die_usage "unknown argument: $1" ;;
    esac
}

check_args() {
    [ -n "$DIR" ] || die_usage "--dir must not be empty"
    if ! is_uint "$MEMBERS" || [ "$MEMBERS" -lt 1 ] || [ "$MEMBERS" -gt 9 ]; then
        die_usage "--members: 1 to 9 (1 or 3 are the benchmark's)"
    fi
    if ! is_uint "$BASE" || [ "$BASE" -lt 1024 ] || [ $((BASE + 10 * MEMBERS)) -gt 65535 ]; then
        die_usage "--base-port: a port number from 1024, with room for $MEMBERS members above it"
    fi
    [ -z "$TIMEOUT" ] || { is_uint "$TIMEOUT" && [ "$TIMEOUT" -ge 1 ]; } ||
        die_usage "--timeout: whole seconds >= 1"
    if [ "$CMD" = restart-member ]; then
        if ! is_uint "$MEMBER" || [ "$MEMBER" -lt 1 ]; then
            die_usage "restart-member needs --member N (1..)"
        fi
    fi
    # Absolute, so the members' command lines (which sys_owns matches) do not depend on the
    # caller's working directory.
    if [ -d "$DIR" ]; then DIR=$(cd "$DIR" && pwd); elif [[ $DIR != /* ]]; then DIR=$PWD/$DIR; fi
    PIDS=$DIR/pids
}

# Loads members and base port of the cluster in DIR (for stop and restart-member).
load_conf() {
    [ -f "$DIR/anchor.conf" ] || die "no $DIR/anchor.conf: no cluster was started in $DIR"
    MEMBERS=$(sed -n 's/.*members=\([0-9]*\).*/\1/p' "$DIR/anchor.conf")
    BASE=$(sed -n 's/.*base_port=\([0-9]*\).*/\1/p' "$DIR/anchor.conf")
    if ! is_uint "$MEMBERS" || ! is_uint "$BASE"; then die "$DIR/anchor.conf is damaged"; fi
}

pid_of() { awk -v n="m$1" '$1 == n { print $2 }' "$PIDS" 2>/dev/null; }

# Replaces member I's line of the pid file with PID.
record_pid() {
    local tmp=$PIDS.tmp
    { grep -v "^m$1 " "$PIDS" 2>/dev/null || true; echo "m$1 $2"; } | sort >"$tmp"
    mv "$tmp" "$PIDS"
}

# 0 while PID runs: exists and is neither a zombie nor dead (a zombie holds no port or file).
proc_running() {
    local stat
    stat=$(cat 2>/dev/null "/proc/$1/stat") || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

# 0 while member I's recorded pid is still its server (so a reused pid is never signalled).
member_owned() {
    local pid
    pid=$(pid_of "$1")
    [ -n "$pid" ] && sys_owns "$1" "$pid"
}

# Waits up to $1 tenths of a second until none of the pids $2... runs; 0 when none does.
wait_gone() {
    local tenths=$1 t pid live
    shift
    for ((t = 0; t <= tenths; t++)); do
        live=0
        for pid in "$@"; do proc_running "$pid" && live=1; done
        [ "$live" -eq 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# SIGTERM to the members given (numbers) that still run their server, SIGKILL to those alive
# after STOP_SEC; returns once every one has exited (its ports and files closed).
stop_members() {
    local i pids=()
    for i in "$@"; do
        if member_owned "$i"; then
            pids+=("$(pid_of "$i")")
            kill -TERM "$(pid_of "$i")" 2>/dev/null || true
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    wait_gone $((STOP_SEC * 10)) "${pids[@]}" && return 0
    for i in "$@"; do
        if member_owned "$i"; then
            echo "$ANCHOR: m$i (pid $(pid_of "$i")) ignored SIGTERM for ${STOP_SEC}s: SIGKILL" >&2
            kill -KILL "$(pid_of "$i")" 2>/dev/null || true
        fi
    done
    wait_gone 50 "${pids[@]}" || die "a member survived SIGKILL: pids ${pids[*]}"
}

# Stops the leader last when the system names one (sys_leader, optional): an etcd leader
# that is stopped while its followers are stopping waits 7 s for a leadership transfer.
stop_cluster() {
    local i leader="" others=()
    [ -f "$PIDS" ] || { echo "$ANCHOR: no $PIDS: nothing to stop"; return 0; }
    load_conf
    if declare -F sys_leader >/dev/null; then leader=$(sys_leader 2>/dev/null) || leader=""; fi
    for ((i = 1; i <= MEMBERS; i++)); do [ "$i" = "$leader" ] || others+=("$i"); done
    [ ${#others[@]} -eq 0 ] || stop_members "${others[@]}"
    [ -z "$leader" ] || stop_members "$leader"
    rm -f "$PIDS"
    echo "stopped"
}

launch_member() {
    sys_launch "$1"
    record_pid "$1" "$!"
}

# Fails, with the tail of its log, when a member has exited. (Running, not owned: right after
# the launch the child may not have exec'd the server yet.)
check_alive() {
    local i pid
    for ((i = 1; i <= MEMBERS; i++)); do
        pid=$(pid_of "$i")
        if ! proc_running "$pid"; then
            echo "$ANCHOR: m$i (pid $pid) exited: read $(member_log "$i"); its tail:" >&2
            tail -n 20 "$(member_log "$i")" >&2 || true
            return 1
        fi
    done
}

# Waits up to WAIT_SEC for sys_healthy; on failure prints why and every member's log tail.
wait_healthy() {
    local deadline_s=$((SECONDS + WAIT_SEC)) i
    WHY="not asked yet"
    while :; do
        check_alive || return 1
        sys_healthy && return 0
        [ "$SECONDS" -lt "$deadline_s" ] || break
        sleep 0.1
    done
    echo "$ANCHOR: not healthy after ${WAIT_SEC}s: $WHY" >&2
    for ((i = 1; i <= MEMBERS; i++)); do
        echo "$ANCHOR: tail of $(member_log "$i"):" >&2
        tail -n 20 "$(member_log "$i")" >&2 || true
    done
    return 1
}

start_cluster() {
    local i name pid
    WAIT_SEC=${TIMEOUT:-60}
    if [ -f "$PIDS" ]; then
        while read -r name pid; do
            sys_owns "${name#m}" "$pid" && die "$name (pid $pid) of $PIDS still runs: stop it first"
        done <"$PIDS"
        rm -f "$PIDS"
    fi
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    PIDS=$DIR/pids
    echo "members=$MEMBERS base_port=$BASE" >"$DIR/anchor.conf"
    sys_prepare
    : >"$PIDS"
    for ((i = 1; i <= MEMBERS; i++)); do launch_member "$i"; done
    if ! wait_healthy; then
        stop_cluster >/dev/null 2>&1 || true
        die "start failed (logs: $DIR/m*.log); the members were stopped"
    fi
    endpoints
}

# Stops member MEMBER by pid, starts it again on its data and prints recovery_s: the seconds
# from its exec until the whole cluster is healthy again.
restart_member() {
    local t0
    WAIT_SEC=${TIMEOUT:-300}
    load_conf
    [ "$MEMBER" -le "$MEMBERS" ] || die_usage "--member $MEMBER: the cluster has $MEMBERS members"
    [ -f "$PIDS" ] || die "no $PIDS: the cluster in $DIR is not running"
    member_owned "$MEMBER" || die "m$MEMBER is not running (pid file $PIDS)"
    stop_members "$MEMBER"
    t0=$(now_s)
    launch_member "$MEMBER"
    if ! wait_healthy; then
        die "m$MEMBER did not recover; the cluster still runs: $0 stop --dir $DIR"
    fi
    echo "recovery_s=$(elapsed_s "$t0")"
}

anchor_main() {
    parse_args "$@"
    case "$CMD" in
    start) sys_installed || exit 1; start_cluster ;;
    stop) stop_cluster ;;
    restart-member) sys_installed || exit 1; restart_member ;;
    esac
}
