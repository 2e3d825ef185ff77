#!/bin/sh
# Builds the Debian package from the repository's files in a scratch copy
# (never in the work tree: the build dirs there belong to people), lints it,
# and leaves the .deb in OUTDIR.
#
# Usage: tests/build-deb.sh OUTDIR [nocheck]
#   nocheck: skip the test suite during the build (DEB_BUILD_OPTIONS=nocheck),
#            for CI, which has already run it.
#
# The copy holds what git knows of the work tree: tracked files as they are
# now plus untracked files that .gitignore does not exclude (so a new debian/
# file can be tried before it is committed). In CI's clean clone that is the
# committed tree. Build dependencies must be installed (apt-get build-dep ./);
# lintian is installed if it is missing and we are root.
# Exits non-zero if the build fails or lintian reports an error or a warning.
set -eu

usage() { echo "usage: $0 OUTDIR [nocheck]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
outdir=$1
case ${2:-} in
"") ;;
nocheck) DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}"; export DEB_BUILD_OPTIONS ;;
*) usage ;;
esac

top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
start=$(date +%s)

if ! command -v lintian > /dev/null; then
        if [ "$(id -u)" -eq 0 ]; then
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lintian > /dev/null
        else
                echo "build-deb: lintian is not installed (apt-get install lintian)" >&2
                exit 1
        fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/epoll-broadcaster
mkdir "$src"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
        tar --null --no-recursion --ignore-failed-read -T - -cf -) | tar -C "$src" -xf -

# The source package too (native: no orig tarball needed), so that lintian
# also checks debian/rules, debian/control, debian/source and the rest.
(cd "$tmp" && dpkg-source --build epoll-broadcaster > "$tmp/source.log" 2>&1) || {
        cat "$tmp/source.log"; echo "build-deb: dpkg-source failed" >&2; exit 1; }

echo "build-deb: dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
(cd "$src" && dpkg-buildpackage -us -uc -b > "$tmp/build.log" 2>&1) || {
        tail -n 100 "$tmp/build.log"; echo "build-deb: dpkg-buildpackage failed (last 100 lines above)" >&2; exit 1; }
grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$tmp/build.log" || true

changes=$(ls "$tmp"/epoll-broadcaster_*.changes)
dsc=$(ls "$tmp"/epoll-broadcaster_*.dsc)
echo "build-deb: lintian -E -I --pedantic --show-overrides on $(basename "$changes") and $(basename "$dsc")"
status=0
lintian -E -I --pedantic --show-overrides --fail-on error,warning "$changes" "$dsc" || status=$?
echo "build-deb: lintian exit status $status"

cp "$tmp"/epoll-broadcaster_*.deb "$outdir"/
for deb in "$tmp"/epoll-broadcaster_*.deb; do
        echo "build-deb: $outdir/$(basename "$deb")"
done
echo "build-deb: took $(( $(date +%s) - start )) s"
exit "$status"
