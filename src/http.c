/* HTTP request head parser: owns nothing but the HttpRequest it fills; the
 * bytes are the caller's throughout.
 * Invariants: 'scan' is always the start of a line not yet parsed and never
 * passes HTTP_HEAD_MAX, so each byte is examined a bounded number of times
 * however the head is cut; only complete lines are parsed, which makes the
 * result a function of the bytes alone, never of the read boundaries; a
 * non-zero 'error' and a non-zero 'head_len' are final. */
#include "http.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

static bool is_tchar(unsigned char c) {
        /* RFC 9110 5.6.2 token characters. */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        return c && strchr("!#$%&'*+-.^_`|~", c);
}

static bool is_hex(unsigned char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar minus pct-encoded (checked apart), plus '/' and '?' (path
 * separators and the query). */
static bool is_target_char(unsigned char c) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        return c && strchr("-._~!$&'()*+,;=:@/?", c);
}

static bool is_ows(unsigned char c) {
        return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 'a' - 'A') : c;
}

static bool mem_caseeq(const char *p, size_t n, const char *s) {
        if (strlen(s) != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (lower((unsigned char)p[i]) != lower((unsigned char)s[i]))
                        return false;
        return true;
}

bool http_span_eq(const char *buf, HttpSpan s, const char *str) {
        return strlen(str) == s.len && memcmp(buf + s.off, str, s.len) == 0;
}

bool http_span_caseeq(const char *buf, HttpSpan s, const char *str) {
        return mem_caseeq(buf + s.off, s.len, str);
}

static HttpSpan span(const char *buf, const char *p, size_t n) {
        return (HttpSpan){(uint16_t)(p - buf), (uint16_t)n};
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3),
 * single spaces only. */
static int parse_request_line(HttpRequest *r, const char *buf, const char *p, const char *end) {
        const char *m = p;
        while (p < end && is_tchar((unsigned char)*p))
                p++;
        if (p == m || p == end || *p != ' ')
                return -EBADMSG;
        r->method = span(buf, m, (size_t)(p - m));

        const char *t = ++p, *q = NULL;
        if (p == end || *p != '/')
                return -EBADMSG;
        while (p < end && *p != ' ') {
                unsigned char c = (unsigned char)*p;
                if (c == '%') {
                        if (end - p < 3 || !is_hex((unsigned char)p[1]) || !is_hex((unsigned char)p[2]))
                                return -EBADMSG;
                        p += 3;
                        continue;
                }
                if (!is_target_char(c))
                        return -EBADMSG;
                if (c == '?' && !q)
                        q = p;
                p++;
        }
        if (p == end)
                return -EBADMSG;
        r->target = span(buf, t, (size_t)(p - t));
        r->path = span(buf, t, (size_t)((q ? q : p) - t));

        p++;
        /* HTTP-version = "HTTP" "/" DIGIT "." DIGIT, case-sensitive. */
        if (end - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
            p[7] < '0' || p[7] > '9')
                return -EBADMSG;
        if (p[5] != '1' || p[7] != '1')
                return -EPROTONOSUPPORT;
        return 0;
}

/* Whether the comma-separated list holds 'want' as one element (RFC 9110
 * 5.6.1: empty elements are allowed, OWS around each). */
static bool list_has(const char *p, const char *end, const char *want) {
        while (p < end) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                const char *e = comma ? comma : end;
                const char *a = p, *b = e;
                while (a < b && is_ows((unsigned char)*a))
                        a++;
                while (b > a && is_ows((unsigned char)b[-1]))
                        b--;
                if (mem_caseeq(a, (size_t)(b - a), want))
                        return true;
                p = comma ? comma + 1 : end;
        }
        return false;
}

static int b64_value(unsigned char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* 16 bytes in base64 are 22 characters and "==". The 4 unused low bits of
 * the last character are not checked (RFC 4648 3.5 lets a decoder ignore
 * them), so any key that decodes to 16 bytes passes. */
static bool ws_key_ok(const char *p, size_t n) {
        if (n != 24 || p[22] != '=' || p[23] != '=')
                return false;
        for (size_t i = 0; i < 22; i++)
                if (b64_value((unsigned char)p[i]) < 0)
                        return false;
        return true;
}

static int16_t parse_version(const char *p, size_t n) {
        if (n == 0 || n > 3)
                return -2;
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -2;
                v = v * 10 + (p[i] - '0');
        }
        if (v > 255)
                return -2;
        return (int16_t)v;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5). */
static int parse_field(HttpRequest *r, const char *buf, const char *p, const char *end) {
        /* A line starting with whitespace is obs-fold (or whitespace before
         * the first field, RFC 9112 2.2): both are refused. */
        if (is_ows((unsigned char)*p))
                return -EBADMSG;
        const char *name = p;
        while (p < end && is_tchar((unsigned char)*p))
                p++;
        /* No whitespace between name and colon (RFC 9112 5.1). */
        if (p == name || p == end || *p != ':')
                return -EBADMSG;
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && is_ows((unsigned char)*p))
                p++;
        const char *v = p, *ve = end;
        while (ve > v && is_ows((unsigned char)ve[-1]))
                ve--;
        for (const char *c = v; c < ve; c++) {
                unsigned char ch = (unsigned char)*c;
                /* VCHAR, obs-text, SP, HTAB: CR, NUL, other controls and DEL
                 * are refused. */
                if ((ch < 0x21 && !is_ows(ch)) || ch == 0x7f)
                        return -EBADMSG;
        }
        size_t vlen = (size_t)(ve - v);

        if (mem_caseeq(name, name_len, "host")) {
                /* One authority: no whitespace, no list. */
                for (const char *c = v; c < ve; c++)
                        if (is_ows((unsigned char)*c) || *c == ',')
                                return -EBADMSG;
                if (++r->n_host > 1)
                        return -EBADMSG;
                r->host = span(buf, v, vlen);
        } else if (mem_caseeq(name, name_len, "origin")) {
                if (r->has_origin)
                        return -EBADMSG;
                r->has_origin = true;
                r->origin = span(buf, v, vlen);
        } else if (mem_caseeq(name, name_len, "sec-websocket-key")) {
                if (r->has_ws_key)
                        return -EBADMSG;
                r->has_ws_key = true;
                r->ws_key = span(buf, v, vlen);
                r->ws_key_valid = ws_key_ok(v, vlen);
        } else if (mem_caseeq(name, name_len, "sec-websocket-version")) {
                if (r->ws_version != -1)
                        return -EBADMSG;
                r->ws_version = parse_version(v, vlen);
        } else if (mem_caseeq(name, name_len, "upgrade")) {
                r->upgrade_websocket |= list_has(v, ve, "websocket");
        } else if (mem_caseeq(name, name_len, "connection")) {
                r->connection_upgrade |= list_has(v, ve, "upgrade");
        } else if (mem_caseeq(name, name_len, "content-length") ||
                   mem_caseeq(name, name_len, "transfer-encoding")) {
                r->has_body = true;
        }
        return 0;
}

int http_parse(HttpRequest *r, const char *buf, size_t len) {
        if (r->error)
                return r->error;
        if (r->head_len)
                return r->head_len;

        size_t limit = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
        /* Fewer bytes than already parsed: the caller lost some. */
        if (limit < r->scan)
                return -EINVAL;
        for (;;) {
                const char *line = buf + r->scan;
                const char *lf = memchr(line, '\n', limit - r->scan);
                if (!lf) {
                        if (limit == HTTP_HEAD_MAX)
                                return (r->error = -E2BIG);
                        return 0;
                }
                const char *end = lf > line && lf[-1] == '\r' ? lf - 1 : lf;
                int k = 0;
                if (end == line) {
                        /* RFC 9112 2.2: empty lines before the request line
                         * are ignored; after it, one ends the head. */
                        if (r->started) {
                                if (r->n_host != 1)
                                        return (r->error = -EBADMSG);
                                r->scan = r->head_len = (uint16_t)(lf + 1 - buf);
                                return r->head_len;
                        }
                } else if (!r->started) {
                        k = parse_request_line(r, buf, line, end);
                        r->started = true;
                } else
                        k = parse_field(r, buf, line, end);
                if (k < 0)
                        return (r->error = k);
                r->scan = (uint16_t)(lf + 1 - buf);
        }
}

int http_ws_check(const HttpRequest *r, const char *buf) {
        if (!r->upgrade_websocket)
                return 0;
        if (!http_span_eq(buf, r->method, "GET") || !r->connection_upgrade || !r->ws_key_valid ||
            r->has_body)
                return -EBADMSG;
        if (r->ws_version != 13)
                return -ENOPROTOOPT;
        return 1;
}

int http_ws_accept(const char *key, size_t len, char out[HTTP_WS_ACCEPT_SIZE]) {
        static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        unsigned char in[64 + sizeof(guid)];
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;

        if (len > 64)
                return -EINVAL;
        memcpy(in, key, len);
        memcpy(in + len, guid, sizeof(guid) - 1);
        if (EVP_Digest(in, len + sizeof(guid) - 1, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
                return -EIO;
        /* 20 bytes are 28 base64 characters; EVP_EncodeBlock adds the NUL. */
        EVP_EncodeBlock((unsigned char *)out, md, 20);
        return 0;
}
