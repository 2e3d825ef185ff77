#!/usr/bin/env bash
# ebbench against the daemon, every message checked (exactly once, whole, in
# order), 10 subscribers a run: five seconds on a line listener, two on a
# websocket listener (ebbench --ws: masked frames in, a message a message
# out, each followed by an unsolicited pong) and one more with messages the
# daemon sends in fragments; then, with openssl, two seconds on a TLS
# listener and one on a wss:// listener, the daemon's certificate checked by
# ebbench --ca.
# Correctness only, no speed asserted. A listener the daemon refuses fails
# the test: it reads every kind used here.
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

# relay NAME ENTRY ARG...: the daemon with the one listener ENTRY (a listen
# entry of its configuration, %s for the port; one with tls = true gets the
# certificate made below), ebbench ARG... against it.
relay() {
        local name=$1 entry=$2 status=0
        shift 2
        local conf=$dir/$name.conf err=$dir/$name.stderr port
        port=$(free_port)
        # shellcheck disable=SC2059 # the entry is the format: it holds the %s
        printf "listen = ( $entry );\nlog_level = \"notice\";\n" "$port" >"$conf"
        case $entry in
        *"tls = true"*)
                printf 'tls = { cert_file = "%s"; key_file = "%s"; };\n' "$dir/cert.pem" "$dir/key.pem" >>"$conf"
                ;;
        esac
        start "$conf" "$err" "$port" || status=$?
        if [ "$status" != 0 ]; then
                echo "bench-smoke: the daemon refused the $name listener (exit $status): $(tail -n 1 "$err")" >&2
                exit 1
        fi
        "$ebbench" --pid "$pid" "$@" "127.0.0.1:$port"
        stop
        if grep -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error' "$err"; then
                exit 1
        fi
}

relay line '"127.0.0.1:%s"' -s 10 -d 5
relay websocket '{ address = "127.0.0.1:%s"; protocol = "websocket"; }' --ws -s 10 -d 2
# 266-byte messages: a header that would hold an LF byte (0x7e 0x01 0x0a),
# so the daemon sends each in two fragments, put together by ebbench.
relay websocket-fragments '{ address = "127.0.0.1:%s"; protocol = "websocket"; }' --ws -s 10 -d 1 -b 267

command -v openssl >/dev/null || { echo "bench-smoke: TLS and wss parts skipped: no openssl"; exit 0; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
relay tls '{ address = "127.0.0.1:%s"; tls = true; }' --ca "$dir/cert.pem" -s 10 -d 2
relay wss '{ address = "127.0.0.1:%s"; protocol = "websocket"; tls = true; }' --ws --ca "$dir/cert.pem" -s 10 -d 1
