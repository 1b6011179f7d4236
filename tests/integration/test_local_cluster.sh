#!/usr/bin/env bash
# test_local_cluster.sh — tools/local-cluster.sh and keelctl's cluster commands against a real
# 3-node cluster on 127.0.0.1: start (every shard gets a leader; the last line lists the client
# endpoints), put and get through every node, endpoint status, member list, move-leader, a put
# after the move, stop by PID (no keeld left behind).
#
# Usage: tests/integration/test_local_cluster.sh   (binaries from $KEEL_BIN, default build/bin)
# Exits 77 (skipped) when keeld does not exist, 0 when every check passes, 1 otherwise.
set -uo pipefail

KEEL_BIN=${KEEL_BIN:-build/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KEELCTL=$KEEL_BIN/keelctl
if [[ ! -x $KEEL_BIN/keeld ]]; then
    echo "test_local_cluster: $KEEL_BIN/keeld does not exist yet: skipped"
    exit 77
fi
export KEEL_BUILD=$(cd "$KEEL_BIN/.." && pwd)
DIR=$(mktemp -d /tmp/test_local_cluster.XXXXXX)
# ports below the usual ephemeral range (32768-60999): no outgoing connection takes them
BASE=$((12000 + (RANDOM % 150) * 100))
FAILS=0
cleanup() {
    bash "$ROOT/tools/local-cluster.sh" stop --dir "$DIR" >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

check() { # check NAME COMMAND...: the command must succeed
    local name=$1
    shift
    local out
    if out=$("$@" 2>&1); then
        echo "ok   $name"
    else
        echo "FAIL $name: $*"
        echo "$out" | sed 's/^/     /'
        FAILS=$((FAILS + 1))
    fi
}

expect() { # expect NAME WANT GOT
    if [[ $3 == *"$2"* ]]; then
        echo "ok   $1"
    else
        echo "FAIL $1: want '$2' in:"
        echo "$3" | sed 's/^/     /'
        FAILS=$((FAILS + 1))
    fi
}

OUT=$(bash "$ROOT/tools/local-cluster.sh" start --dir "$DIR" --base-port "$BASE" --shards 2 2>&1)
RC=$?
EP=$(tail -1 <<<"$OUT")
if ((RC != 0)); then
    echo "FAIL start: $OUT"
    for f in "$DIR"/n*.log; do tail -5 "$f"; done
    exit 1
fi
echo "ok   start: $EP"
[[ $(tr ',' '\n' <<<"$EP" | wc -l) == 3 ]] || { echo "FAIL start: 3 endpoints, got $EP"; exit 1; }
IFS=, read -r E1 E2 E3 <<<"$EP"

check "put via n1" "$KEELCTL" --endpoints "$E1" put /cfg/a 1
check "put via n2" "$KEELCTL" --endpoints "$E2" put /cfg/b 2
check "put via n3" "$KEELCTL" --endpoints "$E3" put zz 3
expect "get via n3 sees n1's put" "1" "$("$KEELCTL" --endpoints "$E3" get /cfg/a 2>&1)"
expect "get via n1 sees n2's put" "2" "$("$KEELCTL" --endpoints "$E1" get /cfg/b 2>&1)"

STATUS=$("$KEELCTL" --endpoints "$EP" endpoint status --cluster -w json 2>&1)
expect "endpoint status names a leader" '"leader' "$STATUS"
MEMBERS=$("$KEELCTL" --endpoints "$EP" member list 2>&1)
for n in n1 n2 n3; do expect "member list shows $n" "$n" "$MEMBERS"; done

# move shard 0's leadership to a member that does not lead it
LEADER=$("$KEELCTL" --endpoints "$E1" endpoint status -w json 2>&1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d
s=[x for x in d["shards"] if x["shard_id"]==0][0]; print(s["leader_id"])' 2>/dev/null)
TARGET=$("$KEELCTL" --endpoints "$E1" member list -w json 2>&1 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); l=sys.argv[1]
ids=[m["id"] for m in d["members"] if str(m["id"])!=l]; print("%x" % ids[0])' "$LEADER" 2>/dev/null)
if [[ -n $LEADER && -n $TARGET ]]; then
    check "move-leader shard 0" "$KEELCTL" --endpoints "$EP" move-leader 0 "$TARGET"
    for _ in 1 2 3 4 5 6 7 8 9 10; do # the figures are published once per 50 ms tick
        NOW=$("$KEELCTL" --endpoints "$EP" member list -w json 2>&1 |
            python3 -c 'import json,sys; d=json.load(sys.stdin)
print("%x" % [s["leader_id"] for s in d["shards"] if s["shard_id"]==0][0])' 2>/dev/null)
        [[ $NOW == "$TARGET" ]] && break
        sleep 0.1
    done
    expect "shard 0 is led by the target now" "$TARGET" "$NOW"
    check "put after the move" "$KEELCTL" --endpoints "$EP" put /cfg/c 3
else
    echo "FAIL move-leader: no leader ($LEADER) or target ($TARGET) found in:"
    echo "$STATUS" | head -20
    FAILS=$((FAILS + 1))
fi

PIDS=$(awk '{print $2}' "$DIR/pids")
bash "$ROOT/tools/local-cluster.sh" stop --dir "$DIR" >/dev/null 2>&1
for p in $PIDS; do # a zombie waiting for init to reap it has an empty cmdline
    if [[ -s /proc/$p/cmdline ]] && tr '\0' ' ' <"/proc/$p/cmdline" | grep -q keeld; then
        echo "FAIL stop: keeld $p still runs"
        FAILS=$((FAILS + 1))
    fi
done
((FAILS == 0)) && echo "ok   stop" && echo "test_local_cluster: all checks passed" && exit 0
echo "test_local_cluster: $FAILS check(s) failed"
exit 1
