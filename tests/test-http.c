/* Unit tests for http.c: one request head, fed at once or cut anywhere, gives
 * the same result; every field rule; the size limit; pipelined bytes left to
 * the caller; the WebSocket handshake checks and the accept key. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* --- helpers ---------------------------------------------------------------- */

/* The opening handshake of RFC 6455 1.2 (without its Sec-WebSocket-Protocol
 * and with Origin as in 4.1). */
static const char rfc_request[] = "GET /chat HTTP/1.1\r\n"
                                  "Host: server.example.com\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";

/* Parses 's' at once, through a buffer of exactly its length so that ASan
 * sees any read past it. */
static int parse_all(HttpRequest *r, const char *s, size_t n) {
        char *buf = malloc(n ? n : 1);
        cr_assert_not_null(buf);
        memcpy(buf, s, n);
        *r = (HttpRequest)HTTP_REQUEST_INIT;
        int k = http_parse(r, buf, n);
        free(buf);
        return k;
}

static int parse(HttpRequest *r, const char *s) {
        return parse_all(r, s, strlen(s));
}

/* Parses 's' growing by 'step' bytes a call, each call on a fresh copy of
 * the bytes so far (the buffer moves, as a caller's realloc would move it). */
static int parse_steps(HttpRequest *r, const char *s, size_t n, size_t step) {
        *r = (HttpRequest)HTTP_REQUEST_INIT;
        int k = 0;
        for (size_t have = 0; have < n;) {
                have = have + step < n ? have + step : n;
                char *buf = malloc(have);
                cr_assert_not_null(buf);
                memcpy(buf, s, have);
                k = http_parse(r, buf, have);
                free(buf);
                if (k != 0)
                        break;
        }
        return k;
}

static void expect_span(const char *buf, HttpSpan sp, const char *want) {
        cr_assert(http_span_eq(buf, sp, want), "span is '%.*s', expected '%s'", sp.len, buf + sp.off, want);
}

/* A minimal valid request with one extra header line. */
static int parse_with(HttpRequest *r, const char *field, char *out, size_t out_size) {
        snprintf(out, out_size, "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n\r\n", field);
        return parse(r, out);
}

/* --- the RFC example ---------------------------------------------------------- */

Test(http, rfc_example) {
        HttpRequest r;
        int k = parse(&r, rfc_request);
        cr_assert_eq(k, (int)strlen(rfc_request));
        expect_span(rfc_request, r.method, "GET");
        expect_span(rfc_request, r.target, "/chat");
        expect_span(rfc_request, r.path, "/chat");
        expect_span(rfc_request, r.host, "server.example.com");
        cr_assert(r.has_origin);
        expect_span(rfc_request, r.origin, "http://example.com");
        cr_assert(r.has_ws_key && r.ws_key_valid);
        expect_span(rfc_request, r.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
        cr_assert_eq(r.ws_version, 13);
        cr_assert(r.upgrade_websocket && r.connection_upgrade && !r.has_body);
        cr_assert_eq(http_ws_check(&r, rfc_request), 1);
        /* Sticky: asking again gives the same. */
        cr_assert_eq(http_parse(&r, rfc_request, strlen(rfc_request)), k);
}

Test(http, accept_key_rfc_vector) {
        char out[HTTP_WS_ACCEPT_SIZE];
        cr_assert_eq(http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
        cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        char big[65] = {0};
        memset(big, 'A', 64);
        cr_assert_eq(http_ws_accept(big, 65, out), -EINVAL);
}

/* Every cut gives the result of the whole: byte at a time and every step. */
Test(http, any_cut_same_result) {
        size_t n = strlen(rfc_request);
        for (size_t step = 1; step <= n; step++) {
                HttpRequest r;
                cr_assert_eq(parse_steps(&r, rfc_request, n, step), (int)n, "step %zu", step);
                expect_span(rfc_request, r.origin, "http://example.com");
                cr_assert(r.ws_key_valid && r.upgrade_websocket && r.connection_upgrade);
        }
}

Test(http, need_more_until_empty_line) {
        size_t n = strlen(rfc_request);
        for (size_t i = 0; i < n; i++) {
                HttpRequest r;
                cr_assert_eq(parse_all(&r, rfc_request, i), 0, "prefix of %zu bytes", i);
        }
}

Test(http, pipelined_bytes_left_to_caller) {
        const char s[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n";
        HttpRequest r;
        int k = parse(&r, s);
        cr_assert_eq(k, (int)(strstr(s, "GET /b") - s));
        expect_span(s, r.path, "/a");
        /* A frame right after an upgrade, fed byte by byte. */
        char t[sizeof(rfc_request) + 6];
        memcpy(t, rfc_request, sizeof(rfc_request) - 1);
        memcpy(t + sizeof(rfc_request) - 1, "\x81\x80\x01\x02\x03\x04", 6);
        cr_assert_eq(parse_steps(&r, t, sizeof(t), 1), (int)strlen(rfc_request));
}

Test(http, fewer_bytes_than_parsed) {
        HttpRequest r = HTTP_REQUEST_INIT;
        const char s[] = "GET / HTTP/1.1\r\nHost: h\r\n";
        cr_assert_eq(http_parse(&r, s, sizeof(s) - 1), 0);
        cr_assert_eq(http_parse(&r, s, 3), -EINVAL);
        cr_assert_eq(http_parse(&r, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", sizeof(s) + 1), (int)sizeof(s) + 1);
}

Test(http, bare_lf_and_leading_empty_lines) {
        HttpRequest r;
        const char s[] = "GET /x?y=1 HTTP/1.1\nHost: a\n\n";
        cr_assert_eq(parse(&r, s), (int)strlen(s));
        expect_span(s, r.path, "/x");
        expect_span(s, r.target, "/x?y=1");
        const char t[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        cr_assert_eq(parse(&r, t), (int)strlen(t));
        expect_span(t, r.method, "GET");
}

/* --- the request line ------------------------------------------------------- */

Test(http, request_line_rules) {
        static const struct {
                const char *line;
                int want;
        } cases[] = {
                {"GET / HTTP/1.1", 0},
                {"POST /metrics HTTP/1.1", 0},
                {"M-SEARCH /a/b%20c;d=e:f@g HTTP/1.1", 0},
                {"GET /?q=a/b?c HTTP/1.1", 0},
                {"GET / HTTP/1.0", -EPROTONOSUPPORT},
                {"GET / HTTP/2.0", -EPROTONOSUPPORT},
                {"GET / HTTP/1.2", -EPROTONOSUPPORT},
                {"GET / http/1.1", -EBADMSG},
                {"GET / HTTP/1.11", -EBADMSG},
                {"GET / HTTP/1", -EBADMSG},
                {"GET /", -EBADMSG},
                {"GET", -EBADMSG},
                {"GET  / HTTP/1.1", -EBADMSG},
                {"GET /  HTTP/1.1", -EBADMSG},
                {" GET / HTTP/1.1", -EBADMSG},
                {"GET / HTTP/1.1 ", -EBADMSG},
                {"GET\t/ HTTP/1.1", -EBADMSG},
                {"G(T / HTTP/1.1", -EBADMSG},
                {"GET http://a/ HTTP/1.1", -EBADMSG},
                {"GET * HTTP/1.1", -EBADMSG},
                {"CONNECT a:80 HTTP/1.1", -EBADMSG},
                {"GET /a%2 HTTP/1.1", -EBADMSG},
                {"GET /a%zz HTTP/1.1", -EBADMSG},
                {"GET /a\"b HTTP/1.1", -EBADMSG},
                {"GET /a#b HTTP/1.1", -EBADMSG},
                {"GET /\x80 HTTP/1.1", -EBADMSG},
                {"GET / HTTP/1.1\r", -EBADMSG},
                {"GET /\r HTTP/1.1", -EBADMSG},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char buf[256];
                snprintf(buf, sizeof(buf), "%s\r\nHost: h\r\n\r\n", cases[i].line);
                HttpRequest r;
                int k = parse(&r, buf);
                if (cases[i].want == 0)
                        cr_assert_eq(k, (int)strlen(buf), "'%s': %d", cases[i].line, k);
                else
                        cr_assert_eq(k, cases[i].want, "'%s': %d, expected %d", cases[i].line, k,
                                     cases[i].want);
        }
}

/* --- header fields ------------------------------------------------------------ */

Test(http, field_rules) {
        static const struct {
                const char *field;
                int ok;
        } cases[] = {
                {"X-A: b", 1},     {"X-A:b", 1},          {"X-A:", 1},
                {"X-A:   ", 1},    {"X-A: \t b c \t", 1}, {"X-A: caf\xc3\xa9", 1}, /* obs-text */
                {"X-A: a\x7f", 0}, {"X-A: a\x01", 0},     {"X-A: a\rb", 0},
                {"X-A : b", 0},    {"X-A\t: b", 0},       {": b", 0},
                {"X A: b", 0},     {"X\"A: b", 0},        {"no colon", 0},
                {"\x80: b", 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char buf[256];
                HttpRequest r;
                int k = parse_with(&r, cases[i].field, buf, sizeof(buf));
                if (cases[i].ok)
                        cr_assert_eq(k, (int)strlen(buf), "'%s': %d", cases[i].field, k);
                else
                        cr_assert_eq(k, -EBADMSG, "'%s': %d", cases[i].field, k);
        }
        /* NUL in a value: memchr-based, never strlen-based. */
        const char nul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
        HttpRequest r;
        cr_assert_eq(parse_all(&r, nul, sizeof(nul) - 1), -EBADMSG);
}

Test(http, obs_fold_refused) {
        HttpRequest r;
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n"), -EBADMSG);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n\tc\r\n\r\n"), -EBADMSG);
        /* Whitespace before the first field (RFC 9112 2.2). */
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\n Host: h\r\n\r\n"), -EBADMSG);
}

Test(http, host_rules) {
        HttpRequest r;
        const char ok[] = "GET / HTTP/1.1\r\nhOsT:  [::1]:8080 \r\n\r\n";
        cr_assert_eq(parse(&r, ok), (int)strlen(ok));
        expect_span(ok, r.host, "[::1]:8080");
        const char empty[] = "GET / HTTP/1.1\r\nHost:\r\n\r\n";
        cr_assert_eq(parse(&r, empty), (int)strlen(empty));
        cr_assert_eq(r.host.len, 0);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\n\r\n"), -EBADMSG);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), -EBADMSG);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), -EBADMSG);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), -EBADMSG);
}

Test(http, upgrade_and_connection_lists) {
        static const struct {
                const char *fields;
                bool upgrade, connection;
        } cases[] = {
                {"Upgrade: websocket\r\nConnection: upgrade", true, true},
                {"UPGRADE: WebSocket\r\nCONNECTION: UPGRADE", true, true},
                {"Upgrade: h2c, websocket\r\nConnection: keep-alive, Upgrade", true, true},
                {"Upgrade: ,websocket,\r\nConnection: ,, upgrade ,", true, true},
                {"Upgrade: h2c\r\nUpgrade: websocket\r\nConnection: close\r\nConnection: upgrade", true,
                 true},
                {"Upgrade: websockets\r\nConnection: upgrades", false, false},
                {"Upgrade: websocket/13\r\nConnection: keep-alive", false, false},
                {"Upgrade: web socket\r\nConnection: up grade", false, false},
                {"X-Upgrade: websocket", false, false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char buf[512];
                HttpRequest r;
                int k = parse_with(&r, cases[i].fields, buf, sizeof(buf));
                cr_assert_gt(k, 0, "'%s'", cases[i].fields);
                cr_assert_eq(r.upgrade_websocket, cases[i].upgrade, "'%s'", cases[i].fields);
                cr_assert_eq(r.connection_upgrade, cases[i].connection, "'%s'", cases[i].fields);
        }
}

Test(http, ws_key_rules) {
        static const struct {
                const char *key;
                bool valid;
        } cases[] = {
                {"dGhlIHNhbXBsZSBub25jZQ==", true},      {"AAAAAAAAAAAAAAAAAAAAAA==", true},
                {"+/+/+/+/+/+/+/+/+/+/+w==", true},      {"dGhlIHNhbXBsZSBub25jZQ", false},
                {"dGhlIHNhbXBsZSBub25jZQ=", false},      {"dGhlIHNhbXBsZSBub25jZQ===", false},
                {"dGhlIHNhbXBsZSBub25jZ===", false},     {"dGhlIHNhbXBsZSBub25j-Q==", false},
                {"dGhlIHNhbXBsZSBub25jZSE=", false}, /* 17 bytes */
                {"dGhlIHNhbXBsZSBub25jZQ==dGhl", false}, {"", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char field[128], buf[256];
                snprintf(field, sizeof(field), "Sec-WebSocket-Key: %s", cases[i].key);
                HttpRequest r;
                cr_assert_gt(parse_with(&r, field, buf, sizeof(buf)), 0);
                cr_assert(r.has_ws_key);
                cr_assert_eq(r.ws_key_valid, cases[i].valid, "'%s'", cases[i].key);
        }
        HttpRequest r;
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
                     -EBADMSG);
}

Test(http, ws_version_rules) {
        static const struct {
                const char *value;
                int want;
        } cases[] = {
                {"13", 13},  {"8", 8},     {"0", 0}, {"255", 255},  {"013", 13},
                {"256", -2}, {"1000", -2}, {"", -2}, {"13, 8", -2}, {"x", -2},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char field[128], buf[256];
                snprintf(field, sizeof(field), "Sec-WebSocket-Version: %s", cases[i].value);
                HttpRequest r;
                cr_assert_gt(parse_with(&r, field, buf, sizeof(buf)), 0);
                cr_assert_eq(r.ws_version, cases[i].want, "'%s': %d", cases[i].value, r.ws_version);
        }
        HttpRequest r;
        cr_assert_gt(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
        cr_assert_eq(r.ws_version, -1);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n"),
                     -EBADMSG);
}

Test(http, origin_rules) {
        HttpRequest r;
        const char s[] = "GET / HTTP/1.1\r\nHost: h\r\nOrigin:  https://a.example:8443 \r\n\r\n";
        cr_assert_gt(parse(&r, s), 0);
        cr_assert(r.has_origin);
        expect_span(s, r.origin, "https://a.example:8443");
        const char n[] = "GET / HTTP/1.1\r\nHost: h\r\nOrigin: null\r\n\r\n";
        cr_assert_gt(parse(&r, n), 0);
        expect_span(n, r.origin, "null");
        cr_assert_gt(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
        cr_assert(!r.has_origin);
        cr_assert_eq(parse(&r, "GET / HTTP/1.1\r\nHost: h\r\nOrigin: a\r\norigin: b\r\n\r\n"), -EBADMSG);
}

Test(http, body_fields_flagged) {
        char buf[256];
        HttpRequest r;
        cr_assert_gt(parse_with(&r, "Content-Length: 0", buf, sizeof(buf)), 0);
        cr_assert(r.has_body);
        cr_assert_gt(parse_with(&r, "transfer-encoding: chunked", buf, sizeof(buf)), 0);
        cr_assert(r.has_body);
        cr_assert_gt(parse_with(&r, "X-Content-Length: 5", buf, sizeof(buf)), 0);
        cr_assert(!r.has_body);
}

/* --- size limit --------------------------------------------------------------- */

static char *head_of_size(size_t total) {
        /* "GET / HTTP/1.1\r\nHost: h\r\nX: aaaa...\r\n\r\n" of exactly 'total'
         * bytes. */
        const char pre[] = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
        char *s = malloc(total + 1);
        cr_assert_not_null(s);
        size_t fill = total - (sizeof(pre) - 1) - 4;
        memcpy(s, pre, sizeof(pre) - 1);
        memset(s + sizeof(pre) - 1, 'a', fill);
        memcpy(s + total - 4, "\r\n\r\n", 5);
        return s;
}

Test(http, size_limit) {
        HttpRequest r;
        char *s = head_of_size(HTTP_HEAD_MAX);
        cr_assert_eq(parse(&r, s), HTTP_HEAD_MAX);
        free(s);
        s = head_of_size(HTTP_HEAD_MAX + 1);
        cr_assert_eq(parse(&r, s), -E2BIG);
        /* As soon as HTTP_HEAD_MAX bytes hold no end, not before. */
        cr_assert_eq(parse_all(&r, s, HTTP_HEAD_MAX - 1), 0);
        cr_assert_eq(parse_all(&r, s, HTTP_HEAD_MAX), -E2BIG);
        cr_assert_eq(parse_steps(&r, s, HTTP_HEAD_MAX + 1, 1), -E2BIG);
        cr_assert_eq(http_parse(&r, "", 0), -E2BIG, "the error is sticky");
        free(s);
        /* A head that fits followed by more bytes than the limit. */
        s = malloc(3 * HTTP_HEAD_MAX);
        cr_assert_not_null(s);
        memset(s, 'z', 3 * HTTP_HEAD_MAX);
        memcpy(s, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27);
        cr_assert_eq(parse_all(&r, s, 3 * HTTP_HEAD_MAX), 27);
        /* A bad line is refused when complete, even near the limit. */
        memset(s, 'z', 3 * HTTP_HEAD_MAX);
        memcpy(s, "GET / HTTP/1.1\r\nHost: h\r\nbad line\r\n", 35);
        cr_assert_eq(parse_all(&r, s, 3 * HTTP_HEAD_MAX), -EBADMSG);
        free(s);
}

/* --- the handshake checks ----------------------------------------------------- */

Test(http, ws_check) {
        static const struct {
                const char *head;
                int want;
        } cases[] = {
                {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 0},
                {"GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n", 0},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 1},
                {"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 -EBADMSG},
                {"get / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 -EBADMSG},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 -EBADMSG},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 -EBADMSG},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 -EBADMSG},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 "Content-Length: 5\r\n\r\n",
                 -EBADMSG},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
                 -ENOPROTOOPT},
                {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                 -ENOPROTOOPT},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                HttpRequest r;
                cr_assert_gt(parse(&r, cases[i].head), 0, "case %zu", i);
                cr_assert_eq(http_ws_check(&r, cases[i].head), cases[i].want, "case %zu: %d", i,
                             http_ws_check(&r, cases[i].head));
        }
}
