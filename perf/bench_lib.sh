# bench_lib.sh — what perf/bench_keeld.sh and perf/bench_cluster.sh share (sourced, not run):
#   PIDS   the keeld pids whose CPU time each case reports (space-separated), set by the caller
#   B      the keelbench command line of every case (an array), set by the caller
#   run NAME ARGS...   runs "${B[@]}" ARGS, keeps its summary line in R[NAME], prints it with
#                      the keelds' CPU seconds over the case
#   field NAME KEY     the value of KEY= in case NAME's summary line

declare -A R
ticks=$(getconf CLK_TCK)

cpu() {
    local t=0 p
    for p in $PIDS; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}

run() {
    local name=$1; shift
    local c0 c1 line
    c0=$(cpu)
    line=$("${B[@]}" "$@" | tail -1)
    c1=$(cpu)
    R[$name]=$line
    printf '%-10s %s keeld_cpu_s=%s\n' "$name" "${line#summary: }" \
        "$(awk -v a="$c0" -v b="$c1" -v t="$ticks" 'BEGIN { printf "%.2f", (b - a) / t }')"
}

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" ${R[$1]}"; }
