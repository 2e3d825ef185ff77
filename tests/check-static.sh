#!/bin/sh
# Static analysis: clang-tidy (checks in .clang-tidy) and cppcheck over the
# daemon and client sources (src/*.c) and the load generator (bench/*.c).
# Any finding fails; a false positive is suppressed where it occurs, with its
# reason (// NOLINT(check): why, or // cppcheck-suppress id with why), or in
# .clang-tidy / tests/cppcheck-suppressions.txt with the reason beside it.
#
# Usage: check-static.sh [SOURCE_ROOT] BUILD_ROOT    (meson test passes both)
#        check-static.sh                             (sets up a build in a temporary directory)
# BUILD_ROOT is any meson build directory: its compile_commands.json gives
# each file's flags. Exit status: 0 clean, 1 findings, 77 (skip) when
# clang-tidy or cppcheck is not installed. STATIC_JOBS (default 2) sets the
# number of clang-tidy processes; STATIC_DIRS (default "src bench") the
# directories whose *.c are checked.
set -u

say() { printf 'check-static: %s\n' "$*"; }

case $# in
0) src=$(dirname "$0")/..; build= ;;
1) src=$(dirname "$0")/..; build=$1 ;;
2) src=$1; build=$2 ;;
*) say "usage: $0 [SOURCE_ROOT] BUILD_ROOT" >&2; exit 2 ;;
esac
src=$(cd "$src" && pwd -P) || exit 1
jobs=${STATIC_JOBS:-2}
dirs=${STATIC_DIRS:-src bench}

# The checks are tuned for Debian 12's clang-tidy 14; any other is a fallback.
tidy=$(command -v clang-tidy-14 || command -v clang-tidy) || { say "SKIP: clang-tidy is not installed"; exit 77; }
command -v cppcheck >/dev/null || { say "SKIP: cppcheck is not installed"; exit 77; }
command -v python3 >/dev/null || { say "SKIP: python3 is not installed"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-static.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

if [ -z "$build" ]; then
        build=$tmp/build
        meson setup "$build" "$src" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; say "meson setup failed"; exit 1; }
fi
build=$(cd "$build" && pwd -P) || exit 1
db=$build/compile_commands.json
[ -f "$db" ] || { say "no $db: not a meson (ninja) build directory"; exit 1; }

# The files to check, as absolute paths, from the compilation database (so
# each is analysed with the flags it is built with).
# shellcheck disable=SC2086 # $dirs is a list of words
python3 - "$db" "$src" $dirs >"$tmp/files" <<'EOF' || { say "cannot read $db"; exit 1; }
import json, os, sys
db, src, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
dirs = [os.path.join(src, d) for d in dirs]
files = set()
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e.get("directory", ""), e["file"]))
    if os.path.dirname(f) in dirs and f.endswith(".c"):
        files.add(f)
# Largest first, so that the slowest file does not start last.
print("\n".join(sorted(files, key=lambda f: (-os.path.getsize(f), f))))
EOF
n_files=$(grep -c . "$tmp/files")
[ "$n_files" -gt 0 ] || { say "no *.c of $dirs in $db"; exit 1; }
start=$(date +%s)

# --- clang-tidy ---------------------------------------------------------------
# One process per file: clang-tidy 14 given several files in one process keeps
# analyzer state from one to the next (clang-analyzer-valist.Uninitialized then
# reports a va_list that va_start did initialise).
say "clang-tidy ($("$tidy" --version | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -n1)) on $n_files files, $jobs at a time"
mkdir "$tmp/tidy"
export tidy src build tmp
# shellcheck disable=SC2016 # expanded by the inner sh, from the environment
tr '\n' '\0' <"$tmp/files" | xargs -0 -n1 -P"$jobs" sh -c '
        log=$tmp/tidy/$(printf %s "$1" | tr / _).log
        "$tidy" --quiet -p "$build" --config-file="$src/.clang-tidy" "$1" >"$log" 2>&1
        echo $? >"$log.rc"' sh
tidy_failed=0
while IFS= read -r f; do
        log=$tmp/tidy/$(printf %s "$f" | tr / _).log
        rc=$(cat "$log.rc" 2>/dev/null || echo 1)
        if [ "$rc" != 0 ]; then
                tidy_failed=$((tidy_failed + 1))
                # Drop the "N warnings generated." chatter, keep the findings.
                grep -v -e '^[0-9]* warnings\{0,1\} generated\.$' -e '^[0-9]* warnings\{0,1\} and [0-9]* errors\{0,1\} generated\.$' \
                        -e '^Error while processing ' "$log" | sed "s|[^ :]*$src/||"
                say "clang-tidy: ${f#"$src"/}: FAILED"
        fi
done <"$tmp/files"
tidy_findings=$(cat "$tmp"/tidy/*.log | grep -c -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):')
tidy_end=$(date +%s)
say "clang-tidy: $tidy_findings findings, $tidy_failed of $n_files files failed ($((tidy_end - start)) s)"

# --- cppcheck -------------------------------------------------------------------
# Not --library=posix: with it cppcheck 2.10 reports every early return from a
# function holding a _cleanup_close_/_cleanup_free_ variable as a leak, since
# it does not model __attribute__((cleanup)); the leaks are clang-tidy's
# (clang-analyzer-unix.Malloc) and ASan's to find.
say "cppcheck ($(cppcheck --version | sed 's/^Cppcheck //')) on $n_files files"
set -- --project="$db" --enable=warning,performance,portability --std=c11 --inline-suppr \
        --error-exitcode=1 --quiet -j"$jobs" --template='{file}:{line}:{column}: {severity}: {message} [{id}]'
while IFS= read -r f; do
        set -- "$@" --file-filter="$f"
done <"$tmp/files"
# One "id[:file[:line]]" a line, each with its reason in a # comment.
if [ -f "$src/tests/cppcheck-suppressions.txt" ]; then
        set -- "$@" --suppressions-list="$src/tests/cppcheck-suppressions.txt"
fi
cppcheck "$@" >"$tmp/cppcheck.log" 2>&1
cppcheck_rc=$?
sed "s|[^ :]*$src/||" "$tmp/cppcheck.log"
cppcheck_findings=$(grep -c -E '^[^ ]+:[0-9]+:[0-9]+: ' "$tmp/cppcheck.log")
if [ "$cppcheck_rc" != 0 ] && [ "$cppcheck_findings" = 0 ]; then
        cppcheck_findings=1  # it failed without a finding line: count the failure
fi
end=$(date +%s)
say "cppcheck: $cppcheck_findings findings ($((end - tidy_end)) s)"

# --- summary ----------------------------------------------------------------------
if [ "$tidy_failed" = 0 ] && [ "$cppcheck_rc" = 0 ]; then
        say "clean: clang-tidy and cppcheck found nothing in $n_files files ($((end - start)) s)"
        exit 0
fi
say "FAILED: $tidy_findings clang-tidy findings, $cppcheck_findings cppcheck findings ($((end - start)) s)"
say "fix the code, or suppress a false positive where it occurs with its reason (see .clang-tidy)"
exit 1
