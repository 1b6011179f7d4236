# compare_lib.sh — perf/compare.sh's clusters and cases (sourced by it, not run): packages and
# shellcheck shell=bash disable=SC2034
# build, the machine's description, starting and stopping one system's cluster by PID, one
# keelbench run per case, the phases and the memory case.
#
# Set by compare.sh: BUILD SYSTEMS KEY_B VALUE_B DUR RATE_DUR WARM KEYS MEM_KEYS MEM_SETTLE_S
# PROBE_WRITES LOW HIGH RATES PORT_* WORK RAW T_START. Results land in:
#   R[case/system]     keelbench's summary line ("summary: system=..."), or empty if it failed
#   CMDS[case/system]  the keelbench command line as run (shell-quoted)
#   M[system/key]      memory case: rss0_mb rss1_mb rss2_mb disk_mb recovery_s
#   CLUSTER_CMDS       the cluster start commands, one per line
#   FAILED             failed cases and clusters

declare -A R CMDS M
CLUSTER_CMDS=""
FAILED=0
CUR_SYS="" # the system whose cluster runs now ("" when none), its dir, endpoints and pids
CUR_DIR=""
EP=""
PIDS_CSV=""
KEEL_ARGS=(--shards 2 -- --split-keys 8) # keelbench's keys are hex: split the key space at 8

PACKAGES=(etcd-server etcd-client zookeeper libzookeeper-mt-dev libnghttp2-dev gnuplot-nox)

ensure_packages() {
    local p missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        echo "compare: missing Debian packages: ${missing[*]}; run as root, or:" \
            "sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "compare: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
    INSTALLED_NOW=1 # keelbench built before the client libraries lacks the etcd/zk drivers
}

# Builds keel when a program is missing, or keelbench lacks a driver (built before the client
# libraries were installed: its "built without the ... driver" message is in the binary).
ensure_build() {
    local bin=$BUILD/bin
    if [[ -x $bin/keeld && -x $bin/keelbench && -x $bin/keelctl && -z ${INSTALLED_NOW:-} ]] &&
        ! grep -qa 'built without the' "$bin/keelbench"; then
        return 0
    fi
    echo "compare: building keel (Release) in $BUILD"
    if [[ $BUILD == build ]]; then
        make release >/dev/null
    else
        cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
        cmake --build "$BUILD" -j "$(nproc)" >/dev/null
    fi
}

# Seconds (2 decimals) since the $EPOCHREALTIME value $1.
since_s() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# Mean latency of one 256 B in-place write + O_DSYNC on the clusters' file system (dd).
probe_dsync_ms() {
    local f=$WORK/dsync-probe t0
    dd if=/dev/zero of="$f" bs=256 count="$PROBE_WRITES" status=none && sync
    t0=$EPOCHREALTIME
    dd if=/dev/zero of="$f" bs=256 count="$PROBE_WRITES" oflag=dsync conv=notrunc status=none
    awk -v a="$t0" -v b="$EPOCHREALTIME" -v n="$PROBE_WRITES" \
        'BEGIN { printf "%.3f", (b - a) * 1000 / n }'
    rm -f "$f"
}

# The first line of a command's output (stdout and stderr), or "$1 missing".
first_line() {
    local out
    out=$("$@" 2>&1) || true
    [[ -n $out ]] || out="$1 missing"
    echo "${out%%$'\n'*}"
}

# The data dirs' file system and device, e.g. "ext4 (rw,relatime) on /dev/vda: 256G disk,
# rotational=1, driver virtio_blk".
disk_info() {
    local src fs size dev drv
    src=$(findmnt -no SOURCE -T "$WORK" 2>/dev/null) || src=unknown
    fs=$(findmnt -no FSTYPE,OPTIONS -T "$WORK" 2>/dev/null | tr -s ' ') || fs=unknown
    size=$(lsblk -dno SIZE,TYPE "${src%%$'\n'*}" 2>/dev/null | tr -s ' ') || size=""
    dev=$(basename "${src%%$'\n'*}")
    drv=$(readlink -f "/sys/block/$dev/device/driver" 2>/dev/null) || drv=""
    echo "${fs%%$'\n'*} on ${src%%$'\n'*}: ${size# }, rotational=$(cat \
        "/sys/block/$dev/queue/rotational" 2>/dev/null || echo '?'), driver ${drv##*/}"
}

# MACHINE and VERSIONS: markdown bullet lists for the results file.
machine_info() {
    local cpu jar
    cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo)
    jar=$(compgen -G '/usr/share/java/zookeeper-[0-9]*.jar') || jar="no zookeeper jar"
    MACHINE="- CPUs: $(nproc) (${cpu%%$'\n'*})
- RAM: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
- kernel: $(uname -sr)
- data dirs: $WORK, file system $(disk_info); every member of every cluster on this device
- fdatasync probe: $(probe_dsync_ms) ms mean per 256 B in-place write with O_DSYNC (dd, \
$PROBE_WRITES writes); keelbench --fsync-probe in the seq_put case gives p50
- load generator: keelbench on the same machine, --threads 2 (1 for 1-connection cases)"
    VERSIONS="- keel: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)\
$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)'), built in $BUILD
- etcd: $(first_line etcd --version) (Debian etcd-server $(pkg_version etcd-server))
- ZooKeeper: Debian zookeeper $(pkg_version zookeeper) (${jar%%$'\n'*}); \
$(first_line java -version)
- gnuplot: $(first_line gnuplot --version)"
}

pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo missing; }

# start_cluster SYSTEM MEMBERS: starts the cluster of $WORK/SYSTEM-MEMBERS (on the data it
# holds, if any) and waits until it serves; sets EP, PIDS_CSV, CUR_*. A cluster that does not
# start is stopped and its data removed.
start_cluster() {
    local sys=$1 n=$2 out cmd t0=$EPOCHREALTIME state=fresh
    [[ ! -d $WORK/$sys-$n ]] || state="on its data"
    CUR_SYS=$sys
    CUR_DIR=$WORK/$sys-$n
    case $sys in
    keel) cmd=(env "KEEL_BUILD=$BUILD" bash tools/local-cluster.sh start --nodes "$n"
        --dir "$CUR_DIR" --base-port "$PORT_KEEL" "${KEEL_ARGS[@]}") ;;
    etcd) cmd=(bash perf/anchor_etcd.sh start --dir "$CUR_DIR" --members "$n"
        --base-port "$PORT_ETCD") ;;
    zookeeper) cmd=(bash perf/anchor_zk.sh start --dir "$CUR_DIR" --members "$n"
        --base-port "$PORT_ZK") ;;
    esac
    [[ $CLUSTER_CMDS == *"${cmd[*]}"* ]] || CLUSTER_CMDS+="${cmd[*]}"$'\n'
    if ! out=$("${cmd[@]}" 2>&1); then
        echo "compare: $sys: the $n-member cluster did not start:" >&2
        tail -n 15 <<<"$out" >&2
        FAILED=$((FAILED + 1))
        stop_cluster
        rm -rf "$WORK/$sys-$n"
        return 1
    fi
    EP=$(tail -1 <<<"$out")
    read_pids
    [[ $sys != keel || $n -eq 1 ]] || wait_balanced
    printf '[%4ds] %-10s %-9s %s members started (%s) in %s s\n' $((SECONDS - T_START)) cluster \
        "$sys" "$n" "$state" "$(since_s "$t0")"
}

read_pids() { PIDS_CSV=$(awk '{ print $2 }' "$CUR_DIR/pids" | paste -sd ,); }

# keel moves leaders to spread its groups over the nodes a few seconds after a start; the
# cases wait for that (up to 10 s) so that they measure the steady layout.
wait_balanced() {
    local t out
    for ((t = 0; t < 50; t++)); do
        out=$("$BUILD/bin/keelctl" --timeout 1000 --endpoints "$EP" endpoint status 2>/dev/null) ||
            true
        # Rows: endpoint, id, shard, role, ...: balanced when each shard's leader is elsewhere.
        awk -F', ' '$4 == "leader" { if (!($1 in e)) n++; e[$1] = 1; s++ }
            END { exit !(s > 0 && n == s) }' <<<"$out" && return 0
        sleep 0.2
    done
}

stop_cluster() {
    [[ -n $CUR_SYS ]] || return 0
    case $CUR_SYS in
    keel) KEEL_BUILD=$BUILD bash tools/local-cluster.sh stop --dir "$CUR_DIR" >/dev/null 2>&1 ;;
    etcd) bash perf/anchor_etcd.sh stop --dir "$CUR_DIR" >/dev/null 2>&1 ;;
    zookeeper) bash perf/anchor_zk.sh stop --dir "$CUR_DIR" >/dev/null 2>&1 ;;
    esac || echo "compare: stopping $CUR_SYS in $CUR_DIR failed" >&2
    CUR_SYS=""
}

# Resident set of the running cluster's servers, in MB (MiB).
rss_mb() {
    local p kb=0
    for p in ${PIDS_CSV//,/ }; do
        kb=$((kb + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status")))
    done
    awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }'
}

# run_case CASE ARGS...: keelbench against the running cluster with the suite's settings and
# ARGS; keeps its summary line and command, prints a progress line. CASE_KEYS overrides KEYS.
run_case() {
    local name=$1 key=$1/$CUR_SYS out line; shift
    local cmd=("$BUILD/bin/keelbench" --system "$CUR_SYS" --endpoints "$EP"
        --keys "${CASE_KEYS:-$KEYS}" --key-size "$KEY_B" --value-size "$VALUE_B"
        --server-pids "$PIDS_CSV" --cdf-out "$RAW/$name-$CUR_SYS.cdf" "$@")
    [[ $CUR_SYS != keel ]] || cmd+=(--shard-aware)
    CMDS[$key]=$(quote_cmd "${cmd[@]}")
    R[$key]=""
    out=$RAW/$name-$CUR_SYS.txt
    if timeout -k 5 900 "${cmd[@]}" >"$out" 2>&1; then
        line=$(grep '^summary: ' "$out" | tail -1 || true)
        R[$key]=$line
    fi
    if [[ -z ${R[$key]} ]]; then
        FAILED=$((FAILED + 1))
        printf '[%4ds] %-10s %-9s FAILED: %s\n' $((SECONDS - T_START)) "$name" "$CUR_SYS" \
            "$(tail -n 3 "$out" | paste -sd ' ' -)"
        return 0
    fi
    printf '[%4ds] %-10s %-9s ops/s=%-8s p99_ms=%-8s errors=%-4s server_cpu_s=%s\n' \
        $((SECONDS - T_START)) "$name" \
        "$CUR_SYS" "$(field "$key" ops_s)" "$(field "$key" p99_ms)" "$(field "$key" errors)" \
        "$(field "$key" server_cpu_s)"
}

# The arguments as one shell command line (quoted only where a shell needs it).
quote_cmd() {
    local a line=""
    for a in "$@"; do
        [[ $a =~ ^[A-Za-z0-9_./:,=@+%-]+$ ]] || a=$(printf '%q' "$a")
        line+="${line:+ }$a"
    done
    echo "$line"
}

# field CASE/SYSTEM KEY: KEY's value in that case's summary line (empty if none).
field() {
    local re=" $2=([^ ]*)"
    if [[ " ${R[$1]:-}" =~ $re ]]; then echo "${BASH_REMATCH[1]}"; fi
}

# phase CASES-FN ARGS...: for every system, back to back: its 3-member cluster, CASES-FN
# SYSTEM ARGS..., the cluster stopped. The first phase of a system starts a fresh cluster and
# writes every key once (measured too: case load); the second restarts it on its data (only
# two phases: restarting a ZooKeeper ensemble on its data takes 20-50 s here).
phase() {
    local fn=$1 sys; shift
    for sys in $SYSTEMS; do
        if [[ ! -f $WORK/$sys-3/loaded ]]; then
            rm -rf "$WORK/$sys-3"
            start_cluster "$sys" 3 || continue
            run_case load --op load --conns "${HIGH[0]}" --depth "${HIGH[1]}" --threads 2
            [[ -z ${R[load/$sys]} ]] || touch "$WORK/$sys-3/loaded"
        else
            start_cluster "$sys" 3 || continue
        fi
        "$fn" "$sys" "$@"
        stop_cluster
    done
}

# Every measured case: --no-preload (the phase loaded the keys), the suite's duration
# (CASE_DUR overrides it).
measured() { run_case "$@" --duration "${CASE_DUR:-$DUR}" --warmup "$WARM" --no-preload; }

cases_low() {
    measured seq_put --op put --conns 1 --depth 1 --threads 1 --fsync-probe "$WORK"
    measured seq_get --op get --conns 1 --depth 1 --threads 1
    cases_concurrent "$1" "${LOW[@]}"
}

cases_high() {
    cases_concurrent "$1" "${HIGH[@]}"
    cases_rate
}

# cases_concurrent SYSTEM CONNS DEPTH. ZooKeeper has one kind of read (a sequentially
# consistent get served by the member the client is connected to): its get stands for both.
cases_concurrent() {
    local sys=$1 c=$2 d=$3 n=$(($2 * $3))
    local conc=(--conns "$c" --depth "$d" --threads 2)
    measured "put_$n" --op put "${conc[@]}"
    measured "get_$n" --op get "${conc[@]}"
    if [[ $sys == zookeeper ]]; then
        R[sget_$n/$sys]=${R[get_$n/$sys]}
        CMDS[sget_$n/$sys]="(the get_$n run: ZooKeeper has no separate serializable read)"
    else
        measured "sget_$n" --op get --serializable "${conc[@]}"
    fi
    measured "mixed_$n" --op mixed --read-ratio 0.9 "${conc[@]}"
}

# Fixed rates, open loop, with the high level's connections as the capacity.
cases_rate() {
    local r
    for r in "${RATES[@]}"; do
        CASE_DUR=$RATE_DUR measured "rate_$((r / 1000))k" --op put --rate "$r" \
            --conns "${HIGH[0]}" --depth "${HIGH[1]}" --threads 2
    done
}

# One member of each system: perf/mem_load.sh reads its server's RSS, writes MEM_KEYS keys once
# (keelbench --op load, 16 x 64 in flight), reads RSS again after MEM_SETTLE_S seconds, restarts
# the member on its data and times it until it serves. Then the data dir's size and the
# restarted member's RSS.
case_memory() {
    local sys=$1 out cmd err
    err=$RAW/mem_load-$sys.txt
    rm -rf "$WORK/$sys-1"
    start_cluster "$sys" 1 || return 0
    cmd=(env "KEEL_BUILD=$BUILD" bash perf/mem_load.sh --system "$sys" --endpoints "$EP"
        --pid "$PIDS_CSV" --dir "$CUR_DIR" --keys "$MEM_KEYS" --settle-s "$MEM_SETTLE_S" --
        --server-pids "$PIDS_CSV" --cdf-out "$RAW/mem_load-$sys.cdf")
    [[ $sys != keel ]] || cmd+=(--shard-aware)
    CMDS[mem_load/$sys]=$(quote_cmd "${cmd[@]}")
    if out=$(timeout -k 5 1200 "${cmd[@]}" 2>"$err"); then
        M[$sys/rss0_mb]=$(sed -n 's/.*rss_before_mb=\([^ ]*\).*/\1/p' <<<"$out")
        M[$sys/rss1_mb]=$(sed -n 's/.*rss_after_mb=\([^ ]*\).*/\1/p' <<<"$out")
        M[$sys/recovery_s]=$(sed -n 's/^recovery_s=//p' <<<"$out" | tail -1)
        read_pids
        M[$sys/rss2_mb]=$(rss_mb)
        M[$sys/disk_mb]=$(du -sm "$CUR_DIR" | awk '{ print $1 }')
    else
        FAILED=$((FAILED + 1))
        echo "compare: $sys: perf/mem_load.sh failed: $(tail -n 3 "$err" | paste -sd ' ' -)" >&2
    fi
    R[mem_load/$sys]=$(sed -n 's/^mem_load.sh: keelbench: //p' "$err" | tail -1)
    printf '[%4ds] %-10s %-9s load_ops_s=%s rss_growth_mb=%s recovery_s=%s\n' \
        $((SECONDS - T_START)) mem "$sys" "$(field "mem_load/$sys" ops_s)" \
        "$(mem_growth "$sys")" "${M[$sys/recovery_s]:-n/a}"
    stop_cluster
    rm -rf "$WORK/$sys-1"
}
