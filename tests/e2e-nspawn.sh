#!/bin/bash
# End-to-end test of the .deb in a real, booted systemd (Debian 12 in
# systemd-nspawn): socket activation, sandbox, reload, journal priorities,
# stop/drain, conffile handling, purge.
#
# Usage: tests/e2e-nspawn.sh PATH/TO/epoll-broadcaster_*.deb
#
# Needs root. Installs debootstrap and systemd-container with apt-get if they
# are missing. The pristine Debian 12 root (debootstrap --variant=minbase
# --include=systemd,systemd-sysv,dbus bookworm) is cached in
# $E2E_CACHE (default /var/cache/epoll-broadcaster-e2e) and created there
# when absent (about 50 s); each run works on a copy of it, which it removes,
# with the container, when it ends, whatever happened.
#
# The container shares the host's network: its epoll-broadcaster.socket
# listens on the host's 127.0.0.1:7878 and [::1]:7878, which must be free.
# Clients are bash /dev/tcp connections from the host, every read bounded.
#
# Prints one line per step, "step N: PASS - what" or "step N: FAIL - why",
# then "e2e: N passed, N failed"; exits non-zero if any step failed.
set -u
export LC_ALL=C
# A write to a connection the server closed must fail, not kill the test.
# (Caught, not ignored: the commands we run get the default action back.)
trap : PIPE

readonly PORT=7878
readonly NSTEPS=10
readonly CACHE=${E2E_CACHE:-/var/cache/epoll-broadcaster-e2e}
readonly SUITE=bookworm
readonly UNIT=epoll-broadcaster.service
readonly SOCK=epoll-broadcaster.socket
readonly CONF=/etc/epoll-broadcaster.conf
# Steps not started by then are failed, so the run stays under 5 minutes.
readonly BUDGET=${E2E_BUDGET:-270}

usage() { echo "usage: $0 PATH/TO/epoll-broadcaster_VERSION_ARCH.deb" >&2; exit 2; }
[ $# -eq 1 ] || usage
deb=$1
[ -f "$deb" ] || { echo "e2e: no such file: $deb" >&2; usage; }
case $deb in /*) ;; *) deb=$PWD/$deb ;; esac

start_us=${EPOCHREALTIME/./}
passed=0
failed=0
run=""          # this run's scratch directory (holds the container's root)
root=""         # $run/root
machine=eb-e2e-$$
nspawn_pid=""   # systemd-nspawn --boot, our child
ct_pid=""       # the container's systemd (PID 1 inside), nspawn's child
booted=false

note() { echo "e2e: $*"; }
# Elapsed seconds since a ${EPOCHREALTIME/./} value, one decimal.
since() { local d=$(( ${EPOCHREALTIME/./} - $1 )); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }

# ---------------------------------------------------------------- cleanup --

close_clients() { exec 3>&- 4>&- 5>&- 6>&-; }

children_of() {
        local f=/proc/$1/task/$1/children
        if [ -r "$f" ]; then
                cat "$f"
        else
                local d ppid
                for d in /proc/[0-9]*; do
                        ppid=$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null) || continue
                        [ "$ppid" = "$1" ] && echo "${d#/proc/}"
                done
        fi
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Runs a long command (debootstrap, the install) as a child we wait for, so
# that a signal to this script is handled at once and cleanup can end it.
long_pid=""
long() {
        "$@" &
        long_pid=$!
        wait "$long_pid"
        local r=$?
        long_pid=""
        return $r
}

# Waits up to $2 tenths of a second for our child $1 to end; sets nspawn_rc.
nspawn_rc=""
reap() {
        local i
        for ((i = 0; i < $2; i++)); do
                alive "$1" || break
                sleep 0.1
        done
        alive "$1" && return 1
        wait "$1" 2>/dev/null
        nspawn_rc=$?
        return 0
}

finished=false
cleanup() {
        local rc=$?
        trap - EXIT INT TERM HUP
        if ! $finished; then
                echo "e2e: interrupted after $((passed + failed)) of $NSTEPS steps"
                echo "e2e: $passed passed, $((NSTEPS - passed)) failed"
                [ "$rc" -ne 0 ] || rc=1
        fi
        close_clients
        if alive "$long_pid"; then
                kill -TERM "$long_pid" 2>/dev/null
                reap "$long_pid" 100 || { kill -KILL "$long_pid" 2>/dev/null; reap "$long_pid" 20; }
        fi
        if alive "$nspawn_pid"; then
                # nspawn turns SIGTERM into a clean poweroff of the container.
                kill -TERM "$nspawn_pid" 2>/dev/null
                if ! reap "$nspawn_pid" 150; then
                        alive "$ct_pid" && kill -KILL "$ct_pid" 2>/dev/null
                        kill -KILL "$nspawn_pid" 2>/dev/null
                        reap "$nspawn_pid" 50 || echo "e2e: warning: systemd-nspawn (pid $nspawn_pid) did not end" >&2
                fi
        fi
        if [ -n "$run" ] && [ -d "$run" ]; then
                rm -rf --one-file-system "$run" || echo "e2e: warning: could not remove $run" >&2
        fi
        # nspawn cannot remove this itself when /run is not a tmpfs.
        rm -rf "/run/systemd/nspawn/propagate/$machine" 2>/dev/null
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ------------------------------------------------------------------ steps --

why=""          # set by a failing check: the reason printed
what=""         # set by a passing step: what it showed

fail() { why=$*; return 1; }

step() {
        local n=$1 fn=$2 t0=${EPOCHREALTIME/./}
        why="" what=""
        if [ $(( (${EPOCHREALTIME/./} - start_us) / 1000000 )) -ge "$BUDGET" ]; then
                why="not run: over the time budget of $BUDGET s"
        elif ! $booted; then
                why="not run: ${boot_error:+setup failed}${boot_error:-the container is gone}"
        elif "$fn" && [ -z "$why" ]; then
                echo "step $n: PASS - $what ($(since "$t0") s)"
                passed=$((passed + 1))
                return 0
        fi
        echo "step $n: FAIL - ${why:-step $n failed} ($(since "$t0") s)"
        failed=$((failed + 1))
        return 1
}

# Runs a command inside the booted container, with a clean environment and
# without our client sockets; bounded by $T seconds (default 30).
ct() {
        timeout "${T:-30}" nsenter -t "$ct_pid" -a -- env -i \
                PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 \
                DEBIAN_FRONTEND=noninteractive "$@" 3>&- 4>&- 5>&- 6>&-
}

prop() { ct systemctl show -P "$2" "$1" 2>/dev/null; }

# Polls (0.1 s) until "$@" succeeds, for at most $1 seconds.
wait_for() {
        local limit=$1 i
        shift
        for ((i = 0; i < limit * 10; i++)); do
                "$@" && return 0
                sleep 0.1
        done
        "$@"
}

# Messages the daemon has read since it started, from its STATUS=.
relayed() { prop $UNIT StatusText | sed -n 's/.* \([0-9][0-9]*\) messages relayed.*/\1/p'; }
# systemctl reload, then wait for the daemon to log that it applied it.
reload_ok() {
        local n out
        n=$(ct journalctl -u $UNIT -o cat --no-pager | grep -c 'reloaded configuration')
        out=$(ct systemctl reload $UNIT 2>&1) || fail "systemctl reload failed: $out" || return
        wait_for 5 eval '[ "$(ct journalctl -u $UNIT -o cat --no-pager | grep -c "reloaded configuration")" -gt "$n" ]' ||
                fail "no 'reloaded configuration' line after the reload"
}
is_active() { [ "$(ct systemctl is-active "$1" 2>/dev/null)" = "$2" ]; }
status_has() { prop $UNIT StatusText | grep -q "$1"; }
journal_has() { ct journalctl -u $UNIT -o cat --no-pager "${@:2}" 2>/dev/null | grep -q -- "$1"; }

# Listening TCP sockets on port 7878 in the host's namespace, as "addr inode".
listeners() {
        awk -v port="$(printf ':%04X' $PORT)" \
                'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == port { print substr($2, 1, length($2) - 5), $10 }' \
                /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
# True when the container's systemd holds the listener with hex address $1
# (0100007F = 127.0.0.1, 00000000000000000000000001000000 = [::1]).
ct_listens_on() {
        local ino
        ino=$(listeners | awk -v a="$1" '$1 == a { print $2; exit }')
        [ -n "$ino" ] || return 1
        local fd
        for fd in "/proc/$ct_pid/fd"/*; do
                [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$ino]" ] && return 0
        done
        return 1
}
port_free() { [ -z "$(listeners)" ]; }

# connect FD: a client on 127.0.0.1:7878 (bash /dev/tcp; connect on loopback
# returns at once, refused or not).
connect() {
        eval "exec $1<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null || fail "cannot connect client fd $1 to 127.0.0.1:$PORT"
}
send() { { printf '%s\n' "$2" >&"$1"; } 2>/dev/null || fail "client fd $1 could not send '$2'"; }
# recv FD: one line into $line within 5 s; 0 = a line, 1 = end of stream,
# 2 = timeout.
line=""
recv() {
        local r
        line=""
        IFS= read -r -t "${RT:-5}" -u "$1" line
        r=$?
        [ $r -eq 0 ] && return 0
        [ $r -gt 128 ] && return 2
        return 1
}
# expect FD REGEX: the next line on FD matches REGEX (bash ERE).
expect() {
        recv "$1"
        case $? in
        0) [[ $line =~ $2 ]] || fail "client fd $1 got '$line', expected /$2/" ;;
        1) fail "client fd $1 was disconnected while waiting for /$2/" ;;
        2) fail "client fd $1 got nothing in ${RT:-5} s (expected /$2/)" ;;
        esac
}
# expect_eof FD: the server closes FD within 10 s, with no line before.
expect_eof() {
        RT=10 recv "$1"
        case $? in
        0) fail "client fd $1 got '$line' where the connection should have ended" ;;
        1) [ -z "$line" ] || fail "client fd $1 got a partial line '$line' before the end" ;;
        2) fail "client fd $1 still connected after 10 s" ;;
        esac
}
# relay FROM TO TEXT REGEX: TEXT sent by FROM arrives at TO matching REGEX.
relay() { send "$1" "$3" && expect "$2" "$4"; }

# Bytes the kernel holds for our client on fd $1: its receive queue plus the
# send queue of the daemon's end of the connection (from /proc/net/tcp).
kernel_bytes() {
        local ino q
        ino=$(readlink "/proc/$BASHPID/fd/$1") || return 1
        ino=${ino#socket:[}
        ino=${ino%]}
        # "rx tx" in hex: our end's receive queue, the daemon's end's send queue.
        q=$(awk -v ino="$ino" -v port="$(printf %04X $PORT)" '
                { split($2, l, ":"); split($3, r, ":"); split($5, q, ":") }
                $10 == ino { lport = l[2]; rx = q[2] }
                l[2] == port { tx[r[2]] = q[1] }
                END { if (lport != "") print rx, (lport in tx ? tx[lport] : 0) }' /proc/net/tcp)
        [ -n "$q" ] || return 1
        set -- $q
        echo $((16#$1 + 16#$2))
}

# Sets one setting in the container's conffile (uncommenting the default).
set_conf() {
        ct sed -i -E "s|^#?[[:space:]]*$1[[:space:]]*=.*|$1 = $2;|" $CONF &&
                ct grep -Fqx "$1 = $2;" $CONF || fail "could not set '$1 = $2;' in $CONF"
}

# Connects clients on fds 3 and 4 (starting the service if needed) and waits
# until the daemon counts them.
open_pair() {
        close_clients
        connect 3 || return 1
        wait_for 10 is_active $UNIT active || fail "service not active 10 s after a connection (state $(ct systemctl is-active $UNIT))" || return 1
        connect 4 || return 1
        wait_for 5 status_has '^Relaying: 2 clients' || fail "STATUS does not show 2 clients: '$(prop $UNIT StatusText)'"
}

# ---------------------------------------------------------------- step 1 --
step1() {
        local st
        st=$(ct systemctl is-enabled $SOCK 2>&1)
        [ "$st" = enabled ] || fail "$SOCK is '$st', not enabled" || return
        is_active $SOCK active || fail "$SOCK is $(ct systemctl is-active $SOCK)" || return
        [ "$(prop $SOCK SubState)" = listening ] || fail "$SOCK substate $(prop $SOCK SubState)" || return
        ct_listens_on 0100007F || fail "no listener of the container's systemd on 127.0.0.1:$PORT (host sees: $(listeners | tr '\n' ' '))" || return
        ct_listens_on 00000000000000000000000001000000 || fail "no listener of the container's systemd on [::1]:$PORT" || return
        st=$(ct systemctl is-active $UNIT)
        [ "$st" = inactive ] || fail "$UNIT is '$st' before any connection, expected inactive" || return
        what="$SOCK enabled, listening on 127.0.0.1:$PORT and [::1]:$PORT (held by the container's systemd); $UNIT inactive"
}

# ---------------------------------------------------------------- step 2 --
step2() {
        local t0=${EPOCHREALTIME/./} t
        close_clients
        connect 3 || return
        wait_for 10 is_active $UNIT active || fail "service not active 10 s after the first connection ($(ct systemctl is-active $UNIT))" || return
        t=$(since "$t0")
        connect 4 || return
        wait_for 5 status_has '^Relaying: 2 clients' || fail "STATUS does not show 2 clients: '$(prop $UNIT StatusText)'" || return
        relay 3 4 "hello from the first client $$" "^hello from the first client $$\$" || return
        relay 4 3 "hello back $$" "^hello back $$\$" || return
        [ "$(prop $UNIT NRestarts)" = 0 ] || fail "service restarted $(prop $UNIT NRestarts) times" || return
        what="first connection started the service in $t s and was served; two clients exchanged messages both ways"
}

# ---------------------------------------------------------------- step 3 --
step3() {
        local pid uids name dyn sec score nofile
        pid=$(prop $UNIT MainPID)
        [ -n "$pid" ] && [ "$pid" != 0 ] || fail "no MainPID (service $(ct systemctl is-active $UNIT))" || return
        uids=$(ct sed -n 's/^Uid:[[:space:]]*//p' "/proc/$pid/status" | tr -s '[:space:]' ' ')
        [ -n "$uids" ] || fail "cannot read the uids of PID $pid" || return
        for u in $uids; do [ "$u" != 0 ] || fail "daemon runs with uid 0 (Uid: $uids)" || return; done
        dyn=$(prop $UNIT DynamicUser)
        [ "$dyn" = yes ] || fail "DynamicUser=$dyn" || return
        set -- $uids
        # minbase has no libnss-systemd: ask systemd itself for the name.
        name=$(ct busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                org.freedesktop.systemd1.Manager LookupDynamicUserByUID u "$1" 2>&1 | sed -n 's/^s "\(.*\)"$/\1/p')
        [ -n "$name" ] || fail "uid $1 is not a dynamic user of systemd" || return
        [ "$1" -ge 61184 ] && [ "$1" -le 65519 ] || fail "uid $1 is outside the dynamic range 61184..65519" || return
        ct grep -q "^$name:" /etc/passwd && { fail "user $name is in /etc/passwd: not a dynamic user"; return; }
        [ "$(ct sed -n 's/^CapEff:[[:space:]]*//p' "/proc/$pid/status")" = 0000000000000000 ] ||
                fail "daemon has effective capabilities" || return
        sec=$(ct systemd-analyze security --no-pager $UNIT 2>&1)
        score=$(printf '%s\n' "$sec" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        [ -n "$score" ] || fail "systemd-analyze security printed no exposure level: $(printf '%s' "$sec" | tail -n 3 | tr '\n' ' ')" || return
        awk -v s="$score" 'BEGIN { exit !(s <= 1.0) }' || fail "exposure $score > 1.0" || return
        nofile=$(ct awk '/^Max open files/ { print $4 "/" $5 }' "/proc/$pid/limits")
        what="daemon runs as dynamic user $name (uid $1), no capabilities, RLIMIT_NOFILE $nofile; systemd-analyze security: exposure $score"
}

# ---------------------------------------------------------------- step 4 --
step4() {
        local pid out id3 id4
        # Clients from step 2 if they are still there, else a new pair.
        if ! is_active $UNIT active || ! status_has '^Relaying: 2 clients'; then
                open_pair || return
        fi
        pid=$(prop $UNIT MainPID)
        set_conf prefix '"[%i] "' || return
        out=$(ct systemctl reload $UNIT 2>&1) || fail "systemctl reload failed: $out" || return
        # The next message must carry the prefix: reload has to be applied
        # by the time systemctl returns.
        relay 3 4 "after reload $$" "^\[([0-9]+)\] after reload $$\$" || return
        id3=${BASH_REMATCH[1]}
        relay 4 3 "reply after reload $$" "^\[([0-9]+)\] reply after reload $$\$" || return
        id4=${BASH_REMATCH[1]}
        [ "$id3" != "$id4" ] || fail "both clients carry connection id $id3" || return
        [ "$(prop $UNIT MainPID)" = "$pid" ] || fail "MainPID changed from $pid to $(prop $UNIT MainPID)" || return
        what="reload kept both clients (same PID $pid) relaying; prefix \"[%i] \" applied to the next message ([$id3], [$id4])"
}

# ---------------------------------------------------------------- step 5 --
step5() {
        local out warn big n id
        if ! is_active $UNIT active || ! status_has '^Relaying: 2 clients'; then
                open_pair || return
        fi
        set_conf max_message_bytes 1024 || return
        set_conf log_level '"info"' || return
        reload_ok || return
        connect 5 || return
        wait_for 5 status_has '^Relaying: 3 clients' || fail "STATUS does not show 3 clients: '$(prop $UNIT StatusText)'" || return
        printf -v big '%2000s' ''
        big=${big// /x}
        send 5 "$big" || return
        expect_eof 5 || { why="oversize sender: $why"; return 1; }
        exec 5>&-
        # Nobody got any of it: the next line the others see is this one.
        relay 3 4 "after oversize $$" "^\[[0-9]+\] after oversize $$\$" || return
        wait_for 5 journal_has 'message over max_message_bytes (1024)' -p warning ||
                fail "journalctl -p warning shows no oversize warning" || return
        warn=$(ct journalctl -u $UNIT -p warning -o cat --no-pager)
        if printf '%s\n' "$warn" | grep -E -q 'connected from|reloaded configuration|serving |using [0-9]+ socket'; then
                fail "journalctl -p warning shows info/notice lines: $(printf '%s\n' "$warn" | grep -E 'connected from|reloaded configuration|serving |using [0-9]+ socket' | head -n 2 | tr '\n' '|')"
                return
        fi
        # Each line at its own priority, and no raw "<N>" left in the text.
        journal_has 'message over max_message_bytes (1024)' -p warning..warning || fail "oversize warning is not at priority warning" || return
        journal_has 'connected from' -p info..info || fail "no 'connected from' line at priority info" || return
        journal_has 'reloaded configuration' -p notice..notice || fail "no 'reloaded configuration' line at priority notice" || return
        journal_has 'serving 127.0.0.1:7878' -p notice..notice || fail "no 'serving' line at priority notice" || return
        # Per-client lines carry structured fields for filtering.
        ct journalctl -u $UNIT -p warning..warning -o verbose --no-pager | grep -E -q '^ *EB_PEER=127\.0\.0\.1:[0-9]+$' ||
                fail "the oversize warning carries no EB_PEER= field" || return
        id=$(ct journalctl -u $UNIT -p warning..warning -o verbose --no-pager | sed -n 's/^ *EB_CLIENT_ID=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
        [ -n "$id" ] || fail "the oversize warning carries no EB_CLIENT_ID= field" || return
        ct journalctl -u $UNIT -o cat --no-pager "EB_CLIENT_ID=$id" | grep -q "^client $id connected from" ||
                fail "journalctl EB_CLIENT_ID=$id does not find that client's connect line" || return
        if ct journalctl -u $UNIT -o cat --no-pager | grep -q '^<[0-7]>'; then
                fail "journal lines start with a raw <N> priority prefix"
                return
        fi
        what="oversize sender (2000 B > 1024) disconnected, nothing relayed; -p warning shows its warning (priority 4) and none of the info (connects) or notice (reload, serving) lines; per-client lines carry EB_PEER=/EB_CLIENT_ID= fields"
}

# ---------------------------------------------------------------- step 6 --
step6() {
        local out res base bulk=$run/bulk drained=$run/drained lines bad state t0 inkernel queued
        # A real drain: B stops reading while A sends 20 MB, far more than the
        # kernel's socket buffers for B hold (B's receive window stays small
        # while it does not read), so most of it waits in the daemon's queue
        # when SIGTERM arrives; all of it must still reach B.
        set_conf max_queue_bytes 67108864 || return
        reload_ok || return
        if ! is_active $UNIT active || ! status_has '^Relaying: 2 clients'; then
                open_pair || return
        fi
        base=$(relayed)
        awk 'BEGIN { s = sprintf("%999s", ""); gsub(/ /, "x", s); for (i = 0; i < 20000; i++) print s }' > "$bulk"
        timeout 30 cat "$bulk" >&3 2>/dev/null || fail "could not send 20 MB from client fd 3" || return
        send 3 "last words $$" || return
        wait_for 15 eval '[ "$(relayed)" -ge $((base + 20001)) ]' ||
                fail "the daemon read $(( $(relayed) - base )) of 20001 messages in 15 s" || return
        inkernel=$(kernel_bytes 4) || fail "cannot find client fd 4 in /proc/net/tcp" || return
        t0=${EPOCHREALTIME/./}
        out=$(ct systemctl stop --no-block $UNIT 2>&1) || fail "systemctl stop failed: $out" || return
        # Read only once the stop has begun (SIGTERM sent).
        wait_for 5 eval 'state=$(prop $UNIT ActiveState); [ "$state" != active ]' ||
                fail "service still active 5 s after systemctl stop" || return
        [ "$state" = deactivating ] || fail "service was already '$state' (Result=$(prop $UNIT Result)) before the reader read anything: it did not wait to drain its queue" || return
        timeout 20 cat <&4 > "$drained" 2>/dev/null
        lines=$(wc -l < "$drained")
        bad=$(grep -c -v -E '^\[[0-9]+\] x{999}$' "$drained")
        [ "$lines" = 20001 ] || fail "not drained: B got $lines of 20001 lines ($(wc -c < "$drained") bytes) after stop" || return
        [ "$bad" = 1 ] && tail -n 1 "$drained" | grep -E -q "^\[[0-9]+\] last words $$\$" ||
                fail "drained lines are damaged or out of order ($bad not bulk lines)" || return
        # What the daemon itself still held when the stop began.
        queued=$(( $(wc -c < "$drained") - inkernel ))
        [ "$queued" -gt 10000000 ] || fail "only $queued bytes were queued in the daemon at stop ($inkernel in kernel buffers): the drain was not tested" || return
        expect_eof 3 || return
        close_clients
        wait_for 15 is_active $UNIT inactive || fail "service is $(ct systemctl is-active $UNIT) 15 s after stop" || return
        res=$(prop $UNIT Result)
        [ "$res" = success ] || fail "Result=$res after stop (ExecMainStatus=$(prop $UNIT ExecMainStatus))" || return
        is_active $SOCK active && ct_listens_on 0100007F || fail "socket not listening after the service stopped" || return
        connect 3 || return
        wait_for 10 is_active $UNIT active || fail "a new connection did not start the service again ($(ct systemctl is-active $UNIT))" || return
        out=$(ct systemctl stop $SOCK $UNIT 2>&1) || fail "systemctl stop $SOCK $UNIT failed: $out" || return
        expect_eof 3 || return
        close_clients
        is_active $UNIT inactive || fail "service is $(ct systemctl is-active $UNIT) after stopping both" || return
        is_active $SOCK inactive || fail "socket is $(ct systemctl is-active $SOCK) after stopping both" || return
        wait_for 5 port_free || fail "something still listens on port $PORT: $(listeners | tr '\n' ' ')" || return
        what="stop (SIGTERM) with $((queued / 1000000)) MB queued in the daemon for a reader: all 20001 lines delivered, in order, in $(since "$t0") s, then Result=success; socket kept listening; a new connection restarted it; stopping both freed port $PORT"
}

# ---------------------------------------------------------------- step 7 --
step7() {
        local before after out left
        ct sh -c "echo '# e2e: an administrator was here ($$)' >> $CONF" || fail "cannot edit $CONF" || return
        before=$(ct md5sum $CONF) || fail "cannot read $CONF" || return
        out=$(T=180 ct apt-get install --reinstall -y -q /x.deb 2>&1) || fail "apt-get install --reinstall failed: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')" || return
        after=$(ct md5sum $CONF)
        [ "$before" = "$after" ] || fail "$CONF changed by the reinstall" || return
        ct grep -q "^# e2e: an administrator was here ($$)" $CONF || fail "the edit is gone from $CONF" || return
        ct grep -Fqx 'prefix = "[%i] ";' $CONF || fail "the prefix setting is gone from $CONF" || return
        left=$(ct sh -c "ls -d $CONF.dpkg-* $CONF.ucf-* 2>/dev/null")
        [ -z "$left" ] || fail "reinstall left $left" || return
        [ "$(ct dpkg-query -W -f '${db:Status-Status}' epoll-broadcaster)" = installed ] || fail "package not installed after the reinstall" || return
        wait_for 5 is_active $SOCK active || fail "$SOCK is $(ct systemctl is-active $SOCK) after the reinstall" || return
        what="conffile edits (prefix, limits, a comment) kept byte for byte by apt-get install --reinstall; no .dpkg-* files; socket listening again"
}

# ---------------------------------------------------------------- step 8 --
step8() {
        local pid out bad rc
        is_active $SOCK active || ct systemctl start $SOCK || fail "cannot start $SOCK" || return
        # A known running setting (not relying on step 7's conffile) that
        # must survive the failed reload.
        set_conf prefix '"[%i] "' || return
        if is_active $UNIT active; then reload_ok || return; fi
        open_pair || return
        pid=$(prop $UNIT MainPID)
        ct cp $CONF /root/good.conf || fail "cannot save $CONF" || return
        ct sh -c "echo 'no_such_setting = 1;' >> $CONF" || fail "cannot break $CONF" || return
        bad=$(ct systemctl reload $UNIT 2>&1)
        rc=$?
        [ $rc -ne 0 ] || fail "systemctl reload of a broken config exited 0" || return
        wait_for 5 journal_has "^$CONF:[0-9][0-9]*:.*no_such_setting" -p err ||
                fail "journalctl -p err shows no error naming $CONF, the line and the setting" || return
        is_active $UNIT active || fail "service is $(ct systemctl is-active $UNIT) after the failed reload" || return
        [ "$(prop $UNIT MainPID)" = "$pid" ] || fail "MainPID changed from $pid to $(prop $UNIT MainPID)" || return
        relay 3 4 "still here $$" "^\[[0-9]+\] still here $$\$" || { why="after the failed reload: $why"; return 1; }
        ct cp /root/good.conf $CONF || fail "cannot restore $CONF" || return
        out=$(ct systemctl reload $UNIT 2>&1) || fail "reload of the restored config failed: $out" || return
        relay 4 3 "restored $$" "^\[[0-9]+\] restored $$\$" || { why="after restoring: $why"; return 1; }
        [ "$(prop $UNIT MainPID)" = "$pid" ] || fail "MainPID changed after restoring" || return
        what="reload of a broken config exited $rc (systemctl: $(printf '%s' "$bad" | head -n 1)), the journal names file, line and setting at priority err, PID $pid kept serving; restored config reloads fine"
}

# ---------------------------------------------------------------- step 9 --
# TLS through a socket-activated TLS listener, set up the way the man page
# says: the shipped example socket unit and drop-in, the key readable by
# the ssl-cert group, DynamicUser kept; the exposure stays at most 1.0.
readonly TLS_PORT=7879
# Back to the packaged set-up: without the drop-in the key is not readable,
# so the TLS settings go too.
tls_teardown() {
        ct systemctl stop $UNIT >/dev/null 2>&1
        ct systemctl disable --now epoll-broadcaster-tls.socket >/dev/null 2>&1
        ct rm -rf /etc/systemd/system/epoll-broadcaster-tls.socket /etc/systemd/system/$UNIT.d &&
                ct sed -i -e '/^listen = (/d' -e '/^tls = {/d' $CONF &&
                ct systemctl daemon-reload &&
                ct systemctl reset-failed $UNIT $SOCK >/dev/null 2>&1
        ct systemctl start $SOCK
}
step9() {
        local out certs ex=/usr/share/doc/epoll-broadcaster/examples exposure peer
        certs=$run/certs
        sh "$(dirname "$0")/make-certs.sh" "$certs" || fail "cannot make test certificates" || return
        mkdir -p "$root/etc/ssl/certs" "$root/etc/ssl/private" &&
                cp "$certs/server.pem" "$root/etc/ssl/certs/epoll-broadcaster.pem" &&
                cp "$certs/server.key" "$root/etc/ssl/private/epoll-broadcaster.key" ||
                fail "cannot copy the certificate into the container" || return
        ct sh -c 'getent group ssl-cert >/dev/null || groupadd -r ssl-cert' || fail "no ssl-cert group" || return
        ct sh -c 'chown root:ssl-cert /etc/ssl/private /etc/ssl/private/epoll-broadcaster.key &&
                chmod 0710 /etc/ssl/private && chmod 0640 /etc/ssl/private/epoll-broadcaster.key' ||
                fail "cannot set the key's owner and mode" || return
        ct sh -c "cp $ex/epoll-broadcaster-tls.socket /etc/systemd/system/ &&
                mkdir -p /etc/systemd/system/$UNIT.d && cp $ex/tls.conf /etc/systemd/system/$UNIT.d/" ||
                fail "the shipped examples are not in $ex" || return
        ct sh -c "cat >> $CONF" <<'CONF' || fail "cannot add the TLS settings to $CONF" || return
listen = ( "127.0.0.1:7878", { name = "tls"; tls = true; } );
tls = { cert_file = "/etc/ssl/certs/epoll-broadcaster.pem"; key_file = "/etc/ssl/private/epoll-broadcaster.key"; };
CONF
        ct systemctl daemon-reload || fail "daemon-reload failed" || return
        # A socket unit cannot start for a service that runs: stop it, and
        # the next connection starts it with both sockets.
        ct systemctl stop $UNIT || fail "cannot stop $UNIT" || return
        out=$(ct systemctl enable --now epoll-broadcaster-tls.socket 2>&1) ||
                fail "cannot start the TLS socket: $(printf '%s' "$out" | tail -n 1); $(ct systemctl status --no-pager -n 5 epoll-broadcaster-tls.socket 2>&1 | tail -n 6 | tr '\n' '|')" || return
        out=$(ct systemctl start $UNIT 2>&1) || fail "start with the TLS socket failed: $out" || return
        wait_for 5 journal_has "serving .*:$TLS_PORT (passed by systemd, TLS)" -p notice ||
                fail "no 'serving ... (passed by systemd, TLS)' line for port $TLS_PORT" || return
        exposure=$(ct systemd-analyze security $UNIT 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        awk -v e="${exposure:-99}" 'BEGIN { exit !(e <= 1.0) }' || fail "exposure with the TLS drop-in is ${exposure:-unknown}, over 1.0" || return
        close_clients
        connect 3 || return
        coproc TLSPEER { exec openssl s_client -quiet -verify_return_error -CAfile "$certs/ca.pem" \
                -verify_ip 127.0.0.1 -connect 127.0.0.1:$TLS_PORT 2>"$run/s_client.log"; }
        peer=$TLSPEER_PID
        exec 5<&"${TLSPEER[0]}" 6>&"${TLSPEER[1]}"
        wait_for 10 status_has '^Relaying: 2 clients' || fail "the TLS client was not counted: '$(prop $UNIT StatusText)' ($(tail -n 2 "$run/s_client.log" | tr '\n' ' '))" || return
        relay 3 5 "plain to tls $$" "^(\[[0-9]+\] )?plain to tls $$\$" || { why="plain to TLS: $why"; return 1; }
        relay 6 3 "tls to plain $$" "^(\[[0-9]+\] )?tls to plain $$\$" || { why="TLS to plain: $why"; return 1; }
        exec 5<&- 6>&-
        kill "$peer" 2>/dev/null
        wait "$peer" 2>/dev/null
        close_clients
        tls_teardown || fail "cannot remove the TLS set-up" || return
        what="s_client verified the daemon through a socket-activated TLS listener (FileDescriptorName=tls, shipped example unit and drop-in, key root:ssl-cert 0640 read by the dynamic user) and relayed both ways with a plain client; exposure with the drop-in $exposure"
}

# --------------------------------------------------------------- step 10 --
step10() {
        local out f left
        tls_teardown # whatever step 9 left of its TLS set-up
        is_active $UNIT active || open_pair || return
        out=$(T=180 ct apt-get purge -y -q epoll-broadcaster 2>&1) || fail "apt-get purge failed: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')" || return
        expect_eof 3 || { why="after purge: $why"; return 1; }
        close_clients
        left=""
        for f in /lib/systemd/system/$UNIT /lib/systemd/system/$SOCK /usr/lib/systemd/system/$UNIT \
                /usr/lib/systemd/system/$SOCK /etc/systemd/system/sockets.target.wants/$SOCK $CONF \
                /usr/sbin/epoll-broadcaster /usr/bin/ebcat; do
                ct test -e "$f" && left="$left $f"
        done
        [ -z "$left" ] || fail "purge left:$left" || return
        [ -z "$(ct systemctl list-unit-files --no-legend 'epoll-broadcaster*')" ] || fail "unit files still listed: $(ct systemctl list-unit-files --no-legend 'epoll-broadcaster*' | tr '\n' ' ')" || return
        for u in $UNIT $SOCK; do
                [ "$(prop $u LoadState)" = not-found ] || fail "$u is still loaded ($(prop $u LoadState), $(ct systemctl is-active $u))" || return
        done
        ct dpkg-query -W -f '${db:Status-Status}' epoll-broadcaster 2>/dev/null | grep -q installed &&
                { fail "package still known to dpkg as $(ct dpkg-query -W -f '${db:Status-Status}' epoll-broadcaster)"; return; }
        wait_for 5 port_free || fail "port $PORT still in use after purge: $(listeners | tr '\n' ' ')" || return
        # Power off from inside; a clean shutdown makes systemd-nspawn exit 0.
        ct systemctl --no-block poweroff || fail "systemctl poweroff failed" || return
        reap "$nspawn_pid" 300 || fail "container still running 30 s after poweroff" || return
        [ "$nspawn_rc" = 0 ] || fail "systemd-nspawn exited $nspawn_rc after poweroff" || return
        grep -q 'has been shut down' "$run/boot.log" || fail "no clean shutdown in the console log" || return
        booted=false
        what="purge removed units, conffile and binaries and freed port $PORT; container powered off cleanly (nspawn exit 0)"
}

# ------------------------------------------------------------------ setup --

# The first Debian archive (suite $SUITE) in the host's apt sources.
host_mirror() {
        local f uri
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
                [ -r "$f" ] || continue
                uri=$(awk -v suite=$SUITE '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                        if ($(i + 1) == suite) { print $i; exit } }' "$f")
                [ -n "$uri" ] && { echo "$uri"; return; }
        done
        for f in /etc/apt/sources.list.d/*.sources; do
                [ -r "$f" ] || continue
                uri=$(awk -v suite=$SUITE 'BEGIN { RS = ""; FS = "\n" }
                        { t = u = s = ""; on = 1
                          for (j = 1; j <= NF; j++) {
                                if ($j ~ /^Types:/) t = $j; else if ($j ~ /^URIs:/) u = $j
                                else if ($j ~ /^Suites:/) s = $j; else if ($j ~ /^Enabled:[ \t]*no/) on = 0 }
                          if (on && (t " ") ~ /[ \t]deb[ \t]/ && (s " ") ~ ("[ \t]" suite "[ \t]")) {
                                sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); print a[1]; exit } }' "$f")
                [ -n "$uri" ] && { echo "$uri"; return; }
        done
        echo http://deb.debian.org/debian
}

need_tools() {
        local pkgs="" out
        command -v debootstrap > /dev/null || pkgs="$pkgs debootstrap"
        command -v systemd-nspawn > /dev/null || pkgs="$pkgs systemd-container"
        command -v nsenter > /dev/null || pkgs="$pkgs util-linux"
        [ -z "$pkgs" ] && return 0
        note "installing$pkgs"
        export DEBIAN_FRONTEND=noninteractive
        out=$(timeout 240 apt-get install -y -q --no-install-recommends $pkgs 2>&1) ||
                out=$(timeout 120 apt-get update -q 2>&1 && timeout 240 apt-get install -y -q --no-install-recommends $pkgs 2>&1) ||
                { printf '%s\n' "$out" | tail -n 5 >&2; return 1; }
}

# A pristine root in $CACHE/$SUITE-minbase, made once (under a lock, renamed
# into place only when complete, so an interrupted run leaves no half root).
ensure_cache() {
        local dir=$CACHE/$SUITE-minbase mirror=$1 tmp t0
        mkdir -p "$CACHE" || return 1
        exec 9> "$CACHE/.lock"
        timeout 300 flock 9 || { echo "e2e: cannot lock $CACHE/.lock" >&2; return 1; }
        if [ ! -f "$dir/.complete" ]; then
                t0=${EPOCHREALTIME/./}
                note "no cached root in $dir: debootstrap from $mirror"
                rm -rf --one-file-system "$dir" "$CACHE/tmp.$SUITE".*
                tmp=$(mktemp -d "$CACHE/tmp.$SUITE.XXXXXX") || return 1
                local inc=systemd,systemd-sysv,dbus
                case $mirror in https:*) inc=$inc,ca-certificates ;; esac
                if ! long timeout 240 debootstrap --variant=minbase --include=$inc $SUITE "$tmp/root" "$mirror" > "$tmp/debootstrap.log" 2>&1; then
                        tail -n 10 "$tmp/debootstrap.log" >&2
                        rm -rf --one-file-system "$tmp"
                        echo "e2e: debootstrap failed" >&2
                        return 1
                fi
                touch "$tmp/root/.complete" && mv "$tmp/root" "$dir" && rm -rf "$tmp" || return 1
                note "cached a fresh $SUITE root in $dir ($(since "$t0") s)"
        fi
        exec 9>&-
}

setup() {
        local mirror t0 out i
        [ "$(id -u)" = 0 ] || { boot_error="needs root"; return 1; }
        need_tools || { boot_error="could not install debootstrap/systemd-container"; return 1; }
        if ! port_free; then
                boot_error="port $PORT already has a listener on this host (ss -ltnp 'sport = :$PORT' tells which)"
                return 1
        fi
        mirror=$(host_mirror)
        ensure_cache "$mirror" || { boot_error="no $SUITE root (debootstrap failed)"; return 1; }

        t0=${EPOCHREALTIME/./}
        run=$(mktemp -d /var/tmp/epoll-broadcaster-e2e.XXXXXX) || { boot_error="mktemp failed"; return 1; }
        root=$run/root
        cp -a "$CACHE/$SUITE-minbase" "$root" || { boot_error="cannot copy the cached root"; return 1; }
        rm -f "$root/.complete"
        # The host's mirror, and the host's apt settings that make it usable
        # (a proxy; a snapshot mirror whose Release files have expired).
        echo "deb $mirror $SUITE main" > "$root/etc/apt/sources.list"
        apt-config dump 2>/dev/null | grep -E '^Acquire::(https?::Proxy|Check-Valid-Until|Check-Date) ' \
                > "$root/etc/apt/apt.conf.d/99e2e-host"
        cp "$deb" "$root/x.deb" || { boot_error="cannot copy $deb into the root"; return 1; }
        note "root copied from cache in $(since "$t0") s"

        t0=${EPOCHREALTIME/./}
        if ! long timeout 240 systemd-nspawn -q -D "$root" --register=no --keep-unit --machine="$machine" \
                sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q /x.deb' \
                < /dev/null > "$run/install.log" 2>&1; then
                tail -n 15 "$run/install.log" | sed 's/^/    /' >&2
                boot_error="apt-get install -y /x.deb in the container failed"
                return 1
        fi
        note "installed $(basename "$deb") with apt-get in $(since "$t0") s"

        t0=${EPOCHREALTIME/./}
        systemd-nspawn -D "$root" --register=no --keep-unit --machine="$machine" --boot < /dev/null > "$run/boot.log" 2>&1 &
        nspawn_pid=$!
        for ((i = 0; i < 100; i++)); do
                alive "$nspawn_pid" || break
                ct_pid=$(children_of "$nspawn_pid" | awk '{ print $1 }')
                [ -n "$ct_pid" ] && [ "$(cat "/proc/$ct_pid/comm" 2>/dev/null)" = systemd ] && break
                ct_pid=""
                sleep 0.1
        done
        if [ -z "$ct_pid" ]; then
                tail -n 15 "$run/boot.log" | sed 's/^/    /' >&2
                boot_error="systemd-nspawn --boot did not start systemd"
                return 1
        fi
        local state=""
        for ((i = 0; i < 300; i++)); do
                state=$(T=5 ct systemctl is-system-running 2>/dev/null)
                case $state in running | degraded) break ;; esac
                alive "$nspawn_pid" || break
                sleep 0.1
        done
        case $state in
        running) ;;
        degraded) note "container is degraded: $(ct systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')" ;;
        *)
                tail -n 15 "$run/boot.log" | sed 's/^/    /' >&2
                boot_error="container's systemd did not reach running in 30 s (state '$state')"
                return 1
                ;;
        esac
        booted=true
        note "booted (systemd PID $ct_pid) and $state in $(since "$t0") s"
}

boot_error=""
setup || note "setup failed: $boot_error"
for n in $(seq 1 $NSTEPS); do
        step "$n" "step$n" || {
                # Keep a little evidence of what went wrong.
                if $booted && [ -z "${dumped:-}" ]; then
                        dumped=1
                        ct journalctl -u $UNIT -u $SOCK -n 25 --no-pager -o short-monotonic 2>/dev/null | sed 's/^/    /' >&2
                fi
        }
done
note "took $(since "$start_us") s"
finished=true
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
