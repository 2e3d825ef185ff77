#!/bin/sh
# Test certificates, made fresh for each run: make-certs.sh DIR writes
#   ca.pem ca.key            a test CA
#   server.pem server.key    signed by it: CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   rotated.pem rotated.key  the same names, CN=rotated (a renewed certificate)
#   client.pem client.key    signed by it: CN=alice (a client certificate)
#   nocn.pem nocn.key        signed by it: no CN, SAN DNS:bob.example (a client certificate)
#   other-ca.pem other.pem other.key   another CA and a client certificate it signed
# EC P-256 keys, valid for one day. Needs the openssl command.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
q() { "$@" >/dev/null 2>&1 || { echo "make-certs: $* failed" >&2; exit 1; }; }
key() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ca() { # NAME SUBJECT
        key "$1.key"
        q openssl req -x509 -new -key "$1.key" -days 1 -subj "$2" -out "$1.pem" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # NAME CA SUBJECT EXTFILE-LINES
        key "$1.key"
        q openssl req -new -key "$1.key" -subj "$3" -out "$1.csr"
        printf '%s\n' "$4" > "$1.ext"
        q openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 1 \
                -extfile "$1.ext" -out "$1.pem"
        rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=epoll-broadcaster test CA"
ca other-ca "/CN=another CA"
leaf server ca "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
leaf rotated ca "/CN=rotated" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
leaf client ca "/CN=alice" "extendedKeyUsage=clientAuth"
leaf nocn ca "/O=no common name" "subjectAltName=DNS:bob.example
extendedKeyUsage=clientAuth"
leaf other other-ca "/CN=mallory" "extendedKeyUsage=clientAuth"
rm -f ./*.srl
