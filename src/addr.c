/* Socket addresses as text: parsing the spellings the configuration and ebcat
 * accept ("a.b.c.d:port", "[v6]:port", "*:port", "/abs/path") and formatting
 * peers and listeners for %a and log lines.
 *
 * Pure: no I/O, no logging, no allocation. Only numeric hosts are accepted,
 * so parsing never blocks on DNS. Formatting never reads past 'len' and
 * always NUL-terminates a non-empty buffer. */

#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* Decimal 1..65535: digits only, no sign, no spaces, nothing after. */
static int parse_port(const char *s, uint16_t *ret) {
        unsigned v = 0;

        if (*s == '\0')
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned)(*s - '0');
                if (v > 65535)
                        return -EINVAL;
        }
        if (v == 0)
                return -EINVAL;

        *ret = (uint16_t)v;
        return 0;
}

static int parse_unix(const char *s, SockAddr *ret) {
        SockAddr a = {};
        size_t n = strlen(s);

        /* The path and its NUL must fit: Linux accepts a path that fills
         * sun_path without a NUL, but nothing else (ebcat, ss, the man page)
         * would then agree on what it is. */
        if (n + 1 > sizeof(a.un.sun_path))
                return -EINVAL;

        a.un.sun_family = AF_UNIX;
        memcpy(a.un.sun_path, s, n + 1);
        a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        *ret = a;
        return 0;
}

int addr_parse(const char *s, SockAddr *ret) {
        char host[INET6_ADDRSTRLEN];
        const char *colon;
        uint16_t port;
        SockAddr a = {};
        size_t n;

        if (!s || !ret)
                return -EINVAL;

        if (s[0] == '/')
                return parse_unix(s, ret);

        if (s[0] == '[') {
                const char *close = strchr(s, ']');

                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t)(close - (s + 1));
                if (n == 0 || n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, n);
                host[n] = '\0';
                if (parse_port(close + 2, &port) < 0)
                        return -EINVAL;
                if (inet_pton(AF_INET6, host, &a.in6.sin6_addr) != 1)
                        return -EINVAL;
                a.in6.sin6_family = AF_INET6;
                a.in6.sin6_port = htons(port);
                a.len = sizeof(a.in6);
                *ret = a;
                return 0;
        }

        colon = strrchr(s, ':');
        if (!colon)
                return -EINVAL;
        if (parse_port(colon + 1, &port) < 0)
                return -EINVAL;

        n = (size_t)(colon - s);
        if (n == 1 && s[0] == '*') {
                a.in6.sin6_family = AF_INET6;
                a.in6.sin6_addr = in6addr_any;
                a.in6.sin6_port = htons(port);
                a.len = sizeof(a.in6);
                a.any = true;
                *ret = a;
                return 0;
        }

        if (n == 0 || n >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, &a.in.sin_addr) != 1)
                return -EINVAL;
        a.in.sin_family = AF_INET;
        a.in.sin_port = htons(port);
        a.len = sizeof(a.in);
        *ret = a;
        return 0;
}

/* snprintf() that reports what it wrote rather than what it wanted to. */
_printf_(3, 4) static size_t format_into(char *buf, size_t size, const char *fmt, ...) {
        va_list ap;
        int n;

        if (size == 0)
                return 0;
        va_start(ap, fmt);
        n = vsnprintf(buf, size, fmt, ap);
        va_end(ap);
        if (n < 0) {
                buf[0] = '\0';
                return 0;
        }
        return MIN((size_t)n, size - 1);
}

static size_t format_in4(const struct in_addr *ia, uint16_t port_be, char *buf, size_t size) {
        char host[INET_ADDRSTRLEN];

        if (!inet_ntop(AF_INET, ia, host, sizeof(host)))
                return format_into(buf, size, "unknown");
        return format_into(buf, size, "%s:%u", host, (unsigned)ntohs(port_be));
}

size_t addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size) {
        sa_family_t family;

        if (!buf || size == 0)
                return 0;
        if (!sa || len < (socklen_t)sizeof(sa_family_t))
                return format_into(buf, size, "unknown");

        /* Copy rather than cast: the caller's buffer need not be aligned for
         * the family's struct, and is only 'len' bytes long. */
        memcpy(&family, &sa->sa_family, sizeof(family));

        switch (family) {
        case AF_INET: {
                struct sockaddr_in in;

                if (len < (socklen_t)sizeof(in))
                        break;
                memcpy(&in, sa, sizeof(in));
                return format_in4(&in.sin_addr, in.sin_port, buf, size);
        }
        case AF_INET6: {
                struct sockaddr_in6 in6;
                char host[INET6_ADDRSTRLEN];

                if (len < (socklen_t)sizeof(in6))
                        break;
                memcpy(&in6, sa, sizeof(in6));
                if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
                        struct in_addr ia;

                        memcpy(&ia, &in6.sin6_addr.s6_addr[12], sizeof(ia));
                        return format_in4(&ia, in6.sin6_port, buf, size);
                }
                if (!inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof(host)))
                        break;
                return format_into(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6.sin6_port));
        }
        case AF_UNIX:
                return format_into(buf, size, "unix");
        default:
                break;
        }

        return format_into(buf, size, "unknown");
}

size_t addr_format_listen(const SockAddr *a, char *buf, size_t size) {
        if (!buf || size == 0)
                return 0;
        if (!a)
                return format_into(buf, size, "unknown");

        if (a->any && a->sa.sa_family == AF_INET6)
                return format_into(buf, size, "*:%u", (unsigned)ntohs(a->in6.sin6_port));

        if (a->sa.sa_family == AF_UNIX) {
                size_t off = offsetof(struct sockaddr_un, sun_path), n;

                if (a->len <= off || a->len > sizeof(a->un))
                        return format_into(buf, size, "unix"); /* unnamed */
                n = a->len - off;
                if (a->un.sun_path[0] == '\0')
                        /* Abstract (e.g. passed in by systemd): "@name". */
                        return format_into(buf, size, "@%.*s", (int)(n - 1), a->un.sun_path + 1);
                return format_into(buf, size, "%.*s", (int)strnlen(a->un.sun_path, n), a->un.sun_path);
        }

        return addr_format(&a->sa, a->len, buf, size);
}
