/* The tests' own WebSocket client (see wsclient.h). Independent of the
 * daemon's src/wsframe.c and src/http.c on purpose: frames are built and
 * parsed here from RFC 6455 5.2 directly, UTF-8 is checked by decoding code
 * points rather than by the daemon's byte-range table, and the accept key
 * is computed with libcrypto from the RFC's formula. */
#include "wsclient.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

/* Waits for a frame, a response or the end; long enough for a daemon under
 * valgrind, short enough that a hang fails quickly. */
#define WSC_WAIT_MS 5000
/* A frame larger than this from the server is a bug in the test's config or
 * the server: it would not fit any max_message_bytes the tests use. */
#define WSC_FRAME_SANITY_MAX (64u << 20)

static int remaining(int64_t deadline) {
        int64_t r = deadline - harness_now_ms();
        return r < 0 ? 0 : (int)r;
}

/* --- transport: plain or TLS, non-blocking ---------------------------------- */

enum { IO_AGAIN = -1, IO_END = -2 };

/* One read: bytes, 0 at a clean end, IO_AGAIN when nothing is there (with
 * *want_write when TLS must write first), IO_END on a reset or error. */
static ssize_t io_read(WsClient *c, void *buf, size_t n, bool *want_write) {
        *want_write = false;
        if (!c->ssl) {
                ssize_t r = recv(c->fd, buf, n, MSG_DONTWAIT);
                if (r >= 0)
                        return r;
                return errno == EAGAIN || errno == EINTR ? IO_AGAIN : IO_END;
        }
        size_t got;
        if (SSL_read_ex(c->ssl, buf, n, &got) == 1)
                return (ssize_t)got;
        int e = SSL_get_error(c->ssl, 0);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                *want_write = e == SSL_ERROR_WANT_WRITE;
                return IO_AGAIN;
        }
        return e == SSL_ERROR_ZERO_RETURN ? 0 : IO_END;
}

static ssize_t io_write(WsClient *c, const void *buf, size_t n, bool *want_read) {
        *want_read = false;
        if (!c->ssl) {
                ssize_t r = send(c->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (r >= 0)
                        return r;
                return errno == EAGAIN || errno == EINTR ? IO_AGAIN : IO_END;
        }
        size_t put;
        if (SSL_write_ex(c->ssl, buf, n, &put) == 1)
                return (ssize_t)put;
        int e = SSL_get_error(c->ssl, 0);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                *want_read = e == SSL_ERROR_WANT_READ;
                return IO_AGAIN;
        }
        return IO_END;
}

static void wait_fd(int fd, short events, int timeout_ms) {
        struct pollfd p = {.fd = fd, .events = events};
        while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
                ;
}

static void in_reserve(WsClient *c, size_t more) {
        if (c->in_cap - c->in_len >= more)
                return;
        size_t cap = c->in_cap ? c->in_cap : 65536;
        while (cap - c->in_len < more)
                cap *= 2;
        c->in = realloc(c->in, cap);
        cr_assert(c->in, "out of memory");
        c->in_cap = cap;
}

/* Reads more bytes into c->in before deadline. False on timeout or at the
 * end (then c->eof). */
static bool fill(WsClient *c, int64_t deadline) {
        if (c->eof)
                return false;
        in_reserve(c, 65536);
        for (;;) {
                bool want_write;
                ssize_t n = io_read(c, c->in + c->in_len, c->in_cap - c->in_len, &want_write);
                if (n > 0) {
                        c->in_len += (size_t)n;
                        return true;
                }
                if (n == 0 || n == IO_END) {
                        c->eof = true;
                        return false;
                }
                int left = remaining(deadline);
                if (left == 0)
                        return false;
                wait_fd(c->fd, want_write ? POLLOUT : POLLIN, left);
        }
}

static void consume(WsClient *c, size_t n) {
        memmove(c->in, c->in + n, c->in_len - n);
        c->in_len -= n;
}

/* 0 when all was sent, -1 on timeout, 1 when the connection failed. */
static int send_within(WsClient *c, const void *buf, size_t len, int timeout_ms) {
        const uint8_t *p = buf;
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        while (len > 0) {
                bool want_read;
                ssize_t n = io_write(c, p, len, &want_read);
                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        continue;
                }
                if (n != IO_AGAIN)
                        return 1;
                int left = remaining(deadline);
                if (left == 0)
                        return -1;
                wait_fd(c->fd, want_read ? POLLIN : POLLOUT, left);
        }
        return 0;
}

/* --- connecting ------------------------------------------------------------- */

void wsc_adopt(WsClient *c, int fd) {
        *c = (WsClient){.fd = fd};
        snprintf(c->who, sizeof c->who, "fd %d", fd);
        int fl = fcntl(fd, F_GETFL);
        cr_assert(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
        /* Different keys in every client and every run, never 0. */
        uint32_t seed;
        cr_assert(RAND_bytes((unsigned char *)&seed, sizeof seed) == 1);
        c->mask_state = seed | 1;
}

void wsc_connect(WsClient *c, uint16_t port) {
        wsc_adopt(c, client_connect(port));
}

bool wsc_connect_tls(WsClient *c, uint16_t port, const char *ca_file, const char *cert_pem,
                     const char *key_pem) {
        wsc_connect(c, port);
        c->ctx = SSL_CTX_new(TLS_client_method());
        cr_assert(c->ctx && SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) == 1, "CA %s", ca_file);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        /* send_within() goes on from where a partial write stopped, as
         * with send() on the plain socket. */
        SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
        if (cert_pem) {
                cr_assert(SSL_CTX_use_certificate_file(c->ctx, cert_pem, SSL_FILETYPE_PEM) == 1, "%s",
                          cert_pem);
                cr_assert(SSL_CTX_use_PrivateKey_file(c->ctx, key_pem, SSL_FILETYPE_PEM) == 1, "%s",
                          key_pem);
        }
        c->ssl = SSL_new(c->ctx);
        cr_assert(c->ssl && SSL_set_fd(c->ssl, c->fd) == 1);
        cr_assert(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1") == 1);
        int64_t deadline = harness_now_ms() + harness_ms(10000);
        for (;;) {
                if (SSL_connect(c->ssl) == 1)
                        return true;
                int e = SSL_get_error(c->ssl, 0);
                ERR_clear_error();
                int left = remaining(deadline);
                if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left == 0)
                        return false;
                wait_fd(c->fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, left);
        }
}

void wsc_free(WsClient *c) {
        if (c->ssl)
                SSL_free(c->ssl);
        if (c->ctx)
                SSL_CTX_free(c->ctx);
        if (c->fd >= 0)
                close(c->fd);
        free(c->in);
        free(c->payload);
        free(c->msg);
        *c = (WsClient){.fd = -1};
}

/* --- HTTP ------------------------------------------------------------------- */

void wsc_accept_for(const char *key, char out[29]) {
        static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
        char joined[128];
        int n = snprintf(joined, sizeof joined, "%s%s", key, guid);
        cr_assert(n > 0 && (size_t)n < sizeof joined, "key too long");
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len;
        cr_assert(EVP_Digest(joined, (size_t)n, md, &md_len, EVP_sha1(), NULL) == 1 && md_len == 20);
        cr_assert(EVP_EncodeBlock((unsigned char *)out, md, 20) == 28);
}

char *wsc_request(const char *path, const char *key, const char *extra_headers) {
        char *r;
        cr_assert(
                asprintf(
                        &r,
                        "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                        path, key, extra_headers ? extra_headers : "") > 0);
        return r;
}

bool wsc_header(const WsResponse *r, const char *name, char *value, size_t size) {
        size_t name_len = strlen(name);
        const char *line = strstr(r->head, "\r\n");
        while (line && line[2] != '\0') {
                line += 2;
                const char *end = strstr(line, "\r\n");
                if (!end)
                        end = line + strlen(line);
                if ((size_t)(end - line) > name_len && line[name_len] == ':' &&
                    strncasecmp(line, name, name_len) == 0) {
                        const char *v = line + name_len + 1;
                        while (v < end && (*v == ' ' || *v == '\t'))
                                v++;
                        const char *e = end;
                        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                                e--;
                        snprintf(value, size, "%.*s", (int)(e - v), v);
                        return true;
                }
                line = *end ? end : NULL;
        }
        return false;
}

void wsc_read_response(WsClient *c, WsResponse *r, bool with_body, int timeout_ms) {
        *r = (WsResponse){0};
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        const uint8_t *end;
        while (c->in_len < 4 || !(end = memmem(c->in, c->in_len, "\r\n\r\n", 4))) {
                cr_assert(c->in_len < sizeof r->head, "%s: a response head over %zu bytes", c->who,
                          sizeof r->head);
                if (!fill(c, deadline))
                        cr_assert_fail("%s: no whole response head within %d ms (%s after %zu bytes: %.*s)",
                                       c->who, timeout_ms, c->eof ? "the end" : "nothing more", c->in_len,
                                       (int)c->in_len, (const char *)c->in);
        }
        r->head_len = (size_t)(end - c->in) + 4;
        cr_assert(r->head_len < sizeof r->head, "%s: a response head over %zu bytes", c->who,
                  sizeof r->head);
        memcpy(r->head, c->in, r->head_len);
        r->head[r->head_len] = '\0';
        consume(c, r->head_len);
        char reason;
        cr_assert(sscanf(r->head, "HTTP/1.1 %3d%c", &r->status, &reason) == 2 && reason == ' ',
                  "%s: not an HTTP/1.1 status line: %s", c->who, r->head);
        if (!with_body)
                return;
        char value[32];
        cr_assert(wsc_header(r, "Content-Length", value, sizeof value), "%s: no Content-Length in:\n%s",
                  c->who, r->head);
        char *e;
        unsigned long len = strtoul(value, &e, 10);
        cr_assert(*value && *e == '\0' && len < (1u << 20), "%s: Content-Length: %s", c->who, value);
        while (c->in_len < len)
                if (!fill(c, deadline))
                        cr_assert_fail("%s: a body of %zu of %lu bytes (Content-Length) within %d ms",
                                       c->who, c->in_len, len, timeout_ms);
        r->body = malloc(len + 1);
        cr_assert(r->body);
        memcpy(r->body, c->in, len);
        r->body[len] = '\0';
        r->body_len = len;
        consume(c, len);
}

void wsc_response_free(WsResponse *r) {
        free(r->body);
        r->body = NULL;
}

/* Whether a comma-separated header value holds token (case-insensitive). */
static bool has_token(const char *list, const char *token) {
        size_t n = strlen(token);
        for (const char *p = list; *p;) {
                p += strspn(p, " \t,");
                size_t len = strcspn(p, ",");
                size_t l = len;
                while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
                        l--;
                if (l == n && strncasecmp(p, token, n) == 0)
                        return true;
                p += len;
        }
        return false;
}

void wsc_upgrade(WsClient *c, const char *path, const char *extra_headers) {
        unsigned char raw[16];
        char key[25], want[29], v[256];
        cr_assert(RAND_bytes(raw, sizeof raw) == 1);
        cr_assert(EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw) == 24);
        char *req = wsc_request(path, key, extra_headers);
        wsc_send_raw(c, req, strlen(req));
        free(req);
        WsResponse r;
        wsc_read_response(c, &r, false, WSC_WAIT_MS);
        cr_assert_eq(r.status, 101, "upgrade of %s refused:\n%s", path, r.head);
        cr_assert(wsc_header(&r, "Upgrade", v, sizeof v) && strcasecmp(v, "websocket") == 0, "%s", r.head);
        cr_assert(wsc_header(&r, "Connection", v, sizeof v) && has_token(v, "upgrade"), "%s", r.head);
        wsc_accept_for(key, want);
        cr_assert(wsc_header(&r, "Sec-WebSocket-Accept", v, sizeof v) && strcmp(v, want) == 0,
                  "Sec-WebSocket-Accept is not %s:\n%s", want, r.head);
        cr_assert(!wsc_header(&r, "Sec-WebSocket-Protocol", v, sizeof v), "a subprotocol chosen:\n%s",
                  r.head);
        cr_assert(!wsc_header(&r, "Sec-WebSocket-Extensions", v, sizeof v), "an extension chosen:\n%s",
                  r.head);
}

void wsc_open(WsClient *c, uint16_t port) {
        wsc_connect(c, port);
        wsc_upgrade(c, "/", NULL);
}

/* --- sending ---------------------------------------------------------------- */

void wsc_bytes_add(WscBytes *b, const void *p, size_t n) {
        if (b->cap - b->len < n) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap - b->len < n)
                        cap *= 2;
                b->data = realloc(b->data, cap);
                cr_assert(b->data, "out of memory");
                b->cap = cap;
        }
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
}

void wsc_bytes_free(WscBytes *b) {
        free(b->data);
        *b = (WscBytes){0};
}

static uint32_t next_mask(WsClient *c) {
        /* xorshift32: never reaches 0 from a non-zero state. */
        uint32_t x = c->mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c->mask_state = x;
        return x;
}

void wsc_bytes_frame(WsClient *c, WscBytes *b, const WscFrame *f, const void *payload, size_t len) {
        uint8_t hdr[14];
        size_t h = 0;
        uint64_t claimed = f->declared_len ? f->declared_len : len;
        cr_assert(!(f->opcode == WSC_PING && len == 1 && *(const uint8_t *)payload == '\n'),
                  "%s: a ping with the payload \"\\n\" (its pong would pass for a trailer)", c->who);
        hdr[h++] = (uint8_t)((f->more ? 0 : 0x80) | (f->rsv & 7) << 4 | (f->opcode & 0x0F));
        uint8_t mask_bit = f->unmasked ? 0 : 0x80;
        WscLenForm form = f->len_form;
        if (form == WSC_LEN_MINIMAL)
                form = claimed < 126 ? WSC_LEN_MINIMAL : claimed <= 0xFFFF ? WSC_LEN_16 : WSC_LEN_64;
        if (form == WSC_LEN_MINIMAL) {
                hdr[h++] = mask_bit | (uint8_t)claimed;
        } else if (form == WSC_LEN_16) {
                cr_assert(claimed <= 0xFFFF, "a 16-bit length of %llu", (unsigned long long)claimed);
                hdr[h++] = mask_bit | 126;
                hdr[h++] = (uint8_t)(claimed >> 8);
                hdr[h++] = (uint8_t)claimed;
        } else {
                uint64_t v = claimed | (form == WSC_LEN_64_MSB ? UINT64_C(1) << 63 : 0);
                hdr[h++] = mask_bit | 127;
                for (int i = 7; i >= 0; i--)
                        hdr[h++] = (uint8_t)(v >> (8 * i));
        }
        uint8_t key[4] = {0};
        if (!f->unmasked) {
                uint32_t k = next_mask(c);
                memcpy(key, &k, 4);
                memcpy(hdr + h, key, 4);
                h += 4;
        }
        wsc_bytes_add(b, hdr, h);
        size_t at = b->len;
        wsc_bytes_add(b, payload, len);
        for (size_t i = 0; i < len; i++)
                b->data[at + i] ^= key[i % 4];
}

bool wsc_try_send_raw(WsClient *c, const void *buf, size_t len, int timeout_ms) {
        return send_within(c, buf, len, timeout_ms) == 0;
}

void wsc_send_raw(WsClient *c, const void *buf, size_t len) {
        int r = send_within(c, buf, len, 10000);
        cr_assert(r != -1, "%s: sending %zu bytes blocked for 10 s", c->who, len);
        cr_assert(r == 0, "%s: the connection failed while sending %zu bytes", c->who, len);
}

void wsc_send_chopped(WsClient *c, const void *buf, size_t len, size_t chunk, int pause_ms) {
        const uint8_t *p = buf;
        for (size_t off = 0; off < len; off += chunk) {
                if (off > 0 && pause_ms > 0)
                        harness_sleep_ms(pause_ms);
                wsc_send_raw(c, p + off, len - off < chunk ? len - off : chunk);
        }
}

void wsc_send_frame(WsClient *c, const WscFrame *f, const void *payload, size_t len) {
        WscBytes b = {0};
        wsc_bytes_frame(c, &b, f, payload, len);
        wsc_send_raw(c, b.data, b.len);
        wsc_bytes_free(&b);
}

void wsc_send_msg(WsClient *c, uint8_t opcode, const void *payload, size_t len) {
        wsc_send_frame(c, &(WscFrame){.opcode = opcode}, payload, len);
}

void wsc_send_text(WsClient *c, const char *s) {
        wsc_send_msg(c, WSC_TEXT, s, strlen(s));
}

void wsc_send_close(WsClient *c, uint16_t code, const char *reason) {
        uint8_t p[125];
        size_t n = 0;
        if (code != WSC_CLOSE_EMPTY) {
                size_t r = reason ? strlen(reason) : 0;
                cr_assert(r <= 123);
                p[0] = (uint8_t)(code >> 8);
                p[1] = (uint8_t)code;
                if (r)
                        memcpy(p + 2, reason, r);
                n = 2 + r;
        }
        wsc_send_msg(c, WSC_CLOSE, p, n);
}

/* --- receiving -------------------------------------------------------------- */

static const char *opcode_name(uint8_t op) {
        switch (op) {
        case WSC_CONT:
                return "continuation";
        case WSC_TEXT:
                return "text";
        case WSC_BINARY:
                return "binary";
        case WSC_CLOSE:
                return "close";
        case WSC_PING:
                return "ping";
        case WSC_PONG:
                return "pong";
        default:
                return "unknown";
        }
}

/* The bytes for a failure message: printable ones as they are, others as
 * \xNN, at most 60 of them. */
static void describe_bytes(const uint8_t *p, size_t len, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < len && i < 60 && n + 5 < size; i++) {
                int k = p[i] >= 0x20 && p[i] < 0x7F ? snprintf(buf + n, size - n, "%c", p[i])
                                                    : snprintf(buf + n, size - n, "\\x%02x", p[i]);
                n += k > 0 ? (size_t)k : 0;
        }
}

/* "a text frame of 5 bytes: hello" */
static const char *describe(const WscFrameIn *f, char *buf, size_t size) {
        char bytes[320];
        describe_bytes(f->payload, f->len, bytes, sizeof bytes);
        snprintf(buf, size, "a %s frame%s of %zu bytes: %s", opcode_name(f->opcode),
                 f->fin ? "" : " (not final)", f->len, bytes);
        return buf;
}

/* The bytes in hex, "81 7e 01 0a", for a header in a failure message. */
static const char *hex_bytes(const uint8_t *p, size_t len, char *buf, size_t size) {
        size_t n = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < len && n + 4 < size; i++)
                n += (size_t)snprintf(buf + n, size - n, i ? " %02x" : "%02x", p[i]);
        return buf;
}

bool wsc_head_holds_lf(uint64_t len) {
        /* The first byte (FIN, opcode: 0x81, 0x01, 0x80...) never is 0x0a;
         * the length is 7 bits, or 126 then 16 bits, or 127 then 64. */
        if (len < 126)
                return len == '\n';
        for (int i = 0; i < (len <= 0xFFFF ? 2 : 8); i++)
                if ((uint8_t)(len >> (8 * i)) == '\n')
                        return true;
        return false;
}

/* One whole frame out of c->in if there is one (1), else 0. Checks the rules
 * every server frame obeys as soon as the header is there. */
static int parse_frame(WsClient *c, WscFrameIn *f) {
        if (c->in_len < 2)
                return 0;
        uint8_t b0 = c->in[0], b1 = c->in[1];
        uint8_t op = b0 & 0x0F, len7 = b1 & 0x7F;
        size_t hdr = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        cr_assert(!(b1 & 0x80), "%s: the server sent a masked frame (RFC 6455 5.1)", c->who);
        cr_assert(!(b0 & 0x70), "%s: the server sent a frame with RSV bits 0x%x", c->who, b0 & 0x70);
        cr_assert(op <= WSC_BINARY || (op >= WSC_CLOSE && op <= WSC_PONG), "%s: the server sent opcode 0x%x",
                  c->who, op);
        if (c->in_len < hdr)
                return 0;
        uint64_t len = len7;
        if (len7 == 126) {
                len = (uint64_t)c->in[2] << 8 | c->in[3];
                cr_assert(len >= 126, "%s: the server sent a non-minimal 16-bit length %llu", c->who,
                          (unsigned long long)len);
        } else if (len7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                        len = len << 8 | c->in[2 + i];
                cr_assert(len > 0xFFFF && !(len >> 63), "%s: the server sent a bad 64-bit length %llu",
                          c->who, (unsigned long long)len);
        }
        if (op >= WSC_CLOSE)
                cr_assert(len <= 125 && (b0 & 0x80), "%s: the server sent a %s control frame of %llu bytes",
                          c->who, b0 & 0x80 ? "final" : "fragmented", (unsigned long long)len);
        cr_assert(len <= WSC_FRAME_SANITY_MAX, "%s: the server sent a frame of %llu bytes", c->who,
                  (unsigned long long)len);
        if (c->in_len - hdr < len)
                return 0;
        if (c->payload_cap < len + 1) {
                c->payload = realloc(c->payload, len + 1);
                cr_assert(c->payload, "out of memory");
                c->payload_cap = len + 1;
        }
        *f = (WscFrameIn){
                .opcode = op, .fin = b0 & 0x80, .payload = c->payload, .len = len, .head_len = hdr};
        memcpy(f->head, c->in, hdr);
        memcpy(c->payload, c->in + hdr, len);
        c->payload[len] = 0; /* so a text payload prints */
        consume(c, hdr + len);
        return 1;
}

/* What a frame was to the message stream. */
typedef enum FrameRole {
        ROLE_CONTROL,  /* a control frame other than a trailer */
        ROLE_TRAILER,  /* the trailer pong due */
        ROLE_FRAGMENT, /* a fragment of a message not yet whole */
        ROLE_MESSAGE,  /* the last (or only) frame of a data message */
} FrameRole;

static void msg_add(WsClient *c, const uint8_t *p, size_t n) {
        if (c->msg_cap < c->msg_len + n + 1) {
                size_t cap = c->msg_cap ? c->msg_cap : 4096;
                while (cap < c->msg_len + n + 1)
                        cap *= 2;
                c->msg = realloc(c->msg, cap);
                cr_assert(c->msg, "out of memory");
                c->msg_cap = cap;
        }
        if (n)
                memcpy(c->msg + c->msg_len, p, n);
        c->msg_len += n;
        c->msg[c->msg_len] = 0;
}

/* A data message is whole: it came in frames that fit the wire form (one
 * frame, or two exactly when one frame's header would hold an LF). */
static void msg_done(WsClient *c, unsigned frames, size_t len) {
        cr_assert(frames == (wsc_head_holds_lf(len) ? 2u : 1u),
                  "%s: message %llu (%zu bytes) came in %u frames, not %u", c->who,
                  (unsigned long long)c->messages + 1, len, frames, wsc_head_holds_lf(len) ? 2u : 1u);
        c->messages++;
        c->trailer_due = true;
}

/* Checks a frame against the messages before it (see wsclient.h) and keeps
 * the client's account of them. */
static FrameRole track(WsClient *c, const WscFrameIn *f) {
        char got[512], head[40];
        bool data = f->opcode <= WSC_BINARY;
        cr_assert(!data || !memchr(f->head, '\n', f->head_len),
                  "%s: a data frame header holds the byte 0x0a: %s (%s)", c->who,
                  hex_bytes(f->head, f->head_len, head, sizeof head), describe(f, got, sizeof got));
        if (c->msg_open) {
                cr_assert(f->opcode == WSC_CONT, "%s: %s between the fragments of a %s message (%u so far)",
                          c->who, describe(f, got, sizeof got), opcode_name(c->msg_opcode), c->msg_frames);
                msg_add(c, f->payload, f->len);
                c->msg_frames++;
                if (!f->fin)
                        return ROLE_FRAGMENT;
                c->msg_open = false;
                msg_done(c, c->msg_frames, c->msg_len);
                return ROLE_MESSAGE;
        }
        cr_assert(f->opcode != WSC_CONT, "%s: %s with no message begun", c->who,
                  describe(f, got, sizeof got));
        if (f->opcode == WSC_PONG && f->len == 1 && f->payload[0] == '\n') {
                cr_assert(c->trailer_due,
                          "%s: a trailer pong (8a 01 0a) with no message before it since the last one (%llu "
                          "messages, %llu trailers)",
                          c->who, (unsigned long long)c->messages, (unsigned long long)c->trailers);
                c->trailer_due = false;
                c->trailers++;
                return ROLE_TRAILER;
        }
        cr_assert(!c->trailer_due || !(data || f->opcode == WSC_CLOSE),
                  "%s: message %llu is not followed by its trailer pong (8a 01 0a): %s came", c->who,
                  (unsigned long long)c->messages, describe(f, got, sizeof got));
        if (!data)
                return ROLE_CONTROL;
        if (!f->fin) {
                c->msg_open = true;
                c->msg_opcode = f->opcode;
                c->msg_frames = 1;
                c->msg_len = 0;
                msg_add(c, f->payload, f->len);
                return ROLE_FRAGMENT;
        }
        msg_done(c, 1, f->len);
        return ROLE_MESSAGE;
}

/* The next frame before deadline, checked and tracked (its role in *role),
 * pings answered when auto_pong: as wsc_recv_frame() returns. */
static int next_frame(WsClient *c, WscFrameIn *f, FrameRole *role, int64_t deadline) {
        for (;;) {
                while (parse_frame(c, f)) {
                        *role = track(c, f);
                        if (!(c->auto_pong && f->opcode == WSC_PING))
                                return 1;
                        /* The pong's payload is the client's own copy. */
                        uint8_t echo[125];
                        size_t n = f->len;
                        memcpy(echo, f->payload, n);
                        wsc_send_msg(c, WSC_PONG, echo, n);
                        c->pings_answered++;
                }
                if (!fill(c, deadline)) {
                        if (!c->eof)
                                return 0;
                        cr_assert(c->in_len == 0,
                                  "%s: the connection ended inside a frame (%zu bytes of it)", c->who,
                                  c->in_len);
                        cr_assert(!c->msg_open, "%s: the connection ended inside a message (%u fragments)",
                                  c->who, c->msg_frames);
                        cr_assert(!c->trailer_due,
                                  "%s: the connection ended after message %llu, before its trailer pong",
                                  c->who, (unsigned long long)c->messages);
                        return -1;
                }
        }
}

/* A trailer that is due, as the bytes next in c->in: 1 when it was there
 * (taken, as track() would), 0 when only its start is there yet, -1 when
 * nothing is buffered or what is buffered is something else. Bytes, not a
 * frame, so that an HTTP body is never parsed as one. */
static int take_trailer(WsClient *c) {
        if (!c->trailer_due || c->in_len == 0)
                return -1;
        size_t n = c->in_len < WSC_TRAILER_LEN ? c->in_len : WSC_TRAILER_LEN;
        if (memcmp(c->in, WSC_TRAILER, n) != 0)
                return -1;
        if (n < WSC_TRAILER_LEN)
                return 0;
        consume(c, WSC_TRAILER_LEN);
        c->trailer_due = false;
        c->trailers++;
        return 1;
}

/* Reads until deadline, the end, or bytes other than the trailer due. */
static void wait_past_trailer(WsClient *c, int64_t deadline) {
        for (;;) {
                int t = take_trailer(c);
                if (t == 1)
                        continue;
                if (t < 0 && c->in_len > 0)
                        return;
                if (!fill(c, deadline))
                        return;
        }
}

int wsc_recv_frame(WsClient *c, WscFrameIn *f, int timeout_ms) {
        FrameRole role;
        return next_frame(c, f, &role, harness_now_ms() + harness_ms(timeout_ms));
}

int wsc_recv(WsClient *c, WscMsgIn *m, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                WscFrameIn f;
                FrameRole role;
                int r = next_frame(c, &f, &role, deadline);
                if (r <= 0)
                        return r;
                if (role == ROLE_TRAILER || role == ROLE_FRAGMENT)
                        continue;
                bool joined = role == ROLE_MESSAGE && f.opcode == WSC_CONT;
                *m = (WscMsgIn){.opcode = joined ? c->msg_opcode : f.opcode,
                                .payload = joined ? c->msg : f.payload,
                                .len = joined ? c->msg_len : f.len,
                                .frames = joined ? c->msg_frames : 1};
                return 1;
        }
}

bool wsc_between_messages(const WsClient *c) {
        return c->in_len == 0 && !c->msg_open && !c->trailer_due;
}

/* "a text message of 5 bytes (in 2 frames): hello" */
static const char *describe_msg(const WscMsgIn *m, char *buf, size_t size) {
        char bytes[320];
        describe_bytes(m->payload, m->len, bytes, sizeof bytes);
        char frames[32] = "";
        if (m->frames != 1)
                snprintf(frames, sizeof frames, " (in %u frames)", m->frames);
        snprintf(buf, size, "a %s %s of %zu bytes%s: %s", opcode_name(m->opcode),
                 m->opcode <= WSC_BINARY ? "message" : "frame", m->len, frames, bytes);
        return buf;
}

void wsc_expect_msg(WsClient *c, uint8_t opcode, const void *payload, size_t len, int timeout_ms) {
        WscMsgIn m;
        int r = wsc_recv(c, &m, timeout_ms);
        cr_assert(r != 0, "%s: nothing within %d ms (a %s of %zu bytes was due)", c->who, timeout_ms,
                  opcode_name(opcode), len);
        cr_assert(r > 0, "%s: the connection ended (a %s of %zu bytes was due)", c->who, opcode_name(opcode),
                  len);
        if (m.opcode == opcode && m.len == len && memcmp(m.payload, payload, len) == 0)
                return;
        char got[512], want[320];
        describe_bytes(payload, len, want, sizeof want);
        cr_assert_fail("%s: expected a %s of %zu bytes: %s; got %s", c->who, opcode_name(opcode), len, want,
                       describe_msg(&m, got, sizeof got));
}

void wsc_expect_text(WsClient *c, const char *s) {
        wsc_expect_msg(c, WSC_TEXT, s, strlen(s), WSC_WAIT_MS);
}

void wsc_expect_close(WsClient *c, uint16_t code, char *reason, size_t reason_size, int timeout_ms) {
        WscMsgIn f;
        int r = wsc_recv(c, &f, timeout_ms);
        cr_assert(r != 0, "%s: no close %u within %d ms", c->who, code, timeout_ms);
        cr_assert(r > 0, "%s: the connection ended without a close frame (%u was due)", c->who, code);
        char got[512];
        cr_assert(f.opcode == WSC_CLOSE, "%s: expected a close %u, got %s", c->who, code,
                  describe_msg(&f, got, sizeof got));
        cr_assert(f.len != 1, "%s: a close payload of 1 byte", c->who);
        uint16_t have = f.len ? (uint16_t)(f.payload[0] << 8 | f.payload[1]) : WSC_CLOSE_EMPTY;
        cr_assert(f.len == 0 || wsc_utf8_valid(f.payload + 2, f.len - 2), "%s: a close reason not UTF-8",
                  c->who);
        cr_assert_eq(have, code, "%s: close code %u (reason \"%.*s\"), %u was due", c->who, have,
                     f.len > 2 ? (int)f.len - 2 : 0, f.len > 2 ? (const char *)f.payload + 2 : "", code);
        if (reason)
                snprintf(reason, reason_size, "%.*s", f.len > 2 ? (int)f.len - 2 : 0,
                         f.len > 2 ? (const char *)f.payload + 2 : "");
}

void wsc_expect_eof(WsClient *c, int timeout_ms) {
        wait_past_trailer(c, harness_now_ms() + harness_ms(timeout_ms));
        /* Shown as bytes: they may be a frame or a stray HTTP body. */
        char got[320];
        describe_bytes(c->in, c->in_len, got, sizeof got);
        cr_assert(c->in_len == 0, "%s: %zu bytes where the end was due: %s", c->who, c->in_len, got);
        cr_assert(c->eof, "%s: still open %d ms after the end was due", c->who, timeout_ms);
        cr_assert(!c->msg_open && !c->trailer_due, "%s: the end came %s", c->who,
                  c->msg_open ? "inside a fragmented message"
                              : "before the trailer pong of the last message");
}

void wsc_expect_closing_handshake(WsClient *c, uint16_t code) {
        wsc_expect_close(c, code, NULL, 0, WSC_WAIT_MS);
        /* The server may already have closed after a short wait: the answer
         * is a courtesy then, not a requirement. */
        WscBytes b = {0};
        uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        wsc_bytes_frame(c, &b, &(WscFrame){.opcode = WSC_CLOSE}, p, code == WSC_CLOSE_EMPTY ? 0 : 2);
        (void)wsc_try_send_raw(c, b.data, b.len, 1000);
        wsc_bytes_free(&b);
        wsc_expect_eof(c, 3000);
}

void wsc_close_handshake(WsClient *c, uint16_t code) {
        wsc_send_close(c, code, NULL);
        wsc_expect_close(c, code, NULL, 0, WSC_WAIT_MS);
        wsc_expect_eof(c, 3000);
}

void wsc_expect_nothing(WsClient *c, int wait_ms) {
        wait_past_trailer(c, harness_now_ms() + harness_ms(wait_ms));
        WscFrameIn f;
        char got[512];
        if (parse_frame(c, &f))
                cr_assert_fail("%s: %s where nothing was due", c->who, describe(&f, got, sizeof got));
        describe_bytes(c->in, c->in_len, got, sizeof got);
        cr_assert(c->in_len == 0, "%s: %zu bytes where nothing was due: %s", c->who, c->in_len, got);
        cr_assert(!c->eof, "%s: the connection ended where nothing was due", c->who);
}

/* --- UTF-8 ------------------------------------------------------------------ */

bool wsc_utf8_valid(const void *p, size_t n) {
        const uint8_t *s = p;
        for (size_t i = 0; i < n;) {
                uint8_t b = s[i];
                size_t len;
                uint32_t cp, min;
                if (b < 0x80) {
                        i++;
                        continue;
                } else if ((b & 0xE0) == 0xC0) {
                        len = 2, cp = b & 0x1F, min = 0x80;
                } else if ((b & 0xF0) == 0xE0) {
                        len = 3, cp = b & 0x0F, min = 0x800;
                } else if ((b & 0xF8) == 0xF0) {
                        len = 4, cp = b & 0x07, min = 0x10000;
                } else {
                        return false;
                }
                if (n - i < len)
                        return false;
                for (size_t k = 1; k < len; k++) {
                        if ((s[i + k] & 0xC0) != 0x80)
                                return false;
                        cp = cp << 6 | (s[i + k] & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return false;
                i += len;
        }
        return true;
}
