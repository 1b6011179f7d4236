# compare_report.sh — perf/compare.sh's results file, plots and summary line (sourced by it, not
# shellcheck shell=bash
# run), from what compare_lib.sh collected (R, CMDS, M, CLUSTER_CMDS, MACHINE, VERSIONS).
#   report_write   prints the markdown results file
#   plots_make     writes $ART/*.png with gnuplot (and the .dat files they are drawn from)
#   summary_line   the machine-readable line: keel's figures divided by etcd's and ZooKeeper's

COLS=(ops_s errors p50_ms p90_ms p99_ms p999_ms max_ms server_cpu_s ops_per_cpu_s)

# ratio A B: A/B with 2-3 significant digits, or n/a when either is missing or B is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) { print "n/a"; exit }
        r = a / b
        printf (r >= 100 ? "%.0f" : r >= 10 ? "%.1f" : r >= 0.1 ? "%.2f" : "%.3f"), r }'
}

short() { case $1 in zookeeper) echo zk ;; *) echo "$1" ;; esac; }

case_title() {
    local lo=$((LOW[0] * LOW[1])) hi=$((HIGH[0] * HIGH[1])) n=${1##*_} c
    case $n in
    "$lo") c="${LOW[0]} connections x ${LOW[1]} outstanding ($lo in flight)" ;;
    "$hi") c="${HIGH[0]} connections x ${HIGH[1]} outstanding ($hi in flight)" ;;
    esac
    case $1 in
    seq_put) echo "Sequential puts: 1 connection, 1 outstanding" ;;
    seq_get) echo "Sequential linearizable gets: 1 connection, 1 outstanding" ;;
    put_*) echo "Saturated puts: $c" ;;
    get_*) echo "Saturated linearizable gets: $c" ;;
    sget_*) echo "Saturated serializable gets: $c" ;;
    mixed_*) echo "Mixed, 90% gets (linearizable) and 10% puts: $c" ;;
    rate_*) echo "Puts at a fixed rate of ${n%k},000 ops/s for $RATE_DUR s (open loop;" \
        "capacity ${HIGH[0]} x ${HIGH[1]})" ;;
    load) echo "Load: $KEYS keys written once into a fresh cluster, $hi in flight" ;;
    esac
}

case_note() {
    case $1 in
    seq_get | get_* | mixed_*) echo "ZooKeeper: a plain get, sequentially consistent (served" \
        "by the member the client is connected to, no quorum round): not linearizable." ;;
    sget_*) echo "ZooKeeper: the figures of the linearizable-get case (it has one kind of read)." ;;
    rate_*) echo "Latency counts from each request's scheduled time (coordinated omission" \
        "corrected). A system that could not keep the rate shows the rate it achieved and how" \
        "many requests of the schedule it never got to (every slot was busy): its latencies" \
        "are those of a backlog." ;;
    esac
}

# The table row of case/system: ops/s (with the rate verdict), errors, latencies, CPU.
table_row() {
    local key=$1/$2 c v row="| $2 |" target
    if [[ -z ${R[$key]:-} ]]; then
        echo "| $2 | failed or not run | | | | | | | | |"
        return
    fi
    for c in "${COLS[@]}"; do
        v=$(field "$key" "$c")
        if [[ $c == ops_s && $1 == rate_* ]]; then
            target=${1#rate_}; target=$((${target%k} * 1000))
            awk -v a="$v" -v t="$target" 'BEGIN { exit !(a < 0.95 * t) }' &&
                v="$v (did not keep $target; $(field "$key" behind) never sent)"
        fi
        row+=" ${v:-n/a} |"
    done
    echo "$row"
}

ratio_row() {
    local c row
    row="| keel/$(short "$2") |"
    for c in "${COLS[@]}"; do
        if [[ $c == errors ]]; then row+=" |"; continue; fi
        row+=" $(ratio "$(field "$1/keel" "$c")" "$(field "$1/$2" "$c")") |"
    done
    echo "$row"
}

has() { [[ " $SYSTEMS " == *" $1 "* ]]; }

case_table() {
    local name=$1 s note
    echo "### $name: $(case_title "$name")"
    echo
    note=$(case_note "$name")
    [[ -z $note ]] || { echo "$note"; echo; }
    echo "| system | ops/s | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |" \
        "server CPU s | ops per CPU s |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    for s in $SYSTEMS; do table_row "$name" "$s"; done
    if has keel; then
        for s in etcd zookeeper; do ! has "$s" || ratio_row "$name" "$s"; done
    fi
    echo
    [[ $name != seq_put ]] || fsync_note
    echo '```'
    for s in $SYSTEMS; do echo "${CMDS[$name/$s]:-# $s: not run}"; done
    echo '```'
    echo
}

# seq_put runs keelbench --fsync-probe first: one fdatasync is the floor of a durable put.
fsync_note() {
    local s line=""
    for s in $SYSTEMS; do
        [[ -n $(field "seq_put/$s" fsync_p50_ms) ]] || continue
        line+="${line:+, }$s $(field "seq_put/$s" fsync_p50_ms) ms"
        line+=" (put p50 / it: $(field "seq_put/$s" put_p50_vs_fdatasync))"
    done
    [[ -z $line ]] && return 0
    echo "fdatasync probe (keelbench --fsync-probe: 256 B written in place, then fdatasync, on" \
        "the data dirs' file system, just before the run), p50: $line."
    echo
}

mem_table() {
    local s g
    echo "### mem: RSS growth over loading $MEM_KEYS keys into one member; recovery time"
    echo
    echo "perf/mem_load.sh: RSS of the member's server process (ZooKeeper: the JVM, heap" \
        "settings of perf/anchor_zk.sh) before and $MEM_SETTLE_S s after 'keelbench --op load'" \
        "(16 connections x 64 outstanding); then the member is stopped (SIGTERM) and started" \
        "again on its data: recovery = seconds from its start until it serves (keel: a get of a" \
        "key put before the stop; etcd: endpoint health; ZooKeeper: srvr says standalone);" \
        "then its RSS and the data dir's size."
    echo
    echo "| system | load ops/s | RSS before MB | RSS after MB | growth MB | bytes per key |" \
        "data dir MB | recovery s | RSS after restart MB |"
    echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    for s in $SYSTEMS; do
        g=$(mem_growth "$s")
        echo "| $s | $(field "mem_load/$s" ops_s) | ${M[$s/rss0_mb]:-n/a} |" \
            "${M[$s/rss1_mb]:-n/a} | $g | $(awk -v g="$g" -v k="$MEM_KEYS" \
                'BEGIN { if (g == "n/a") print g; else printf "%.0f", g * 1048576 / k }') |" \
            "${M[$s/disk_mb]:-n/a} | ${M[$s/recovery_s]:-n/a} | ${M[$s/rss2_mb]:-n/a} |"
    done
    if has keel; then
        for s in etcd zookeeper; do
            has "$s" || continue
            echo "| keel/$(short "$s") | $(ratio "$(field mem_load/keel ops_s)" \
                "$(field "mem_load/$s" ops_s)") | | | $(ratio "$(mem_growth keel)" \
                "$(mem_growth "$s")") | | $(ratio "${M[keel/disk_mb]:-}" "${M[$s/disk_mb]:-}") |" \
                "$(ratio "${M[keel/recovery_s]:-}" "${M[$s/recovery_s]:-}") | |"
        done
    fi
    echo
    echo '```'
    for s in $SYSTEMS; do echo "${CMDS[mem_load/$s]:-# $s: not run}"; done
    echo '```'
    echo
}

mem_growth() {
    local a=${M[$1/rss0_mb]:-} b=${M[$1/rss1_mb]:-}
    if [[ -z $a || -z $b ]]; then echo n/a; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", b - a }'
}

report_write() {
    local lo=$((LOW[0] * LOW[1])) hi=$((HIGH[0] * HIGH[1])) c
    echo "# keel, etcd and ZooKeeper: $DATE on $HOST"
    echo
    echo "perf/compare.sh$( ((QUICK)) && echo ' --quick'): $DUR s measured per case (fixed" \
        "rates: $RATE_DUR s) after $WARM s of warm-up, $KEYS keys of $KEY_B B, values of" \
        "$VALUE_B B, every write durable" \
        "(fdatasync) on a quorum, 3-member clusters on loopback (memory case: 1 member), one" \
        "cluster of one system at a time, two phases (sequential and $lo in flight; $hi in" \
        "flight and fixed rates) run by the three systems back to back, each system's cluster" \
        "loaded once and restarted on its data for the second phase; the suite took $T_SUITE s." \
        "Ratios are keel's figure" \
        "divided by the other's. docs/benchmarks.md describes the cases and the caveats."
    echo
    echo "## Machine"; echo; echo "$MACHINE"; echo
    echo "## Versions"; echo; echo "$VERSIONS"; echo
    echo "## Clusters"; echo; echo '```'; printf '%s' "$CLUSTER_CMDS"; echo '```'; echo
    echo "## Plots"
    echo
    echo "![throughput by concurrency]($NAME/throughput.png)"
    echo "![sequential put latency CDF]($NAME/cdf_seq_put.png)"
    echo "![saturated put latency CDF]($NAME/cdf_put_$hi.png)"
    echo "![latency at fixed load]($NAME/rate_latency.png)"
    echo
    echo "Fixed-rate bars of a system that could not keep the rate measure its backlog (the" \
        "rate tables below say which)."
    echo
    echo "## Cases"
    echo
    for c in seq_put seq_get put_$lo get_$lo sget_$lo mixed_$lo put_$hi get_$hi sget_$hi \
        mixed_$hi rate_5k rate_20k load; do
        case_table "$c"
    done
    mem_table
    echo "## Summary"
    echo
    echo "Failed cases or clusters: $FAILED. Raw keelbench outputs and latency distributions:" \
        "$NAME/raw/."
    echo
}

summary_line() {
    local hi=$((HIGH[0] * HIGH[1]))
    echo "summary:" \
        "put_vs_etcd=$(ratio "$(field "put_$hi/keel" ops_s)" "$(field "put_$hi/etcd" ops_s)")" \
        "put_vs_zk=$(ratio "$(field "put_$hi/keel" ops_s)" "$(field "put_$hi/zookeeper" ops_s)")" \
        "lin_get_vs_etcd=$(ratio "$(field "get_$hi/keel" ops_s)" "$(field "get_$hi/etcd" ops_s)")" \
        "get_vs_zk=$(ratio "$(field "get_$hi/keel" ops_s)" "$(field "get_$hi/zookeeper" ops_s)")" \
        "p99_at_5k_vs_etcd=$(ratio "$(field rate_5k/keel p99_ms)" "$(field rate_5k/etcd p99_ms)")" \
        "p99_at_5k_vs_zk=$(ratio "$(field rate_5k/keel p99_ms)" \
            "$(field rate_5k/zookeeper p99_ms)")" \
        "rss_vs_etcd=$(ratio "$(mem_growth keel)" "$(mem_growth etcd)")" \
        "rss_vs_zk=$(ratio "$(mem_growth keel)" "$(mem_growth zookeeper)")"
}

# ---- plots -------------------------------------------------------------------------------

gp_terminal() {
    if gnuplot -e 'set terminal pngcairo' 2>/dev/null; then
        echo "set terminal pngcairo noenhanced size 900,540 font ',10'"
    else
        echo "set terminal png noenhanced size 900,540"
    fi
}

# A .dat table: first column a label, then one column per system; "?" where missing.
dat_header() { echo "case $SYSTEMS"; }

throughput_dat() {
    local lo=$((LOW[0] * LOW[1])) hi=$((HIGH[0] * HIGH[1])) c n s v line
    dat_header
    for n in $lo $hi; do
        for c in put get sget mixed; do
            line="$c/$n"
            for s in $SYSTEMS; do v=$(field "${c}_$n/$s" ops_s); line+=" ${v:-?}"; done
            echo "$line"
        done
    done
}

rate_dat() {
    local r p s v line
    dat_header
    for r in 5k 20k; do
        for p in p50 p99; do
            line="$p/$r"
            for s in $SYSTEMS; do v=$(field "rate_$r/$s" "${p}_ms"); line+=" ${v:-?}"; done
            echo "$line"
        done
    done
}

# The CDF of case/system as "latency_ms percentile" (percentile 0-100), from --cdf-out.
cdf_dat() {
    local f=$RAW/$1-$2.cdf
    [[ -s $f ]] || return 1
    awk '$1 ~ /^[0-9.eE+-]+$/ && $2 ~ /^[0-9.eE+-]+$/ { p[NR] = $1; l[NR] = $2; if ($1 > m) m = $1 }
        END { s = (m <= 1) ? 100 : 1
              for (i = 1; i <= NR; i++) if (i in p) print l[i], p[i] * s }' \
        "$f"
}

plot_cdf() {
    local name=$1 title=$2 s plots=""
    for s in $SYSTEMS; do
        if ! cdf_dat "$name" "$s" >"$ART/cdf_$name-$s.dat"; then
            rm -f "$ART/cdf_$name-$s.dat"
            continue
        fi
        plots+="${plots:+, }'$ART/cdf_$name-$s.dat' using 1:2 with lines lw 2 title '$s'"
    done
    [[ -n $plots ]] || return 0
    gnuplot <<EOF
$(gp_terminal)
set output '$ART/cdf_$name.png'
set title '$title'
set logscale x
set xlabel 'latency (ms, log scale)'
set ylabel 'percentile'
set yrange [0:100]
set key bottom right
set grid
plot $plots
EOF
}

plot_bars() {
    local dat=$1 png=$2 title=$3 ylabel=$4 log=$5
    gnuplot <<EOF
$(gp_terminal)
set output '$png'
set title '$title'
set datafile missing '?'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel '$ylabel'
set grid ytics
set key top left
$([[ $log == log ]] && echo "set logscale y")
$([[ $log == log ]] || echo "set yrange [0:*]")
plot for [i=2:$(($(wc -w <<<"$SYSTEMS") + 1))] '$dat' using i:xtic(1) title columnheader(i)
EOF
}

plots_make() {
    local hi=$((HIGH[0] * HIGH[1]))
    command -v gnuplot >/dev/null || { echo "compare: no gnuplot: no plots" >&2; return 0; }
    throughput_dat >"$ART/throughput.dat"
    rate_dat >"$ART/rate_latency.dat"
    plot_bars "$ART/throughput.dat" "$ART/throughput.png" \
        "Throughput by concurrency (case/requests in flight)" "ops/s (log scale)" log
    plot_bars "$ART/rate_latency.dat" "$ART/rate_latency.png" \
        "Put latency at a fixed rate (p50 and p99 at 5k and 20k ops/s)" "ms (log scale)" log
    plot_cdf seq_put "Sequential put latency (1 connection, 1 outstanding)"
    plot_cdf "put_$hi" "Saturated put latency ($hi in flight)"
}
