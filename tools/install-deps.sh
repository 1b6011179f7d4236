#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages keel needs to build, test and
# tidy, and only those that are missing. Safe to run again: with everything
# present it changes nothing. Needs root or sudo, and Debian's apt repositories.
set -euo pipefail

packages=(gcc make cmake pkg-config liburing-dev libjemalloc-dev libxxhash-dev
          libcriterion-dev liblmdb-dev clang-format python3
          # keelbench's etcd and ZooKeeper drivers, the anchor clusters (perf/anchor_*.sh), plots
          etcd-server etcd-client zookeeper libzookeeper-mt-dev libnghttp2-dev gnuplot-nox)

die() { echo "install-deps: $*" >&2; exit 1; }

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: nothing missing (${#packages[@]} packages already installed)"
    exit 0
fi

command -v apt-get >/dev/null ||
    die "apt-get not found; keel's build expects Debian 12. Install by hand: ${missing[*]}"
apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
if ((EUID != 0)); then
    command -v sudo >/dev/null ||
        die "not root and sudo not found; as root run: apt-get install ${missing[*]}"
    apt=(sudo "${apt[@]}")
fi

# apt's chatter goes to a log that is shown only when it fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${apt[@]}" update >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "apt-get update failed (see above)"; }
"${apt[@]}" install -y "${missing[@]}" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "apt-get install ${missing[*]} failed (see above)"; }
echo "install-deps: installed ${missing[*]}"
