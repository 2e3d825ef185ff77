#!/bin/sh
# Checks the man pages as CI must:
#  (a) groff formats each page without a single warning (-ww: all of them);
#  (b) epoll-broadcaster.conf(5) documents exactly the settings the daemon
#      accepts, each with the default the daemon really uses: the settings
#      (section SETTINGS), the keys of the group 'tls' (section TLS) and
#      those of a group in 'listen' (section LISTENERS).
# The settings are not listed here: they are taken from the daemon itself,
# which prints every effective setting, in libconfig syntax, with
# --check-config: for an empty configuration file, for one with a 'tls'
# group of only a certificate and its key (made here with openssl: the
# daemon loads them), and for one with a listener group of only a name and
# an address.
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

# The documented settings of section $1: each is the tag of a .TP paragraph
# written ".B name"; its default is the line after the nested ".TP" tag
# "Default". Printed as "$2name<TAB>default", with the roff escapes that may
# appear in a default turned back into plain text.
documented() {
        awk -v section=".SH $1" -v prefix="$2" '
                /^\.SH / { in_section = ($0 == section); next }
                !in_section { next }
                prev ~ /^\.TP( |$)/ && /^\.B [a-z_][a-z0-9_]*$/ {
                        if (name != "") print prefix name "\t" dflt
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
                END { if (name != "") print prefix name "\t" dflt }
        ' "$conf5"
}

# compare ACCEPTED DOCUMENTED [UNPRINTED...]: every "name<TAB>value" the
# daemon printed is documented with that default, and every documented
# name was printed, but for the UNPRINTED ones (those the test file gives,
# and those the daemon prints only where they apply); these must be
# documented all the same.
compare() {
        accepted=$1
        docs=$2
        shift 2
        while IFS='	' read -r name value; do
                doc=$(awk -F '	' -v n="$name" '$1 == n { print $2; found = 1; exit }
                                                   END { if (!found) exit 1 }' "$docs") || {
                        fail "setting '$name' is accepted by the daemon but not documented in $conf5"
                        continue
                }
                # The page may say more after the value, e.g. "1048576 (1 MiB)".
                case $doc in
                "$value" | "$value "*) echo "ok: $name (default $value) is documented" ;;
                *) fail "setting '$name': the daemon's default is $value, $conf5 says '$doc'" ;;
                esac
        done < "$accepted"

        while IFS='	' read -r name value; do
                for unprinted in "$@"; do
                        if [ "$name" = "$unprinted" ]; then
                                continue 2
                        fi
                done
                if ! cut -f 1 "$accepted" | grep -qx "$name"; then
                        fail "setting '$name' is documented in $conf5 but the daemon does not accept it"
                fi
        done < "$docs"

        for unprinted in "$@"; do
                if ! cut -f 1 "$docs" | grep -qx "$unprinted"; then
                        fail "setting '$unprinted' is accepted by the daemon but not documented in $conf5"
                fi
        done
}

documented SETTINGS "" > "$tmp/documented"
compare "$tmp/accepted" "$tmp/documented"

# The group 'tls': printed, every default filled in, once the file has
# one. The daemon reads the certificate and key at --check-config.
if ! command -v openssl > /dev/null 2>&1; then
        echo "openssl not found: the keys of the tls group not checked"
elif ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=check \
        -keyout "$tmp/key.pem" -out "$tmp/cert.pem" > "$tmp/openssl.out" 2>&1; then
        fail "openssl cannot make a certificate:"
        sed 's/^/    /' "$tmp/openssl.out"
else
        printf 'tls = { cert_file = "cert.pem"; key_file = "key.pem"; };\n' > "$tmp/tls.conf"
        if ! "$daemon" --check-config -c "$tmp/tls.conf" > "$tmp/tls-effective.conf" 2> "$tmp/daemon.err"; then
                fail "$daemon --check-config -c FILE-WITH-A-tls-GROUP failed:"
                sed 's/^/    /' "$tmp/daemon.err"
        else
                sed -n '/^tls = {$/,/^};$/s/^[[:space:]]\{1,\}\([a-z_][a-z0-9_]*\)[[:space:]]*=[[:space:]]*\(.*\);$/tls.\1	\2/p' \
                        "$tmp/tls-effective.conf" | grep -v '^tls\.\(cert_file\|key_file\)	' > "$tmp/tls-accepted" || :
                if [ ! -s "$tmp/tls-accepted" ]; then
                        fail "no tls group in the output of $daemon --check-config:"
                        sed 's/^/    /' "$tmp/tls-effective.conf"
                fi
                documented TLS tls. > "$tmp/tls-documented"
                compare "$tmp/tls-accepted" "$tmp/tls-documented" tls.cert_file tls.key_file
                n_settings=$((n_settings + $(wc -l < "$tmp/tls-accepted") + 2))
        fi
fi

# A group in 'listen': printed with every key that applies to it, the
# defaults among them; its address and name are this file's, and
# 'origins' is printed for websocket listeners only.
printf 'listen = ( { address = "127.0.0.1:7878"; name = "x"; } );\n' > "$tmp/group.conf"
if ! "$daemon" --check-config -c "$tmp/group.conf" > "$tmp/group-effective.conf" 2> "$tmp/daemon.err"; then
        fail "$daemon --check-config -c FILE-WITH-A-LISTENER-GROUP failed:"
        sed 's/^/    /' "$tmp/daemon.err"
else
        sed -n 's/^[[:space:]]*{ \(.*\) }$/\1/p' "$tmp/group-effective.conf" | tr ';' '\n' |
                sed -n 's/^[[:space:]]*\([a-z_][a-z0-9_]*\) = \(.*\)$/listen.\1	\2/p' |
                grep -v '^listen\.\(address\|name\)	' > "$tmp/group-accepted" || :
        if [ ! -s "$tmp/group-accepted" ]; then
                fail "no listener group in the output of $daemon --check-config:"
                sed 's/^/    /' "$tmp/group-effective.conf"
        fi
        documented LISTENERS listen. > "$tmp/group-documented"
        compare "$tmp/group-accepted" "$tmp/group-documented" listen.address listen.name listen.origins
        n_settings=$((n_settings + $(wc -l < "$tmp/group-accepted") + 3))
fi

if [ $failed -ne 0 ]; then
        exit 1
fi
echo "ok: all $n_settings settings documented"
