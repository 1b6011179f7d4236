#!/bin/sh
# sim_replay.sh KEEL_SIM — a seed replays exactly: two processes print the same outcome and trace
# hash, --check-replay runs it twice in one process (state left over between runs would show),
# and a --verbose run hashes the same trace. Passes or fails on determinism alone, not on the
# seeds' outcomes (the seed ranges in ctest judge those).
set -u
sim=$1
status=0
for args in "--seed 11 --nodes 3" "--seed 12 --nodes 5 --groups 3"; do
    a=$("$sim" $args 2>&1)
    b=$("$sim" $args 2>&1)
    if [ "$a" != "$b" ]; then
        echo "sim_replay: FAIL: two runs of '$args' differ:"; echo "$a"; echo "$b"
        status=1
    fi
    if ! "$sim" $args --check-replay >/dev/null 2>&1; then
        echo "sim_replay: FAIL: '$args --check-replay' (run twice in one process) differs"
        status=1
    fi
    hash=$(echo "$a" | sed -n 's/.*trace hash \([0-9a-f]*\).*/\1/p')
    vhash=$("$sim" $args --verbose 2>&1 | sed -n 's/.*trace hash \([0-9a-f]*\).*/\1/p')
    if [ -z "$hash" ] || [ "$hash" != "$vhash" ]; then
        echo "sim_replay: FAIL: '$args' trace hash '$hash', with --verbose '$vhash'"
        status=1
    fi
    echo "sim_replay: '$args': $(echo "$a" | head -1 | cut -c1-120)"
done
exit $status
