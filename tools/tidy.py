#!/usr/bin/env python3
"""tidy.py — keel's shape and include rules, checked over the C sources.

Run through tools/tidy.sh. Prints one line per violation, "file:line: rule: detail",
and exits 1 when there is any; prints "tidy: ok (N files)" and exits 0 when clean.
Exit 2 means tidy itself could not run (no clang-format, not a keel tree).

Files: the *.c and *.h files git knows of (tracked, plus new files not yet added
that .gitignore does not hide), or every such file on disk outside a git
checkout. Generated headers (*_gen.h) are skipped by every rule.

Rules (docs/architecture.md and shared/style.md point 14 say why):
  line-length     a line is longer than 100 columns (tabs count to the next
                  multiple of 8), in every C file, tests included.
  function-length a function body is longer than 70 lines, counted between the
                  lines of its opening and closing brace, in core/ raft/ net/
                  shard/ tools/ perf/ (tests/ is exempt).
  include         the layering rules, in the same folders:
                  core/  only core/* and system headers; <jemalloc/...> only in
                         core/arena.c and core/slab.c, <xxhash.h> only in
                         core/checksum.c, no other third-party library headers.
                  raft/  only raft/* and core/types.h, core/assert.h,
                         core/buf.h; no third-party headers and none of
                         <liburing.h> <time.h> <pthread.h> <threads.h> <sys/...>
                         <unistd.h> (raft/ is a pure state machine).
                  net/   never raft/ or shard/.
                  X/*_int.h is private to folder X.
  clang-format    `clang-format --dry-run -Werror` finds a difference, in every
                  C file, tests included.
"""

import os
import re
import shutil
import subprocess
import sys

LINE_COLUMNS_MAX = 100
FUNCTION_LINES_MAX = 70
STRICT_DIRS = ("core", "raft", "net", "shard", "tools", "perf")
PROJECT_DIRS = STRICT_DIRS + ("tests", "proto-spec")
# Headers of the libraries keel links; anything else in <...> is libc/kernel/compiler.
THIRD_PARTY = ("liburing.h", "liburing/", "jemalloc/", "xxhash.h", "lmdb.h", "criterion/")
RAFT_CORE_ALLOWED = ("core/types.h", "core/assert.h", "core/buf.h")
RAFT_SYSTEM_FORBIDDEN = ("liburing.h", "time.h", "pthread.h", "threads.h", "unistd.h")

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
DIRECTIVE_RE = re.compile(r"[ \t]*#")


def list_files(root):
    """The C files to check, as paths relative to root, sorted."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True, text=True).stdout
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for top, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
            names += [os.path.relpath(os.path.join(top, f), root) for f in files]
    names = {n for n in names if n.endswith((".c", ".h")) and not n.endswith("_gen.h")}
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n)))


def folder_of(path):
    return path.split("/", 1)[0] if "/" in path else ""


# ---- line length -------------------------------------------------------------

def check_line_length(path, lines, report):
    for number, line in enumerate(lines, 1):
        columns = len(line.rstrip("\n").expandtabs(8))
        if columns > LINE_COLUMNS_MAX:
            report(path, number, "line-length",
                   f"{columns} columns (max {LINE_COLUMNS_MAX})")


# ---- function length ---------------------------------------------------------

def strip_code(text):
    """Blanks comments, string and char literals and preprocessor lines, keeping
    newlines, so that braces and parentheses can be counted on what remains."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and DIRECTIVE_RE.match(text, i):
            # A preprocessor line, with its backslash continuations.
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        if c == "\n":
            at_line_start = True
            out.append(c)
            i += 1
            continue
        at_line_start = False
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
            i = end
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j < n and text[j] == c:
                out.append(c + " " * (j - i - 1) + c)
                i = j + 1
            else:  # unterminated: blank to the end of the line, keep the newline
                j = min(j, n)
                out.append(" " * (j - i))
                i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check_function_length(path, text, report):
    """A '{' at file scope opens a function body when the code before it, since
    the last ';' or '}' at file scope, ends with ')' and has no '=' (which
    would make it an initializer). Struct, union and enum bodies end in a name."""
    code = strip_code(text)
    depth = 0
    head = []            # code since the last file-scope ';' or '}'
    open_line = 0        # line of the body's '{'
    is_function = False
    line = 1
    for c in code:
        if c == "\n":
            line += 1
        if depth == 0:
            if c == "{":
                signature = "".join(head).strip()
                is_function = signature.endswith(")") and "=" not in signature
                open_line = line
                depth = 1
                head = []
            elif c in ";}":
                head = []
            else:
                head.append(c)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0 and is_function:
                body_lines = line - open_line - 1
                if body_lines > FUNCTION_LINES_MAX:
                    report(path, open_line, "function-length",
                           f"body is {body_lines} lines (max {FUNCTION_LINES_MAX})")


# ---- include rules -----------------------------------------------------------

def include_target(path, quoted, name):
    """The repo-relative path an include names, or None for a system header."""
    first = name.split("/", 1)[0]
    if "/" in name and first in PROJECT_DIRS:
        return os.path.normpath(name)
    if quoted:
        return os.path.normpath(os.path.join(os.path.dirname(path), name))
    return None


def include_problem(path, quoted, name):
    """Why path may not include name, or None when it may."""
    folder = folder_of(path)
    target = include_target(path, quoted, name)
    third_party = target is None and name.startswith(THIRD_PARTY)
    if target and target.endswith("_int.h") and folder_of(target) != folder:
        return f"{target} is private to {folder_of(target)}/"
    if folder == "core":
        if target and folder_of(target) != "core":
            return "core/ includes only core/ headers and system headers"
        if name.startswith("jemalloc/") and path not in ("core/arena.c", "core/slab.c"):
            return "<jemalloc/...> only in core/arena.c and core/slab.c"
        if name == "xxhash.h" and path != "core/checksum.c":
            return "<xxhash.h> only in core/checksum.c"
        if third_party and not name.startswith(("jemalloc/", "xxhash.h")):
            return "core/ links only libc, jemalloc and xxhash"
    if folder == "raft":
        if target and folder_of(target) != "raft" and target not in RAFT_CORE_ALLOWED:
            return "raft/ includes only raft/ and core/types.h, core/assert.h, core/buf.h"
        if target is None and (name in RAFT_SYSTEM_FORBIDDEN or name.startswith("sys/")):
            return "raft/ is pure: no I/O, clock or thread headers"
        if third_party:
            return "raft/ includes no third-party headers"
    if folder == "net" and target and folder_of(target) in ("raft", "shard"):
        return "net/ never includes raft/ or shard/"
    return None


def check_includes(path, lines, report):
    for number, line in enumerate(lines, 1):
        match = INCLUDE_RE.match(line)
        if not match:
            continue
        quoted, name = match.group(1) == '"', match.group(2).strip()
        problem = include_problem(path, quoted, name)
        if problem:
            shown = f'"{name}"' if quoted else f"<{name}>"
            report(path, number, "include", f"{shown}: {problem}")


# ---- clang-format ------------------------------------------------------------

def check_format(root, files, report):
    if not files:
        return
    if shutil.which("clang-format") is None:
        sys.exit("tidy: clang-format not found (run tools/install-deps.sh)")
    result = subprocess.run(["clang-format", "--dry-run", "-Werror", "--style=file", *files],
                            cwd=root, capture_output=True, text=True)
    differing = {}  # path -> set of line numbers; one report per file, at its first line
    for line in result.stderr.splitlines():
        match = re.match(r"^(.+?):(\d+):\d+: error: ", line)
        if match:
            differing.setdefault(match.group(1), set()).add(int(match.group(2)))
    for path, numbers in differing.items():
        report(path, min(numbers), "clang-format",
               f"{len(numbers)} line(s) differ from clang-format, first here (make format)")
    if result.returncode != 0 and not differing:
        sys.exit(f"tidy: clang-format failed:\n{result.stderr.strip()}")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    if not os.path.isfile(os.path.join(root, "CMakeLists.txt")):
        print(f"tidy: {root} is not a keel tree", file=sys.stderr)
        return 2
    files = list_files(root)
    violations = []

    def report(path, line, rule, detail):
        violations.append((path, line, rule, detail))

    for path in files:
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.splitlines()
        check_line_length(path, lines, report)
        if folder_of(path) in STRICT_DIRS:
            check_function_length(path, text, report)
            check_includes(path, lines, report)
    check_format(root, files, report)

    for path, line, rule, detail in sorted(violations):
        print(f"{path}:{line}: {rule}: {detail}")
    if violations:
        count = len({v[0] for v in violations})
        print(f"tidy: {len(violations)} violation(s) in {count} file(s)")
        return 1
    print(f"tidy: ok ({len(files)} files)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            sys.exit(2)
        raise
