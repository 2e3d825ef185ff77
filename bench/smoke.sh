#!/usr/bin/env bash
# Five seconds of ebbench against the daemon: 10 subscribers, every message
# checked (exactly once, whole, in order); then two seconds of the same over
# a TLS listener, the daemon's certificate checked by ebbench --ca.
# Correctness only, no speed asserted.
set -euo pipefail
daemon=$1 ebbench=$2
dir=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
# A free port: let the kernel pick one, then hand it to the daemon.
free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
                echo $((20000 + RANDOM % 20000))
}
# start CONF STDERR PORT: the daemon in the background, pid in $pid; waits
# until it listens. Returns the daemon's exit status if it ends first.
start() {
        "$daemon" -c "$1" 2>"$2" &
        pid=$!
        for _ in $(seq 100); do
                grep -q ":$(printf '%04X' "$3") 00000000:0000 0A" /proc/net/tcp && return 0
                if ! kill -0 "$pid" 2>/dev/null; then
                        local status=0
                        wait "$pid" || status=$?
                        pid=
                        return "$status"
                fi
                sleep 0.05
        done
}
stop() {
        kill -TERM "$pid"
        wait "$pid"
        pid=
}

port=$(free_port)
printf 'listen = ["127.0.0.1:%s"];\nlog_level = "notice";\n' "$port" >"$dir/eb.conf"
start "$dir/eb.conf" "$dir/stderr" "$port"
"$ebbench" --pid "$pid" -s 10 -d 5 "127.0.0.1:$port"
stop
! grep -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error' "$dir/stderr"

command -v openssl >/dev/null || { echo "bench-smoke: TLS part skipped: no openssl"; exit 0; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
port=$(free_port)
printf 'listen = ( { address = "127.0.0.1:%s"; tls = true; } );\ntls = { cert_file = "%s"; key_file = "%s"; };\nlog_level = "notice";\n' \
        "$port" "$dir/cert.pem" "$dir/key.pem" >"$dir/eb-tls.conf"
status=0
start "$dir/eb-tls.conf" "$dir/stderr-tls" "$port" || status=$?
if [ "$status" = 78 ]; then
        # Until the daemon reads listener groups (exit 78: configuration).
        echo "bench-smoke: TLS part skipped: the daemon refused a TLS listener group (exit 78):" \
                "$(tail -n 1 "$dir/stderr-tls")"
        exit 0
fi
[ "$status" = 0 ] || { cat "$dir/stderr-tls" >&2; exit 1; }
"$ebbench" --pid "$pid" --ca "$dir/cert.pem" -s 10 -d 2 "127.0.0.1:$port"
stop
! grep -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error' "$dir/stderr-tls"
