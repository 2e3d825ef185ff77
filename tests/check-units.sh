#!/bin/sh
# Checks the generated units as CI must: `systemd-analyze verify` reports
# nothing and the service's sandbox rates an exposure of at most 1.0.
# Usage: check-units.sh BUILD_DIR DAEMON_PATH
set -eu
build=$1
daemon=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify insists that ExecStart= exists: point it at the binary just built.
for unit in epoll-broadcaster.service epoll-broadcaster.socket; do
        sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/epoll-broadcaster|\1$daemon|" "$build/$unit" > "$tmp/$unit"
done
grep -q "^ExecStart=$daemon\$" "$tmp/epoll-broadcaster.service"

out=$(cd "$tmp" && systemd-analyze verify --man=no epoll-broadcaster.socket epoll-broadcaster.service 2>&1) || {
        echo "systemd-analyze verify failed:"; echo "$out"; exit 1; }
if [ -n "$out" ]; then
        echo "systemd-analyze verify reported:"; echo "$out"; exit 1
fi
echo "verify: clean"

systemd-analyze security --offline=true --threshold=10 "$tmp/epoll-broadcaster.service" > "$tmp/security.txt" 2>&1 || {
        cat "$tmp/security.txt"; echo "exposure over 1.0"; exit 1; }
tail -n 1 "$tmp/security.txt"
