#!/bin/sh
# Checks the man pages as CI must:
#  (a) groff formats each page without a single warning (-ww: all of them);
#  (b) epoll-broadcaster.conf(5) documents exactly the settings the daemon
#      accepts, each with the default the daemon really uses.
# The settings are not listed here: they are taken from the daemon itself,
# which prints every effective setting, in libconfig syntax, for an empty
# configuration file with --check-config.
#
# Usage: check-manpages.sh SOURCE_DIR DAEMON_PATH
# Exit status: 0 all good, 1 a check failed, 77 (skipped) without groff.
set -eu

if [ $# -ne 2 ]; then
        echo "usage: $0 SOURCE_DIR DAEMON_PATH" >&2
        exit 2
fi
src=$1
daemon=$2
man=$src/man
conf5=$man/epoll-broadcaster.conf.5
pages="$man/epoll-broadcaster.8 $conf5 $man/ebcat.1"

if ! command -v groff > /dev/null 2>&1; then
        echo "groff not found: skipped"
        exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

fail() {
        echo "FAIL: $*"
        failed=1
}

# --- (a) every page formats without a warning -----------------------------

for page in $pages; do
        if [ ! -f "$page" ]; then
                fail "$page is missing"
                continue
        fi
        clean=1
        # The default device, and the terminal one that man(1) uses.
        for dev in ps utf8; do
                # -z: format only; any output at all is a warning or an error.
                if ! groff -man -ww -z -T$dev "$page" > "$tmp/groff.out" 2>&1; then
                        fail "groff -T$dev failed on $page"
                        clean=0
                fi
                if [ -s "$tmp/groff.out" ]; then
                        fail "groff -man -ww -T$dev warns about $page:"
                        sed 's/^/    /' "$tmp/groff.out"
                        clean=0
                fi
        done
        if [ $clean -eq 1 ]; then
                echo "ok: $page formats without warnings"
        fi
done

# --- (b) the settings the daemon accepts are the ones documented -----------

: > "$tmp/empty.conf"
if ! "$daemon" --check-config -c "$tmp/empty.conf" > "$tmp/effective.conf" 2> "$tmp/daemon.err"; then
        fail "$daemon --check-config -c EMPTY failed:"
        sed 's/^/    /' "$tmp/daemon.err"
        exit 1
fi

# "name = value;  # comment" -> "name<TAB>value"
sed -n 's/^\([a-z_][a-z0-9_]*\)[[:space:]]*=[[:space:]]*\(.*\);[[:space:]]*\(#.*\)\{0,1\}$/\1	\2/p' \
        "$tmp/effective.conf" > "$tmp/accepted"
if [ ! -s "$tmp/accepted" ]; then
        fail "no setting found in the output of $daemon --check-config:"
        sed 's/^/    /' "$tmp/effective.conf"
        exit 1
fi
n_settings=$(wc -l < "$tmp/accepted")
n_lines=$(grep -c '^[a-z]' "$tmp/effective.conf" || :)
if [ "$n_settings" -ne "$n_lines" ]; then
        fail "could not read every line of $daemon --check-config:"
        sed 's/^/    /' "$tmp/effective.conf"
fi

# The documented settings: in the SETTINGS section of the page, each is the
# tag of a .TP paragraph written ".B name"; its default is the line after
# the nested ".TP" tag "Default". Printed as "name<TAB>default", with the
# roff escapes that may appear in a default turned back into plain text.
awk '
        /^\.SH / { in_settings = ($0 == ".SH SETTINGS"); next }
        !in_settings { next }
        prev ~ /^\.TP( |$)/ && /^\.B [a-z_][a-z0-9_]*$/ {
                if (name != "") print name "\t" dflt
                name = substr($0, 4); dflt = ""
        }
        prev == "Default" && name != "" && dflt == "" {
                line = $0
                sub(/^\.(B|BR|I|IR|RB) /, "", line)
                gsub(/\\\(dq/, "\"", line)
                gsub(/\\-/, "-", line)
                dflt = line
        }
        { prev = $0 }
        END { if (name != "") print name "\t" dflt }
' "$conf5" > "$tmp/documented"

while IFS='	' read -r name value; do
        doc=$(awk -F '	' -v n="$name" '$1 == n { print $2; found = 1; exit }
                                           END { if (!found) exit 1 }' "$tmp/documented") || {
                fail "setting '$name' is accepted by the daemon but not documented in $conf5"
                continue
        }
        # The page may say more after the value, e.g. "1048576 (1 MiB)".
        case $doc in
        "$value" | "$value "*) echo "ok: $name (default $value) is documented" ;;
        *) fail "setting '$name': the daemon's default is $value, $conf5 says '$doc'" ;;
        esac
done < "$tmp/accepted"

while IFS='	' read -r name value; do
        if ! cut -f 1 "$tmp/accepted" | grep -qx "$name"; then
                fail "setting '$name' is documented in $conf5 but the daemon does not accept it"
        fi
done < "$tmp/documented"

if [ $failed -ne 0 ]; then
        exit 1
fi
echo "ok: all $n_settings settings documented"
