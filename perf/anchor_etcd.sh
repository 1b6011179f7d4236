#!/usr/bin/env bash
# anchor_etcd.sh — starts and stops, by PID, a loopback etcd cluster of 1 or 3 members from
# Debian's etcd-server (etcd 3.4) with its durable defaults, for keelbench's comparisons (issue 5).
# Run with --help for the usage and the port layout.
set -euo pipefail

ANCHOR=anchor_etcd.sh
DEFAULT_DIR=./anchor-etcd
DEFAULT_BASE=2379
STOP_SEC=10
ETCD=${ETCD:-etcd}
ETCDCTL=${ETCDCTL:-etcdctl}
# 8 GiB: etcd's largest recommended quota. 1,000,000 keys x (16 B key + 256 B value) is ~0.3 GB
# of payload; bbolt's pages, the revision index and free pages take several times that, and the
# default quota (2 GiB) would raise the NOSPACE alarm partway through a big load.
QUOTA_BYTES=$((8 * 1024 * 1024 * 1024))

sys_usage() {
    cat <<EOF
Usage: perf/anchor_etcd.sh start [--dir DIR] [--members N] [--base-port P] [--timeout SEC]
       perf/anchor_etcd.sh stop [--dir DIR]
       perf/anchor_etcd.sh restart-member [--dir DIR] --member I [--timeout SEC]

start           starts N etcd members (m1..mN, default 1) on 127.0.0.1, each with its data
                dir DIR/mI and its log DIR/mI.log, records "mI PID" lines in DIR/pids and
                DIR/anchor.conf, waits until every member answers 'etcdctl endpoint health'
                and one member is leader (default timeout 60 s; on failure prints the logs'
                tails and stops the members), then prints the client endpoints on its last line:
                    127.0.0.1:2379,127.0.0.1:2389,127.0.0.1:2399
stop            SIGTERM to every pid of DIR/pids that is still that member's etcd (the
                followers first, then the leader: a leader stopped together with its followers
                waits 7 s for a leadership transfer), SIGKILL after ${STOP_SEC} s; never kills by
                name. Data dirs are kept (remove DIR to start from scratch).
restart-member  stops member I (SIGTERM, by pid), starts it again on the same data dir and
                prints "recovery_s=X": seconds from its exec until the cluster is healthy again
                (default timeout 300 s).

Port layout, member i = 1..N (P = --base-port, default ${DEFAULT_BASE}):
  client port   C(i) = P + 10*(i-1)     m1: P, m2: P+10, m3: P+20
  peer port     C(i) + 1                m1: P+1, ...
Each member runs as:
  etcd --name mI --data-dir DIR/mI --listen-client-urls http://127.0.0.1:C(i)
       --advertise-client-urls http://127.0.0.1:C(i) --listen-peer-urls http://127.0.0.1:C(i)+1
       --initial-advertise-peer-urls http://127.0.0.1:C(i)+1
       --initial-cluster m1=http://127.0.0.1:C(1)+1,... --initial-cluster-state new
       --initial-cluster-token anchor-etcd --quota-backend-bytes ${QUOTA_BYTES}
       --logger zap --log-outputs stderr --log-level warn
Durable defaults: the WAL is fsynced before every commit (no --unsafe-no-fsync), default
--snapshot-count, heartbeat and election timeout. The quota is raised to 8 GiB so 1,000,000
keys of 256 B fit. Programs: \$ETCD and \$ETCDCTL (default etcd, etcdctl from PATH).
Exit status: 0 ok, 1 failed (the message names the log to read), 2 usage.
EOF
}

sys_installed() {
    command -v "$ETCD" >/dev/null && command -v "$ETCDCTL" >/dev/null && return 0
    echo "$ANCHOR: etcd or etcdctl not found: install Debian's etcd-server and etcd-client" \
        "(tools/install-deps.sh)" >&2
    return 1
}

peer_url() { echo "http://127.0.0.1:$(($(client_port "$1") + 1))"; }

sys_prepare() {
    local i
    INITIAL_CLUSTER=""
    for ((i = 1; i <= MEMBERS; i++)); do
        INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}m$i=$(peer_url "$i")"
    done
}

sys_launch() {
    local i=$1 client
    client=http://127.0.0.1:$(client_port "$i")
    [ -n "${INITIAL_CLUSTER:-}" ] || sys_prepare
    "$ETCD" --name "m$i" --data-dir "$DIR/m$i" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$(peer_url "$i")" --initial-advertise-peer-urls "$(peer_url "$i")" \
        --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state new \
        --initial-cluster-token anchor-etcd --quota-backend-bytes "$QUOTA_BYTES" \
        --logger zap --log-outputs stderr --log-level warn \
        </dev/null >>"$(member_log "$i")" 2>&1 &
}

sys_owns() {
    local cmdline
    [ -r "/proc/$2/cmdline" ] || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$2/cmdline") || return 1
    [[ $cmdline == *etcd* && $cmdline == *"--data-dir $DIR/m$1 "* ]]
}

# Healthy: every member answers 'endpoint health' (a linearizable get through Raft) and
# 'endpoint status' shows exactly one leader.
sys_healthy() {
    local out leaders
    if ! out=$("$ETCDCTL" --endpoints "$(endpoints)" --dial-timeout 1s --command-timeout 2s \
        endpoint health 2>&1); then
        WHY=$(echo "$out" | grep -v 'is healthy' | head -3 | paste -sd ';' -)
        return 1
    fi
    if ! out=$("$ETCDCTL" --endpoints "$(endpoints)" --dial-timeout 1s --command-timeout 2s \
        endpoint status -w simple 2>&1); then
        WHY="endpoint status failed: $(echo "$out" | head -3 | paste -sd ';' -)"
        return 1
    fi
    # Rows: endpoint, id, version, db size, is leader, is learner, term, index, ...
    leaders=$(echo "$out" | awk -F', ' 'NF >= 5 && $5 == "true" { n++ } END { print n + 0 }')
    WHY="$leaders members say they are leader"
    [ "$leaders" -eq 1 ]
}

# The leader's member number (from its client port), if a member says it leads.
sys_leader() {
    local port
    port=$("$ETCDCTL" --endpoints "$(endpoints)" --dial-timeout 1s --command-timeout 2s \
        endpoint status -w simple 2>/dev/null | awk -F', ' 'NF >= 5 && $5 == "true" {
            sub(/.*:/, "", $1); print $1; exit }')
    [ -n "$port" ] && echo $(((port - BASE) / 10 + 1))
}

# shellcheck source=perf/anchor_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/anchor_lib.sh"
anchor_main "$@"
