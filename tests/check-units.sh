#!/bin/sh
# Checks the generated units as CI must: `systemd-analyze verify` reports
# nothing and the service's sandbox rates an exposure of at most 1.0.
# The shipped TLS example (systemd/examples: a second socket unit and a
# drop-in for the service) must verify too, and keep the exposure.
# Usage: check-units.sh BUILD_DIR DAEMON_PATH [EXAMPLES_DIR]
set -eu
build=$1
daemon=$2
examples=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify insists that ExecStart= exists: point it at the binary just built.
for unit in epoll-broadcaster.service epoll-broadcaster.socket; do
        sed "s|^\(Exec[A-Za-z]*=\)[^ ]*/epoll-broadcaster|\1$daemon|" "$build/$unit" > "$tmp/$unit"
done
grep -q "^ExecStart=$daemon\$" "$tmp/epoll-broadcaster.service"

# verify WHAT DIR UNIT...: systemd-analyze verify in DIR reports nothing.
verify() {
        what=$1 dir=$2
        shift 2
        out=$(cd "$dir" && systemd-analyze verify --man=no "$@" 2>&1) || {
                echo "systemd-analyze verify ($what) failed:"; echo "$out"; exit 1; }
        if [ -n "$out" ]; then
                echo "systemd-analyze verify ($what) reported:"; echo "$out"; exit 1
        fi
        echo "verify ($what): clean"
}
# exposure WHAT UNIT-FILE: the sandbox rates at most 1.0.
exposure() {
        systemd-analyze security --offline=true --threshold=10 "$2" > "$tmp/security.txt" 2>&1 || {
                cat "$tmp/security.txt"; echo "exposure ($1) over 1.0"; exit 1; }
        echo "$1: $(tail -n 1 "$tmp/security.txt")"
}

verify "packaged units" "$tmp" epoll-broadcaster.socket epoll-broadcaster.service

exposure "packaged service" "$tmp/epoll-broadcaster.service"

[ -n "$examples" ] || exit 0
# The service with the TLS drop-in: its [Unit] and [Service] lines appended
# (systemd merges repeated sections as it merges a drop-in).
mkdir "$tmp/tls"
cp "$tmp/epoll-broadcaster.socket" "$examples/epoll-broadcaster-tls.socket" "$tmp/tls/"
cat "$tmp/epoll-broadcaster.service" "$examples/tls.conf" > "$tmp/tls/epoll-broadcaster.service"
verify "TLS example" "$tmp/tls" epoll-broadcaster-tls.socket epoll-broadcaster.service
exposure "with the TLS drop-in" "$tmp/tls/epoll-broadcaster.service"
