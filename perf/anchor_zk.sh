#!/usr/bin/env bash
# anchor_zk.sh — starts and stops, by PID, a loopback ZooKeeper ensemble of 1 or 3 members from
# Debian's zookeeper package (3.8) with its durable defaults, for keelbench's comparisons
# (issue 5). Run with --help for the usage and the port layout.
set -euo pipefail

ANCHOR=anchor_zk.sh
DEFAULT_DIR=./anchor-zk
DEFAULT_BASE=2181
STOP_SEC=10
JAVA=${JAVA:-java}
ZK_JAR=${ZK_JAR:-/usr/share/java/zookeeper.jar}
# zookeeper.jar's manifest brings its dependencies (netty, jute, slf4j-api, ...); slf4j-simple
# is the logging backend (stderr, into DIR/mI.log): Debian's classpath has none, so without it
# ZooKeeper would log nothing at all.
SLF4J_JAR=${SLF4J_JAR:-/usr/share/java/slf4j-simple.jar}
# Heap: -Xmx4g for 1 and 3 members alike. 1,000,000 znodes of 256 B (16 B names) take about
# 0.6-0.8 GB in the DataTree (DataNode, its byte[] data, StatPersisted, the path String in the
# node map and the child name in the parent's set: ~600-800 B each), and a snapshot or a
# follower's sync briefly needs more; 4 GiB leaves room for that and for GC without letting the
# heap limit decide the benchmark. The limit is a ceiling, not a reservation: RSS grows only
# with what the heap really uses. -Xms is left at the JVM default for the same reason.
ZK_HEAP=${ZK_HEAP:--Xmx4g}
ZK_LOG_LEVEL=${ZK_LOG_LEVEL:-warn}

sys_usage() {
    cat <<EOF
Usage: perf/anchor_zk.sh start [--dir DIR] [--members N] [--base-port P] [--timeout SEC]
       perf/anchor_zk.sh stop [--dir DIR]
       perf/anchor_zk.sh restart-member [--dir DIR] --member I [--timeout SEC]

start           starts N ZooKeeper servers (m1..mN, default 1; 1 runs standalone) on
                127.0.0.1, each with DIR/mI/zoo.cfg, DIR/mI/data (snapshots, myid) and
                DIR/mI/datalog (transaction log), and its log DIR/mI.log; records "mI PID"
                lines (the JVM's pid) in DIR/pids and DIR/anchor.conf; waits until every member
                answers the four-letter word srvr with Mode: standalone (1 member) or
                leader/follower with exactly one leader (default timeout 60 s; on failure
                prints the logs' tails and stops the members), then prints the client
                endpoints on its last line:
                    127.0.0.1:2181,127.0.0.1:2191,127.0.0.1:2201
stop            SIGTERM to every pid of DIR/pids that is still that member's JVM, SIGKILL
                after ${STOP_SEC} s; never kills by name. Data dirs are kept.
restart-member  stops member I (SIGTERM, by pid), starts it again on the same data and prints
                "recovery_s=X": seconds from its exec until the ensemble is healthy again
                (default timeout 300 s).

Port layout, member i = 1..N (P = --base-port, default ${DEFAULT_BASE}):
  client port     C(i) = P + 10*(i-1)   m1: P, m2: P+10, m3: P+20
  quorum port     C(i) + 1              (server.i=127.0.0.1:C(i)+1:C(i)+2)
  election port   C(i) + 2
Each member runs as the JVM itself (no wrapper script, so the recorded pid is the server):
  java ${ZK_HEAP} -XX:+ExitOnOutOfMemoryError -cp ${ZK_JAR}:${SLF4J_JAR}
       org.apache.zookeeper.server.quorum.QuorumPeerMain DIR/mI/zoo.cfg
zoo.cfg: tickTime=2000 initLimit=10 syncLimit=5 forceSync=yes (fsync the transaction log
before acknowledging: the default, written out) admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr maxClientCnxns=0 (benchmarks open more than the default 60
connections from 127.0.0.1), clientPortAddress=127.0.0.1, server.i lines for N > 1.
Environment: JAVA, ZK_JAR, SLF4J_JAR, ZK_HEAP (default -Xmx4g), ZK_LOG_LEVEL (default warn).
Exit status: 0 ok, 1 failed (the message names the log to read), 2 usage.
EOF
}

sys_installed() {
    command -v "$JAVA" >/dev/null && [ -r "$ZK_JAR" ] && [ -r "$SLF4J_JAR" ] && return 0
    echo "$ANCHOR: java, $ZK_JAR or $SLF4J_JAR not found: install Debian's zookeeper" \
        "(tools/install-deps.sh)" >&2
    return 1
}

cfg_of() { echo "$DIR/m$1/zoo.cfg"; }

write_cfg() {
    local i=$1 j c
    mkdir -p "$DIR/m$i/data" "$DIR/m$i/datalog"
    echo "$i" >"$DIR/m$i/data/myid"
    {
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$DIR/m$i/data"
        echo "dataLogDir=$DIR/m$i/datalog"
        echo "clientPort=$(client_port "$i")"
        echo "clientPortAddress=127.0.0.1"
        echo "forceSync=yes"
        echo "admin.enableServer=false"
        echo "4lw.commands.whitelist=srvr,ruok,mntr"
        echo "maxClientCnxns=0"
        if [ "$MEMBERS" -gt 1 ]; then
            for ((j = 1; j <= MEMBERS; j++)); do
                c=$(client_port "$j")
                echo "server.$j=127.0.0.1:$((c + 1)):$((c + 2))"
            done
        fi
    } >"$(cfg_of "$i")"
}

sys_prepare() {
    local i
    for ((i = 1; i <= MEMBERS; i++)); do write_cfg "$i"; done
}

sys_launch() {
    local i=$1
    # shellcheck disable=SC2086 # ZK_HEAP may hold several JVM flags
    "$JAVA" $ZK_HEAP -XX:+ExitOnOutOfMemoryError \
        -Dorg.slf4j.simpleLogger.defaultLogLevel="$ZK_LOG_LEVEL" \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -cp "$ZK_JAR:$SLF4J_JAR" org.apache.zookeeper.server.quorum.QuorumPeerMain \
        "$(cfg_of "$i")" \
        </dev/null >>"$(member_log "$i")" 2>&1 &
}

sys_owns() {
    local cmdline
    [ -r "/proc/$2/cmdline" ] || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$2/cmdline") || return 1
    [[ $cmdline == *QuorumPeerMain*" $(cfg_of "$1") "* ]]
}

# Sends a four-letter word to PORT on 127.0.0.1 and prints the answer (fails when refused).
four_letter() {
    # shellcheck disable=SC2016 # $1 and $2 are the inner shell's
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' \
        _ "$1" "$2" 2>/dev/null
}

# Healthy: every member answers srvr with a serving mode; standalone for 1 member, else
# exactly one leader.
sys_healthy() {
    local i mode leaders=0
    for ((i = 1; i <= MEMBERS; i++)); do
        mode=$(four_letter "$(client_port "$i")" srvr | sed -n 's/^Mode: //p') || true
        case "$mode" in
        leader) leaders=$((leaders + 1)) ;;
        follower) ;;
        standalone) [ "$MEMBERS" -eq 1 ] || { WHY="m$i is standalone" && return 1; } ;;
        *) WHY="m$i does not serve yet (srvr: ${mode:-no answer})" && return 1 ;;
        esac
    done
    if [ "$MEMBERS" -gt 1 ] && [ "$leaders" -ne 1 ]; then
        WHY="$leaders members say they are leader"
        return 1
    fi
}

# shellcheck source=perf/anchor_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/anchor_lib.sh"
anchor_main "$@"
