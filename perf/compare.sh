#!/usr/bin/env bash
# compare.sh — keel against etcd and ZooKeeper in one run (issue 5): the standard suite with
# the same workload for all three (16 B keys, 256 B values, writes durable on a quorum, the
# same connections x outstanding, 3-member loopback clusters), one cluster of one system
# running at a time. Writes DATE-HOST.md (machine, versions, a table per case with keel/etcd
# and keel/zk ratios, the exact commands) and DATE-HOST/*.png (gnuplot); prints a line per
# case as it completes; the last line is machine-readable:
#   summary: put_vs_etcd=X put_vs_zk=X lin_get_vs_etcd=X get_vs_zk=X p99_at_5k_vs_etcd=X
#            p99_at_5k_vs_zk=X rss_vs_etcd=X rss_vs_zk=X          (keel's figure / the other's)
#
#   perf/compare.sh [--quick] [--out DIR] [--build DIR] [--systems LIST] [--duration S]
#
#   --quick      2 s per case (0.5 s warm-up; fixed rates 1 s), 10,000 keys, memory case with
#                20,000 keys; results go to a new directory under $TMPDIR unless --out is given
#   --out DIR    where DATE-HOST.md and DATE-HOST/ go (default perf/results)
#   --build DIR  keel's build dir (default $KEEL_BUILD, else build; 'make release' builds it
#                when keeld or keelbench is missing)
#   --systems L  a subset of keel,etcd,zookeeper (default all three, in that order)
#   --duration S measured seconds per case (default 10, --quick 2); fixed-rate runs take half
#
# Two phases, each run by every system back to back (its cluster started, measured, stopped; the
# first phase starts it fresh and writes every key once with 'keelbench --op load', the second
# restarts it on that data): low (1 conn x 1: put and linearizable get; 8x4: put,
# linearizable get, serializable get, 90/10 mix) and high (the same four at 20x15; puts at
# 5,000 and 20,000 ops/s, open loop); then mem (one member per system: RSS growth over loading
# 1,000,000 keys, then the time a restarted member takes to serve again, perf/mem_load.sh).
# docs/benchmarks.md describes the cases and the caveats. Needs Debian's etcd-server,
# etcd-client, zookeeper, libzookeeper-mt-dev, libnghttp2-dev, gnuplot-nox (installed with
# apt-get when run as root). Servers are started and stopped by PID (perf/anchor_etcd.sh,
# perf/anchor_zk.sh, tools/local-cluster.sh), ports 26000-26999. Exit 0, or 1 when a case or
# a cluster failed (the results file and the summary line are still written; missing figures
# read n/a).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=0
OUT=""
BUILD=${KEEL_BUILD:-build}
SYSTEMS="keel etcd zookeeper"
DUR_OPT=""
while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --out) OUT=${2:?--out needs a directory}; shift ;;
    --build) BUILD=${2:?--build needs a directory}; shift ;;
    --systems) SYSTEMS=$(tr ',' ' ' <<<"${2:?--systems needs a list}"); shift ;;
    --duration) DUR_OPT=${2:?--duration needs seconds}; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "compare: unknown option $1 (--help lists them)" >&2; exit 2 ;;
    esac
    shift
done
for s in $SYSTEMS; do
    case $s in keel | etcd | zookeeper) ;; *) echo "compare: unknown system $s" >&2; exit 2 ;; esac
done

# The suite's settings: the same for every system.
KEY_B=16
VALUE_B=256
LOW=(8 4)   # connections x outstanding: 32 requests in flight
HIGH=(20 15) # 300 in flight, the concurrency of the issue's reference figures
RATES=(5000 20000)
if ((QUICK)); then
    DUR=2 RATE_DUR=1 WARM=0.5 KEYS=10000 MEM_KEYS=20000 MEM_SETTLE_S=2 PROBE_WRITES=200
else
    # Budget (2 cores): ~36 measured runs of 10 s + 1 s of warm-up; the fixed-rate cases run
    # 5 s, as a system that cannot keep the rate needs rate x 5 s / its rate to finish its
    # schedule; loading 1,000,000 keys into etcd and ZooKeeper takes minutes.
    DUR=10 RATE_DUR=5 WARM=1 KEYS=100000 MEM_KEYS=1000000 MEM_SETTLE_S=5 PROBE_WRITES=1000
fi
if [[ -n $DUR_OPT ]]; then
    [[ $DUR_OPT =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v d="$DUR_OPT" 'BEGIN { exit !(d > 0) }' ||
        { echo "compare: --duration: seconds > 0" >&2; exit 2; }
    DUR=$DUR_OPT
    RATE_DUR=$(awk -v d="$DUR" 'BEGIN { print d / 2 }')
fi
PORT_KEEL=26000 # local-cluster.sh: clients on 26100, 26200, 26300 (+1, +2 the shards)
PORT_ETCD=26500 # anchors: member i on P + 10*(i-1)
PORT_ZK=26600

source perf/compare_lib.sh
source perf/compare_report.sh

ensure_packages
ensure_build
DATE=$(date -u +%F)
HOST=$(uname -n | cut -d. -f1)
if [[ -z $OUT ]]; then
    OUT=perf/results
    ((!QUICK)) || OUT=$(mktemp -d "${TMPDIR:-/tmp}/keel-compare-quick.XXXXXX")
fi
NAME=$DATE-$HOST
MD=$OUT/$NAME.md
ART=$OUT/$NAME # plots and raw outputs
RAW=$ART/raw
mkdir -p "$RAW"
rm -f "$RAW"/* "$ART"/*.png "$ART"/*.dat
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-compare.XXXXXX") # the clusters' data dirs
trap 'stop_cluster; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

T_START=$SECONDS
machine_info
echo "compare: $(tr ' ' ',' <<<"$SYSTEMS"): ${DUR} s per case, $KEYS keys, memory case" \
    "$MEM_KEYS keys; results: $MD"
phase cases_low  # seq_put seq_get put_32 get_32 sget_32 mixed_32
phase cases_high # put_300 get_300 sget_300 mixed_300 rate_5k rate_20k
for s in $SYSTEMS; do case_memory "$s"; done
T_SUITE=$((SECONDS - T_START))

report_write >"$MD"
plots_make
SUMMARY=$(summary_line)
echo "$SUMMARY" >>"$MD"
echo "compare: ${T_SUITE} s; $FAILED failed; results: $MD, plots: $ART/"
echo "$SUMMARY"
((FAILED == 0))
