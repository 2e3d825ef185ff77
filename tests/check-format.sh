#!/usr/bin/env bash
# The tree is formatted with its own .clang-format: list every tracked C file
# that clang-format would change, and fail if there is one.
set -euo pipefail
cd "${1:-.}"
fmt=$(command -v clang-format-14 || command -v clang-format)
bad=0
while IFS= read -r f; do
        if ! "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1; then
                echo "not formatted: $f (clang-format -i $f)"
                bad=1
        fi
done < <(git ls-files '*.c' '*.h')
[ "$bad" -eq 0 ] && echo "format: every C file matches .clang-format"
exit "$bad"
