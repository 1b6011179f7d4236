#!/bin/sh
# sim_checkers.sh KEEL_SIM — the checkers can fail: with a bug planted (--inject), the checker
# that guards against it must fire on some of a few seeds.
#   early-ack   acknowledgements before the fdatasync  -> committed-durable
#   stale-read  gets served below the read index       -> linearizability
#   vote-grant  every vote answer granted              -> election-safety
set -u
sim=$1
status=0
check() { # inject checker seeds
    out=$("$sim" --seeds "$3" --first-seed 1 --inject "$1" --keep-going 2>&1)
    fired=$(echo "$out" | grep -c "checker $2:")
    if [ "$fired" -eq 0 ]; then
        echo "sim_checkers: FAIL: --inject $1 over $3 seeds never fired checker $2"
        echo "$out" | tail -5
        status=1
    else
        echo "sim_checkers: --inject $1: checker $2 fired on $fired of $3 seeds"
    fi
}
check early-ack committed-durable 10
check stale-read linearizability 40
check vote-grant election-safety 10
exit $status
