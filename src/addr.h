/* Socket addresses as the configuration, ebcat and the %a prefix spell them.
 * Pure: no I/O, no logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

/* "[ffff:...:ffff]:65535" or a full Unix path, plus NUL. */
#define ADDR_STR_MAX 128

typedef struct SockAddr {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_un un;
        };
        socklen_t len;
        /* "*:port": bind the IPv6 wildcard with IPV6_V6ONLY off (dual stack);
         * sa is then AF_INET6 in6addr_any. */
        bool any;
} SockAddr;

/* Parses "a.b.c.d:port", "[v6]:port", "*:port" or an absolute Unix socket
 * path. Numeric hosts only (no names, no "%scope"), port 1..65535 in
 * decimal digits only (no sign, no spaces). A Unix path must fit sun_path
 * with its NUL (at most 107 bytes); len then covers the path and its NUL.
 * Returns 0, or -EINVAL with *ret untouched. */
int addr_parse(const char *s, SockAddr *ret);

/* Formats a peer (or listen) address the way %a shows it: "host:port",
 * "[v6]:port", an IPv4-mapped IPv6 peer as plain IPv4, "unix" for any
 * AF_UNIX peer, "unknown" for another family or a 'len' too short for its
 * family. Truncates to fit and always NUL-terminates (size 0: writes
 * nothing); returns the length written, NUL excluded. */
size_t addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* Like addr_format, but shows a Unix socket's path (for listener log lines;
 * "@name" for an abstract one, "unix" for an unnamed one) and "*:port" for
 * a dual-stack wildcard. */
size_t addr_format_listen(const SockAddr *a, char *buf, size_t size);
