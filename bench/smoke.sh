#!/usr/bin/env bash
# Five seconds of ebbench against the daemon: 10 subscribers, every message
# checked (exactly once, whole, in order). Correctness only, no speed asserted.
set -euo pipefail
daemon=$1 ebbench=$2
dir=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
# A free port: let the kernel pick one, then hand it to the daemon.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       echo $((20000 + RANDOM % 20000)))
printf 'listen = ["127.0.0.1:%s"];\nlog_level = "notice";\n' "$port" >"$dir/eb.conf"
"$daemon" -c "$dir/eb.conf" 2>"$dir/stderr" &
pid=$!
for _ in $(seq 100); do
        grep -q ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp && break
        sleep 0.05
done
"$ebbench" --pid "$pid" -s 10 -d 5 "127.0.0.1:$port"
kill -TERM "$pid"
wait "$pid"
pid=
! grep -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error' "$dir/stderr"
