/* Unit tests for src/addr.c: what addr_parse accepts and refuses, and how
 * addr_format / addr_format_listen spell peers and listeners. */

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "addr.h"

static const struct {
        const char *in;
        int family;
        uint16_t port;
        bool any;
        const char *listen; /* addr_format_listen() of the result */
} accept_table[] = {
        {"127.0.0.1:7878", AF_INET, 7878, false, "127.0.0.1:7878"},
        {"0.0.0.0:1", AF_INET, 1, false, "0.0.0.0:1"},
        {"255.255.255.255:65535", AF_INET, 65535, false, "255.255.255.255:65535"},
        {"10.0.0.1:080", AF_INET, 80, false, "10.0.0.1:80"},
        {"[::1]:7878", AF_INET6, 7878, false, "[::1]:7878"},
        {"[::]:80", AF_INET6, 80, false, "[::]:80"},
        {"[2001:db8::42]:443", AF_INET6, 443, false, "[2001:db8::42]:443"},
        {"[0:0::1]:9", AF_INET6, 9, false, "[::1]:9"},
        {"[::ffff:192.0.2.7]:25", AF_INET6, 25, false, "192.0.2.7:25"},
        {"*:7878", AF_INET6, 7878, true, "*:7878"},
        {"*:65535", AF_INET6, 65535, true, "*:65535"},
        {"/run/epoll-broadcaster.sock", AF_UNIX, 0, false, "/run/epoll-broadcaster.sock"},
        {"/", AF_UNIX, 0, false, "/"},
};

static const char *const reject_table[] = {
        "",
        "localhost:7878",
        "example.com:80",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999999999999999999",
        "127.0.0.1:+80",
        "127.0.0.1:-80",
        "127.0.0.1:0x50",
        "127.0.0.1:80 ",
        " 127.0.0.1:80",
        "127.0.0.1: 80",
        "127.0.0.1 :80",
        "127.0.0.1:80x",
        "127.0.0.1:80:80",
        "127.0.0.1",
        "1.2.3:80",
        "1.2.3.4.5:80",
        "256.1.1.1:80",
        "01.2.3.4:80",
        ":80",
        "::1:80",
        "[::1]",
        "[::1]:",
        "[::1]80",
        "[::1]x80",
        "[::1].8080",
        "[::1]:0",
        "[::1]:65536",
        "[::1:80",
        "::1]:80",
        "[]:80",
        "[1.2.3.4]:80",
        "[fe80::1%eth0]:80",
        "[::1]:80]",
        "*",
        "*:",
        "*:0",
        "**:80",
        "*:80:80",
        "[*]:80",
        "relative/path.sock",
        "./eb.sock",
        "eb.sock",
        "~/eb.sock",
};

Test(addr, parse_accepts) {
        for (size_t i = 0; i < sizeof(accept_table) / sizeof(accept_table[0]); i++) {
                const char *in = accept_table[i].in;
                char buf[ADDR_STR_MAX];
                SockAddr a;

                memset(&a, 0xaa, sizeof(a));
                cr_assert_eq(addr_parse(in, &a), 0, "addr_parse(\"%s\") failed", in);
                cr_expect_eq(a.sa.sa_family, accept_table[i].family, "family of \"%s\"", in);
                cr_expect_eq(a.any, accept_table[i].any, "any of \"%s\"", in);
                switch (a.sa.sa_family) {
                case AF_INET:
                        cr_expect_eq(a.len, sizeof(struct sockaddr_in), "len of \"%s\"", in);
                        cr_expect_eq(ntohs(a.in.sin_port), accept_table[i].port, "port of \"%s\"", in);
                        break;
                case AF_INET6:
                        cr_expect_eq(a.len, sizeof(struct sockaddr_in6), "len of \"%s\"", in);
                        cr_expect_eq(ntohs(a.in6.sin6_port), accept_table[i].port, "port of \"%s\"", in);
                        cr_expect_eq(a.in6.sin6_flowinfo, 0u, "flowinfo of \"%s\"", in);
                        cr_expect_eq(a.in6.sin6_scope_id, 0u, "scope of \"%s\"", in);
                        break;
                case AF_UNIX:
                        cr_expect_str_eq(a.un.sun_path, in);
                        cr_expect_eq(a.len, offsetof(struct sockaddr_un, sun_path) + strlen(in) + 1,
                                     "len of \"%s\"", in);
                        break;
                default:
                        cr_assert_fail("unexpected family %d for \"%s\"", a.sa.sa_family, in);
                }
                cr_expect_eq(addr_format_listen(&a, buf, sizeof(buf)), strlen(accept_table[i].listen),
                             "length of formatted \"%s\"", in);
                cr_expect_str_eq(buf, accept_table[i].listen, "formatting \"%s\"", in);
        }
}

Test(addr, parse_addresses_exactly) {
        SockAddr a;

        cr_assert_eq(addr_parse("192.0.2.7:8", &a), 0);
        cr_expect_eq(a.in.sin_addr.s_addr, htonl(0xc0000207));

        cr_assert_eq(addr_parse("[2001:db8::42]:8", &a), 0);
        struct in6_addr want;
        cr_assert_eq(inet_pton(AF_INET6, "2001:db8::42", &want), 1);
        cr_expect_eq(memcmp(&a.in6.sin6_addr, &want, sizeof(want)), 0);

        cr_assert_eq(addr_parse("*:8", &a), 0);
        cr_expect(IN6_IS_ADDR_UNSPECIFIED(&a.in6.sin6_addr));

        /* "[::]:8" is the same address, but not the dual-stack wildcard. */
        cr_assert_eq(addr_parse("[::]:8", &a), 0);
        cr_expect(IN6_IS_ADDR_UNSPECIFIED(&a.in6.sin6_addr));
        cr_expect_not(a.any);
}

Test(addr, parse_rejects_and_leaves_ret_untouched) {
        for (size_t i = 0; i < sizeof(reject_table) / sizeof(reject_table[0]); i++) {
                SockAddr a, before;

                memset(&a, 0x5a, sizeof(a));
                before = a;
                cr_expect_eq(addr_parse(reject_table[i], &a), -EINVAL, "addr_parse(\"%s\") accepted",
                             reject_table[i]);
                cr_expect_eq(memcmp(&a, &before, sizeof(a)), 0, "ret changed by \"%s\"", reject_table[i]);
        }
}

Test(addr, parse_null) {
        SockAddr a;

        cr_expect_eq(addr_parse(NULL, &a), -EINVAL);
        cr_expect_eq(addr_parse("127.0.0.1:1", NULL), -EINVAL);
}

Test(addr, unix_path_length_limit) {
        char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];
        size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1; /* NUL must fit */
        SockAddr a;

        memset(path, 'p', sizeof(path));
        path[0] = '/';

        path[max] = '\0';
        cr_assert_eq(addr_parse(path, &a), 0, "a %zu-byte path must fit", max);
        cr_expect_eq(a.len, sizeof(struct sockaddr_un));
        cr_expect_eq(a.un.sun_path[max], '\0');

        path[max] = 'p';
        path[max + 1] = '\0';
        cr_expect_eq(addr_parse(path, &a), -EINVAL, "a %zu-byte path leaves no room for NUL", max + 1);
}

static size_t format_in4(const char *ip, uint16_t port, char *buf, size_t size) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};

        cr_assert_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
        return addr_format((struct sockaddr *)&in, sizeof(in), buf, size);
}

static size_t format_in6(const char *ip, uint16_t port, char *buf, size_t size) {
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};

        cr_assert_eq(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
        return addr_format((struct sockaddr *)&in6, sizeof(in6), buf, size);
}

Test(addr, format_inet) {
        char buf[ADDR_STR_MAX];

        cr_expect_eq(format_in4("1.2.3.4", 5, buf, sizeof(buf)), 9);
        cr_expect_str_eq(buf, "1.2.3.4:5");
        format_in4("255.255.255.255", 65535, buf, sizeof(buf));
        cr_expect_str_eq(buf, "255.255.255.255:65535");
}

Test(addr, format_inet6) {
        char buf[ADDR_STR_MAX];

        cr_expect_eq(format_in6("::1", 5, buf, sizeof(buf)), 7);
        cr_expect_str_eq(buf, "[::1]:5");
        format_in6("2001:db8::1", 7878, buf, sizeof(buf));
        cr_expect_str_eq(buf, "[2001:db8::1]:7878");
        format_in6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, buf, sizeof(buf));
        cr_expect_str_eq(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
}

Test(addr, format_v4_mapped_as_plain_ipv4) {
        char buf[ADDR_STR_MAX];

        cr_expect_eq(format_in6("::ffff:127.0.0.1", 40000, buf, sizeof(buf)), strlen("127.0.0.1:40000"));
        cr_expect_str_eq(buf, "127.0.0.1:40000");
        /* IPv4-compatible (deprecated, not mapped) stays IPv6. */
        format_in6("::1.2.3.4", 1, buf, sizeof(buf));
        cr_expect_str_eq(buf, "[::1.2.3.4]:1");
}

Test(addr, format_unix) {
        struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/run/x.sock"};
        char buf[ADDR_STR_MAX];

        cr_expect_eq(addr_format((struct sockaddr *)&un, sizeof(un), buf, sizeof(buf)), 4);
        cr_expect_str_eq(buf, "unix");
        /* An unnamed peer (socketpair, unbound client): only the family. */
        cr_expect_eq(addr_format((struct sockaddr *)&un, sizeof(sa_family_t), buf, sizeof(buf)), 4);
        cr_expect_str_eq(buf, "unix");
}

Test(addr, format_unknown) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(1)};
        struct sockaddr sa = {.sa_family = AF_APPLETALK};
        char buf[ADDR_STR_MAX];

        cr_expect_eq(addr_format(&sa, sizeof(sa), buf, sizeof(buf)), 7);
        cr_expect_str_eq(buf, "unknown");
        cr_expect_eq(addr_format(NULL, 0, buf, sizeof(buf)), 7);
        cr_expect_str_eq(buf, "unknown");
        /* A length too short for the family is not read past. */
        addr_format((struct sockaddr *)&in, sizeof(in) - 1, buf, sizeof(buf));
        cr_expect_str_eq(buf, "unknown");
        addr_format((struct sockaddr *)&in, 1, buf, sizeof(buf));
        cr_expect_str_eq(buf, "unknown");
}

Test(addr, format_truncates_and_terminates) {
        char buf[16];

        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(format_in4("127.0.0.1", 7878, buf, 5), 4);
        cr_expect_str_eq(buf, "127.");
        cr_expect_eq(buf[5], 'x', "wrote past size");

        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(format_in4("127.0.0.1", 7878, buf, 1), 0);
        cr_expect_eq(buf[0], '\0');
        cr_expect_eq(buf[1], 'x');

        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(format_in4("127.0.0.1", 7878, buf, 0), 0);
        cr_expect_eq(buf[0], 'x', "size 0 must write nothing");

        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(format_in4("1.2.3.4", 5, buf, 10), 9); /* exact fit */
        cr_expect_str_eq(buf, "1.2.3.4:5");
}

Test(addr, format_listen_special_cases) {
        char buf[ADDR_STR_MAX];
        SockAddr a = {};

        /* Abstract and unnamed Unix sockets can arrive from systemd. */
        a.un.sun_family = AF_UNIX;
        memcpy(a.un.sun_path, "\0eb-test", 8);
        a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 8);
        cr_expect_eq(addr_format_listen(&a, buf, sizeof(buf)), 8);
        cr_expect_str_eq(buf, "@eb-test");

        a.len = sizeof(sa_family_t);
        addr_format_listen(&a, buf, sizeof(buf));
        cr_expect_str_eq(buf, "unix");

        /* A path that fills sun_path without a NUL is not read past. */
        memset(a.un.sun_path, 'q', sizeof(a.un.sun_path));
        a.un.sun_path[0] = '/';
        a.len = sizeof(struct sockaddr_un);
        cr_expect_eq(addr_format_listen(&a, buf, sizeof(buf)), sizeof(a.un.sun_path));

        cr_expect_eq(addr_format_listen(NULL, buf, sizeof(buf)), 7);
        cr_expect_str_eq(buf, "unknown");

        cr_assert_eq(addr_parse("*:7878", &a), 0);
        memset(buf, 'x', sizeof(buf));
        cr_expect_eq(addr_format_listen(&a, buf, 3), 2);
        cr_expect_str_eq(buf, "*:");
}
