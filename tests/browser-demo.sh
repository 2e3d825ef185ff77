#!/usr/bin/env bash
# The built-in page of a websocket listener in a real browser: Debian's
# chromium, headless, driven by playwright-core (installed with npm into the
# build directory on the first run, from tests/browser/package-lock.json).
# A daemon with a websocket listener (the page's own origin allowed) and a
# line listener on free loopback ports; two tabs of the page and a line
# client talk to each other through it (tests/browser/demo.mjs says what is
# checked). A screenshot of the first tab is left in BUILD_DIR/browser-demo.png.
#
# Usage: browser-demo.sh DAEMON_PATH BUILD_DIR    (meson test passes both)
# Exit status: 0 passed, 1 failed, 77 (skip) when chromium, node or npm is
# not installed, or when EB_TEST_OFFLINE is set (a package build, which must
# not reach the npm registry). CHROMIUM=/path overrides the browser.
set -euo pipefail

say() { printf 'browser-demo: %s\n' "$*"; }
skip() {
        say "SKIP: $*"
        exit 77
}
die() {
        say "FAIL: $*" >&2
        exit 1
}

[ $# -eq 2 ] || {
        say "usage: $0 DAEMON_PATH BUILD_DIR" >&2
        exit 2
}
daemon=$1
build=$2
here=$(cd "$(dirname "$0")" && pwd -P)
[ -x "$daemon" ] || die "no daemon at $daemon"
mkdir -p "$build"
build=$(cd "$build" && pwd -P)

[ -z "${EB_TEST_OFFLINE:-}" ] || skip "EB_TEST_OFFLINE is set: playwright-core would come from the npm registry"
chromium=${CHROMIUM:-$(command -v chromium || true)}
{ [ -n "$chromium" ] && [ -x "$chromium" ]; } || skip "chromium is not installed (apt-get install chromium)"
command -v node >/dev/null || skip "node is not installed (apt-get install nodejs)"
command -v npm >/dev/null || skip "npm is not installed (apt-get install npm)"

# playwright-core, the version of the lock file, in the build directory; the
# npm cache beside it, so that neither HOME nor the source tree is written.
# 1.61 is the last playwright-core that runs on Node.js 18 (Debian 12's).
prefix=$build/browser-node
pkg_version() { node -p 'require(process.argv[1]).version' "$1" 2>/dev/null || true; }
want=$(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' \
        "$here/browser/package-lock.json")
if [ "$(pkg_version "$prefix/node_modules/playwright-core/package.json")" != "$want" ]; then
        say "installing playwright-core $want into $prefix"
        mkdir -p "$prefix"
        cp "$here/browser/package.json" "$here/browser/package-lock.json" "$prefix/"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_config_update_notifier=false \
                timeout 150 npm ci --prefix "$prefix" --cache "$prefix/npm-cache" \
                --no-audit --no-fund --ignore-scripts --loglevel=error ||
                die "npm ci of playwright-core $want failed (is the npm registry reachable?)"
        [ "$(pkg_version "$prefix/node_modules/playwright-core/package.json")" = "$want" ] ||
                die "npm ci did not install playwright-core $want"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/browser-demo.XXXXXX")
pid=
cleanup() {
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                kill "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two loopback ports that were free a moment ago (held together, so distinct).
free_ports() {
        node -e '
const net = require("node:net");
const servers = [0, 1].map(() => net.createServer());
Promise.all(servers.map((s) => new Promise((ok, ko) => { s.once("error", ko); s.listen(0, "127.0.0.1", ok); })))
  .then(() => { console.log(servers.map((s) => s.address().port).join(" ")); servers.forEach((s) => s.close()); });'
}

# Whether something listens on 127.0.0.1:PORT (from /proc/net/tcp: no
# connection is made, the daemon logs nothing).
listening() {
        awk -v port="$(printf '%04X' "$1")" \
                '$2 == "0100007F:" port && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}

# Starts the daemon and waits (10 s at most) until both ports listen. Should
# another program take a port in between, the daemon exits; then again with
# new ports, three times at most.
started=false
for attempt in 1 2 3; do
        ports=$(free_ports) || die "no free loopback ports"
        read -r wsport lineport <<<"$ports"
        cat >"$tmp/eb.conf" <<EOF
listen = ( { address = "127.0.0.1:$wsport"; protocol = "websocket"; origins = [ "http://127.0.0.1:$wsport" ]; },
           "127.0.0.1:$lineport" );
log_level = "info";
EOF
        "$daemon" -c "$tmp/eb.conf" >"$tmp/daemon.log" 2>&1 &
        pid=$!
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ! { listening "$wsport" && listening "$lineport"; }; do
                [ "$SECONDS" -lt "$deadline" ] || {
                        cat "$tmp/daemon.log" >&2
                        die "the daemon does not listen on ports $wsport and $lineport after 10 s"
                }
                sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
                started=true
                break
        fi
        status=0
        wait "$pid" || status=$?
        pid=
        cat "$tmp/daemon.log" >&2
        grep -q 'in use' "$tmp/daemon.log" || die "the daemon exited with status $status at start"
        say "attempt $attempt: a port was taken, again with others"
done
$started || die "no attempt to start the daemon succeeded"
say "daemon $pid: websocket listener on 127.0.0.1:$wsport, line listener on 127.0.0.1:$lineport"

# The browser part; at its end it stops the daemon with SIGTERM (the page
# must show the close code 1001).
shot=$build/browser-demo.png
rm -f "$shot"
node_status=0
timeout 120 node "$here/browser/demo.mjs" "$prefix" "$chromium" "http://127.0.0.1:$wsport/" "$lineport" \
        "$shot" "$pid" || node_status=$?
if [ "$node_status" -ne 0 ]; then
        say "daemon log:" >&2
        cat "$tmp/daemon.log" >&2
        [ "$node_status" -ne 124 ] || die "the browser test did not finish in 120 s"
        die "the browser test failed (status $node_status)"
fi

# The daemon stops by itself after the SIGTERM, cleanly.
deadline=$((SECONDS + 15))
while kill -0 "$pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || {
                cat "$tmp/daemon.log" >&2
                die "the daemon is still running 15 s after SIGTERM"
        }
        sleep 0.05
done
status=0
wait "$pid" || status=$?
pid=
[ "$status" -eq 0 ] || {
        cat "$tmp/daemon.log" >&2
        die "the daemon exited with status $status after SIGTERM"
}
[ -s "$shot" ] || die "no screenshot at $shot"
say "PASS (screenshot: $shot)"
