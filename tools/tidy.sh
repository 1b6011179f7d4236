#!/usr/bin/env bash
# tidy.sh — checks keel's C sources for function length, line length, include
# rules and clang-format; the rules and their reasons are in tools/tidy.py.
# Usage: tools/tidy.sh [repo-root]   (default: the tree this script lives in)
# Exit 0 and "tidy: ok (N files)" when clean; 1 with file:line: rule lines otherwise.
set -euo pipefail
if ! command -v python3 >/dev/null; then
    echo "tidy: python3 not found (run tools/install-deps.sh)" >&2
    exit 2
fi
exec python3 "$(dirname "${BASH_SOURCE[0]}")/tidy.py" "$@"
