#!/usr/bin/env bash
# test_keelctl.sh — keelctl against a real keeld: every command, its output formats, and its
# exit codes (0 ok, 1 server error, 2 usage error, 3 connection error), with etcdctl-style
# expectations.
#
# Usage: tests/integration/test_keelctl.sh            (binaries from $KEEL_BIN, default build/bin)
# Starts keeld on free 127.0.0.1 ports (client port P, shard ports P+1, P+2) with a temporary
# data dir and 2 shards, and stops it by PID on exit. Exits 77 (skipped) when keeld does not
# exist, 0 when every check passes, 1 otherwise (each failing check is printed).
set -uo pipefail

KEEL_BIN=${KEEL_BIN:-build/bin}
KEELD=$KEEL_BIN/keeld
KEELCTL=$KEEL_BIN/keelctl
if [[ ! -x $KEELD ]]; then
    echo "test_keelctl: $KEELD does not exist yet: skipped"
    exit 77
fi
if [[ ! -x $KEELCTL ]]; then
    echo "test_keelctl: $KEELCTL does not exist: build keelctl first" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "test_keelctl: python3 is needed" >&2; exit 1; }

# ---- server ----------------------------------------------------------------------------------

# A base port whose two shard ports (base + 1, base + 2) are free as well.
free_port() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/../../tools/free_port.py" 2
}

DATA_DIR=$(mktemp -d /tmp/test_keelctl.XXXXXX)
KEELD_PID=""
cleanup() {
    if [[ -n $KEELD_PID ]]; then
        kill "$KEELD_PID" 2>/dev/null
        wait "$KEELD_PID" 2>/dev/null
    fi
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT

PORT=$(free_port)
[[ -n $PORT ]] || { echo "test_keelctl: no free port found" >&2; exit 1; }
EP=127.0.0.1:$PORT
"$KEELD" --data-dir "$DATA_DIR/data" --listen-client "$EP" --shards 2 --quiet \
    >"$DATA_DIR/keeld.log" 2>&1 &
KEELD_PID=$!

ready=0
for _ in $(seq 1 100); do # at most 10 s
    if ! kill -0 "$KEELD_PID" 2>/dev/null; then
        echo "test_keelctl: keeld exited at start:" >&2
        cat "$DATA_DIR/keeld.log" >&2
        KEELD_PID=""
        exit 1
    fi
    if "$KEELCTL" --endpoints "$EP" --timeout 500 status >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ $ready == 1 ]] || { echo "test_keelctl: keeld did not answer on $EP" >&2; exit 1; }

# ---- checks ----------------------------------------------------------------------------------

FAILS=0
CHECKS=0
OUT=""
ERR=""
RC=0

# run ARGS...: runs keelctl against the server; sets OUT, ERR and RC (stdin passes through).
run() {
    OUT=$("$KEELCTL" --endpoints "$EP" "$@" 2>"$DATA_DIR/stderr")
    RC=$?
    ERR=$(cat "$DATA_DIR/stderr")
}

fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL: $*"
    echo "  rc=$RC"
    echo "  stdout: $(printf '%s' "$OUT" | head -c 600)"
    echo "  stderr: $(printf '%s' "$ERR" | head -c 600)"
}

# expect NAME RC STDOUT: the last run's exit code and exact stdout.
expect() {
    CHECKS=$((CHECKS + 1))
    if [[ $RC != "$2" || $OUT != "$3" ]]; then
        fail "$1 (want rc=$2, stdout: $(printf '%q' "$3"))"
    fi
}

# expect_err NAME RC PATTERN: the last run's exit code, and stderr containing PATTERN.
expect_err() {
    CHECKS=$((CHECKS + 1))
    if [[ $RC != "$2" || $ERR != *"$3"* ]]; then
        fail "$1 (want rc=$2, stderr containing '$3')"
    fi
}

# expect_json NAME PYTHON_EXPR: the last run's stdout parses as JSON (bound to j) and the
# expression is true.
expect_json() {
    CHECKS=$((CHECKS + 1))
    if [[ $RC != 0 ]] || ! printf '%s' "$OUT" | python3 -c '
import base64, json, sys
j = json.loads(sys.stdin.read())
b = lambda s: base64.b64decode(s).decode()
sys.exit(0 if eval("(" + sys.argv[1] + ")") else 1)' "$2"; then
        fail "$1 (want json with: $2)"
    fi
}

# --- version, help, usage errors
run --version
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $OUT == "keelctl version: "* ]] || fail "--version"
run put --help
expect_err "put --help exits 0" 0 ""
CHECKS=$((CHECKS + 1))
[[ $OUT == *"Usage: keelctl put"* ]] || fail "put --help prints put's usage"
run get foo --bogus
expect_err "bad flag" 2 "Error: unknown flag: --bogus"
CHECKS=$((CHECKS + 1))
[[ $ERR == *"Usage: keelctl get"* ]] || fail "bad flag prints the command's usage"
run frobnicate
expect_err "unknown command" 2 'unknown command "frobnicate"'

# --- put / get
run put foo bar
expect "put" 0 "OK"
run get foo
expect "get one key" 0 $'foo\nbar'
run get foo --print-value-only
expect "get --print-value-only" 0 "bar"
run put foo baz --prev-kv
expect "put --prev-kv" 0 $'OK\nfoo\nbar'
run get nothing-here
expect "get of an absent key prints nothing" 0 ""
run put stdin-key <<<"from stdin"
expect "put value from stdin" 0 "OK"
run -w json get stdin-key
expect_json "value read from stdin, its newline kept" 'b(j["kvs"][0]["value"]) == "from stdin\n"'
run get foo --hex
expect "get --hex" 0 '\x66\x6f\x6f
\x62\x61\x7a'
run put -- -dash -value
expect "-- lets keys start with '-'" 0 "OK"
run get -- -dash
expect "get a key starting with '-'" 0 $'-dash\n-value'

# --- ranges
for k in a b c; do run put "dir/$k" "v$k"; done
run get dir/ --prefix
expect "get --prefix" 0 $'dir/a\nva\ndir/b\nvb\ndir/c\nvc'
run get dir/ --prefix --keys-only
# (command substitution drops the trailing newlines)
expect "get --keys-only (a blank line per value, as etcdctl)" 0 $'dir/a\n\ndir/b\n\ndir/c'
run get dir/ --prefix --count-only
expect "get --count-only" 0 "3"
run get dir/ --prefix --limit 2
expect "get --limit" 0 $'dir/a\nva\ndir/b\nvb'
run get dir/ --prefix --sort-by key --order descend
expect "get --sort-by key --order descend" 0 $'dir/c\nvc\ndir/b\nvb\ndir/a\nva'
run get dir/a dir/c
expect "get KEY RANGE_END" 0 $'dir/a\nva\ndir/b\nvb'
run get dir/b --from-key --keys-only --limit 2
expect "get --from-key" 0 $'dir/b\n\ndir/c'

# --- output formats
run -w json get foo
expect_json "get -w json" \
    'b(j["kvs"][0]["key"]) == "foo" and b(j["kvs"][0]["value"]) == "baz" and j["count"] == 1
     and j["kvs"][0]["version"] == 2 and j["header"]["revision"] > 0
     and j["header"]["shard"] in (0, 1, 65535) and "member_id" in j["header"]'
run -w json put foo qux --prev-kv
expect_json "put -w json --prev-kv" 'b(j["prev_kv"]["value"]) == "baz"'
run -w table get dir/ --prefix
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $OUT == *"|  KEY  | VALUE |"* && $OUT == *"| dir/a | va    |"* ]] ||
    fail "get -w table"

# --- del
run del dir/a
expect "del one key" 0 "1"
run del dir/a
expect "del an absent key" 0 "0"
run del dir/ --prefix --prev-kv
expect "del --prefix --prev-kv" 0 $'2\ndir/b\nvb\ndir/c\nvc'
run -w json del foo
expect_json "del -w json" 'j["deleted"] == 1 and j["prev_kvs"] == []'

# --- txn (keys under one prefix: one shard)
run put txn/k1 v1
run txn <<'EOF'
value("txn/k1") = "v1"
mod("txn/k1") > "0"

put txn/k2 "v 2"
get txn/k1

put txn/k2 nope
EOF
expect "txn success branch" 0 $'SUCCESS\n\nOK\n\ntxn/k1\nv1'
run get txn/k2 --print-value-only
expect "txn wrote its success put" 0 "v 2"
run txn <<'EOF'
version("txn/k1") = "7"

put txn/k2 yes

del txn/k2 --prev-kv
get txn/k --prefix --count-only
EOF
expect "txn failure branch" 0 $'FAILURE\n\n1\ntxn/k2\nv 2\n\n1'
run -w json txn <<'EOF'
create("txn/k1") != "0"

get txn/k1
EOF
expect_json "txn -w json" \
    'j["succeeded"] and b(j["responses"][0]["response_range"]["kvs"][0]["value"]) == "v1"'
run txn -i <<'EOF'
lease("txn/k1") = "0"

put txn/k3 c

EOF
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $OUT == "compares:"*"success requests (get, put, del):"*"failure requests"*"SUCCESS"* ]] ||
    fail "txn -i prompts for each section"
run txn <<'EOF'
mod("txn/k1") >= "0"
EOF
expect_err "bad txn script: usage error with its line" 2 "Error: line 1: unknown operator"
run txn <<'EOF'
ver("txn/k1") = "1"

put txn/k1
EOF
expect_err "bad txn request line" 2 "Error: line 3: put: missing argument"

# --- server errors
run get foo --rev 999999999
expect_err "future revision" 1 "(FUTURE_REV, current revision"

# --- status and shard-map
run status
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $(printf '%s\n' "$OUT" | wc -l) == 2 && $OUT == "0, "* ]] ||
    fail "status: one line per shard"
run -w table status
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $OUT == *"| SHARD | REVISION | COMPACT REVISION |"* ]] || fail "status -w table"
run -w json status
expect_json "status -w json" \
    'len(j["shards"]) == 2 and all(s["keys"] >= 0 and s["revision"] >= 0 for s in j["shards"])
     and j["endpoint"] == "'"$EP"'"'
run shard-map
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $OUT == "0, $((PORT + 1)), , "*$'\n'"1, $((PORT + 2)), "* ]] ||
    fail "shard-map: shard, port, start, end"
run -w table shard-map
CHECKS=$((CHECKS + 1))
[[ $RC == 0 && $OUT == *"| SHARD |"*"START KEY"*"END KEY"* ]] || fail "shard-map -w table"
run -w json shard-map
expect_json "shard-map -w json" \
    'len(j["shards"]) == 2 and j["shards"][0]["start_key"] == "" and j["shards"][1]["end_key"] == ""
     and j["shards"][0]["end_key"] == j["shards"][1]["start_key"]
     and j["shards"][1]["port"] == '"$((PORT + 2))"

# --- shard-aware routing
run --shard-aware put routed v
expect "--shard-aware put" 0 "OK"
run --shard-aware get routed
expect "--shard-aware get" 0 $'routed\nv'

# --- compact (revisions per shard: --shard required with 2 shards); last, as it changes
# what older revisions read
run -w json put cmp/key v1
SHARD=$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["shard"])')
REV1=$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
run put cmp/key v2
run compact "$REV1"
expect_err "compact without --shard on 2 shards" 2 "--shard"
run compact "$REV1" --shard 7
expect_err "compact of a shard that does not exist" 2 "no shard 7"
run compact "$REV1" --shard "$SHARD"
expect "compact" 0 "compacted revision $REV1"
run get cmp/key --rev $((REV1 - 1))
expect_err "read below the compact revision" 1 "(COMPACTED, compact revision $REV1"
run compact "$REV1" --shard "$SHARD" --physical
expect_err "compact again at the same revision" 1 "COMPACTED"
run -w json status
expect_json "status shows the compact revision" \
    'j["shards"]['"$SHARD"']["compact_revision"] == '"$REV1"

# --- connection errors
DEAD=$(free_port)
OUT=$("$KEELCTL" --endpoints "127.0.0.1:$DEAD" --timeout 1000 get foo 2>"$DATA_DIR/stderr")
RC=$?
ERR=$(cat "$DATA_DIR/stderr")
expect_err "nothing listening: connection error" 3 "(CONNECT, 127.0.0.1:$DEAD)"

CHECKS=$((CHECKS + 1))
kill -0 "$KEELD_PID" 2>/dev/null || fail "keeld is still running at the end"
if [[ $FAILS != 0 ]]; then
    echo "--- keeld log (last 20 lines):"
    tail -n 20 "$DATA_DIR/keeld.log"
fi
echo "test_keelctl: $((CHECKS - FAILS))/$CHECKS checks passed"
[[ $FAILS == 0 ]]
