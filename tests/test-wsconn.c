/* Unit tests for websocket.c, the codec of one connection: the request head
 * however it is cut, with the bytes after it left for the frames; the head
 * errors and their HTTP status; the 101 and the other responses byte for
 * byte; messages handed out in place or gathered, control frames between
 * fragments, pings, pongs and closes; every input error with its close
 * code; the control output composed in order and sent in any bites; what
 * has_control and finished say in each phase; the message limit. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "websocket.h"

/* --- helpers ---------------------------------------------------------------- */

/* The opening handshake of RFC 6455 1.2 (without Sec-WebSocket-Protocol). */
static const char rfc_request[] = "GET /chat HTTP/1.1\r\n"
                                  "Host: server.example.com\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";
#define RFC_REQUEST_LEN (sizeof(rfc_request) - 1)

/* Its answer, with the accept value of RFC 6455 1.3. */
static const char rfc_response[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                   "\r\n";
#define RFC_RESPONSE_LEN (sizeof(rfc_response) - 1)

#define FIN 0x80
#define NO_LIMIT UINT64_MAX

static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Writes one client frame at out + at: first byte b0 (FIN, RSV, opcode),
 * the minimal length form, the payload masked with test_mask unless
 * !masked. Returns the new length. */
static size_t frame(uint8_t *out, size_t at, uint8_t b0, const void *payload, size_t len, bool masked) {
        uint8_t *p = out + at;
        uint8_t m = masked ? 0x80 : 0;
        *p++ = b0;
        if (len < 126)
                *p++ = (uint8_t)(m | len);
        else if (len <= 0xFFFF) {
                *p++ = m | 126;
                *p++ = (uint8_t)(len >> 8);
                *p++ = (uint8_t)len;
        } else {
                *p++ = m | 127;
                for (int k = 7; k >= 0; k--)
                        *p++ = (uint8_t)((uint64_t)len >> (8 * k));
        }
        if (masked) {
                memcpy(p, test_mask, 4);
                p += 4;
        }
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (masked ? test_mask[i & 3] : 0));
        return (size_t)(p + len - out);
}

static size_t text(uint8_t *out, size_t at, const char *s) {
        return frame(out, at, FIN | WS_OP_TEXT, s, strlen(s), true);
}

static size_t ping(uint8_t *out, size_t at, const char *s) {
        return frame(out, at, FIN | WS_OP_PING, s, strlen(s), true);
}

/* A close frame with 'code' and 'reason' (code < 0: an empty payload). */
static size_t close_frame(uint8_t *out, size_t at, int code, const char *reason) {
        uint8_t pl[125] = {0};
        size_t n = 0;
        if (code >= 0) {
                pl[0] = (uint8_t)(code >> 8);
                pl[1] = (uint8_t)code;
                n = 2 + strlen(reason);
                memcpy(pl + 2, reason, n - 2);
        }
        return frame(out, at, FIN | WS_OP_CLOSE, pl, n, true);
}

static uint8_t stream[1 << 18];

/* What the codec handed out: each event, its payload copied. */
typedef struct Ev {
        WsEventType type;
        char *data; /* MESSAGE: the payload; REQUEST: the head */
        size_t len;
        bool text;
        bool in_place; /* MESSAGE: data pointed into the read's buffer */
        int error;
        uint16_t close_code;
        size_t pending; /* ws_conn_pending_input() right after it */
} Ev;

typedef struct Evs {
        Ev ev[64];
        size_t n;
} Evs;

static void evs_clear(Evs *e) {
        for (size_t i = 0; i < e->n; i++)
                free(e->ev[i].data);
        e->n = 0;
}

static char *copy(const void *p, size_t n) {
        char *c = malloc(n ? n : 1);
        cr_assert_not_null(c);
        if (n)
                memcpy(c, p, n);
        return c;
}

/* Feeds one read of n bytes, in a buffer of its own (scribbled over and
 * freed afterwards, so that a payload used past its read would show), until
 * the codec has used it up. At a REQUEST, with 'accept' the request must be
 * a valid upgrade and is accepted; without, feeding stops there. Returns
 * the bytes of the read left unconsumed. */
static size_t feed(WsConn *w, const void *s, size_t n, uint64_t max, Evs *e, bool accept) {
        char *buf = copy(s, n);
        char *in = buf;
        size_t in_len = n;
        for (;;) {
                WsEvent ev;
                char *before = in;
                int r = ws_conn_next(w, &in, &in_len, max, &ev);
                cr_assert(in >= before && in <= buf + n && in_len == (size_t)(buf + n - in),
                          "the input moved backwards or out of its buffer");
                cr_assert_geq(r, 0, "ws_conn_next: %d", r);
                if (r == 0) {
                        cr_assert_eq(in_len, 0, "0 with %zu bytes left", in_len);
                        break;
                }
                cr_assert_lt(e->n, sizeof(e->ev) / sizeof(e->ev[0]), "too many events");
                Ev *x = &e->ev[e->n++];
                *x = (Ev){.type = ev.type, .error = ev.error, .close_code = ev.close_code};
                switch (ev.type) {
                case WS_EVENT_REQUEST:
                        cr_assert_gt(w->req.head_len, 0);
                        x->data = copy(w->head, w->req.head_len);
                        x->len = w->req.head_len;
                        break;
                case WS_EVENT_MESSAGE:
                        x->data = copy(ev.data, ev.len);
                        x->len = ev.len;
                        x->text = ev.text;
                        x->in_place = ev.len > 0 && ev.data >= buf && ev.data + ev.len <= in;
                        cr_assert(memchr(ev.data, '\n', ev.len) == NULL, "a message holding an LF");
                        break;
                case WS_EVENT_CLOSE:
                case WS_EVENT_ERROR:
                        break;
                default:
                        cr_assert_fail("unknown event %d", ev.type);
                }
                x->pending = ws_conn_pending_input(w);
                if (ev.type == WS_EVENT_REQUEST) {
                        if (!accept)
                                break;
                        cr_assert_eq(http_ws_check(&w->req, w->head), 1, "not a valid upgrade");
                        cr_assert_eq(ws_conn_accept(w), 0);
                }
        }
        size_t left = in_len;
        memset(buf, 0xAA, n);
        free(buf);
        return left;
}

/* Feeds s[0, n) in reads of 'step' bytes (0: at once), accepting the request. */
static void feed_steps(WsConn *w, const void *s, size_t n, size_t step, uint64_t max, Evs *e) {
        size_t off = 0;
        do {
                size_t k = step && n - off > step ? step : n - off;
                cr_assert_eq(feed(w, (const char *)s + off, k, max, e, true), 0);
                off += k;
        } while (off < n);
}

static WsConn *new_conn(void) {
        WsConn *w = NULL;
        cr_assert_eq(ws_conn_new(&w), 0);
        cr_assert_not_null(w);
        cr_assert_eq(w->phase, WS_PHASE_REQUEST);
        cr_assert_not(ws_conn_open(w));
        cr_assert_not(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_pending_input(w), 0);
        return w;
}

/* Sends the control output in bites of 'bite' bytes (0: all that is
 * offered), into out. While some is offered has_control holds and the
 * connection is not finished; after, has_control is false. Returns its
 * length. */
static size_t drain(WsConn *w, size_t bite, uint8_t *out, size_t cap) {
        size_t len = 0;
        for (size_t guard = 0;; guard++) {
                cr_assert_lt(guard, 1000000, "the control output never ends");
                const uint8_t *p = NULL;
                ssize_t n = ws_conn_control(w, &p);
                cr_assert_geq(n, 0, "ws_conn_control: %zd", n);
                if (n == 0)
                        break;
                cr_assert_not_null(p);
                cr_assert(ws_conn_has_control(w));
                cr_assert_not(ws_conn_finished(w), "finished with control bytes unsent");
                size_t k = bite && (size_t)n > bite ? bite : (size_t)n;
                cr_assert_leq(len + k, cap);
                memcpy(out + len, p, k);
                len += k;
                ws_conn_control_sent(w, k);
        }
        cr_assert_not(ws_conn_has_control(w));
        return len;
}

/* A connection past the RFC handshake, its 101 sent. */
static WsConn *open_conn(void) {
        WsConn *w = new_conn();
        Evs e = {0};
        feed_steps(w, rfc_request, RFC_REQUEST_LEN, 0, NO_LIMIT, &e);
        cr_assert_eq(e.n, 1);
        cr_assert_eq(e.ev[0].type, WS_EVENT_REQUEST);
        evs_clear(&e);
        uint8_t out[512];
        size_t n = drain(w, 0, out, sizeof(out));
        cr_assert_eq(n, RFC_RESPONSE_LEN);
        cr_assert(memcmp(out, rfc_response, n) == 0);
        cr_assert(ws_conn_open(w));
        return w;
}

/* A server frame, as parsed from the control output. */
typedef struct SFrame {
        uint8_t opcode;
        uint8_t payload[WSFRAME_CONTROL_MAX];
        size_t len;
} SFrame;

/* Splits control output into frames: each final, unmasked, without RSV
 * bits, a control frame of at most 125 bytes, whole. */
static size_t parse_frames(const uint8_t *p, size_t n, SFrame *f, size_t max) {
        size_t k = 0, at = 0;
        while (at < n) {
                cr_assert_lt(k, max, "too many frames");
                cr_assert_leq(at + 2, n, "a cut frame header");
                cr_assert_eq(p[at] & 0xF0, FIN, "not a final frame without RSV bits: %02x", p[at]);
                cr_assert_geq(p[at] & 0x0F, 0x8, "not a control frame: %02x", p[at]);
                cr_assert_eq(p[at + 1] & 0x80, 0, "a masked server frame");
                size_t len = p[at + 1] & 0x7F;
                cr_assert_leq(len, WSFRAME_CONTROL_MAX);
                cr_assert_leq(at + 2 + len, n, "a cut frame");
                f[k].opcode = p[at] & 0x0F;
                f[k].len = len;
                memcpy(f[k].payload, p + at + 2, len);
                at += 2 + len;
                k++;
        }
        return k;
}

static void expect_frame(const SFrame *f, uint8_t opcode, const char *payload) {
        cr_assert_eq(f->opcode, opcode, "opcode %x, expected %x", f->opcode, opcode);
        cr_assert_eq(f->len, strlen(payload), "payload of %zu bytes, expected '%s'", f->len, payload);
        cr_assert(memcmp(f->payload, payload, f->len) == 0, "payload '%.*s', expected '%s'", (int)f->len,
                  f->payload, payload);
}

/* A close frame with 'code' (< 0: an empty payload), its reason valid
 * UTF-8 and, if 'reason' is given, exactly that. */
static void expect_close(const SFrame *f, int code, const char *reason) {
        cr_assert_eq(f->opcode, WS_OP_CLOSE, "opcode %x, not a close", f->opcode);
        if (code < 0) {
                cr_assert_eq(f->len, 0, "a close with a payload of %zu bytes, expected none", f->len);
                return;
        }
        cr_assert_geq(f->len, 2, "a close without a code");
        cr_assert_eq(f->payload[0] << 8 | f->payload[1], code, "close code %d, expected %d",
                     f->payload[0] << 8 | f->payload[1], code);
        cr_assert(utf8_valid(f->payload + 2, f->len - 2), "the close reason is not UTF-8");
        if (reason) {
                cr_assert_eq(f->len - 2, strlen(reason), "reason '%.*s', expected '%s'", (int)f->len - 2,
                             f->payload + 2, reason);
                cr_assert(memcmp(f->payload + 2, reason, f->len - 2) == 0);
        }
}

/* Drains the control output (in 'bite's) and parses it into frames. */
static size_t drain_frames(WsConn *w, size_t bite, SFrame *f, size_t max) {
        static uint8_t out[8 * WSFRAME_CONTROL_FRAME_MAX];
        size_t n = drain(w, bite, out, sizeof(out));
        return parse_frames(out, n, f, max);
}

static void expect_message(const Ev *x, const char *data, size_t len, bool is_text) {
        cr_assert_eq(x->type, WS_EVENT_MESSAGE, "event %d, expected a message", x->type);
        cr_assert_eq(x->len, len, "a message of %zu bytes, expected %zu", x->len, len);
        cr_assert(len == 0 || memcmp(x->data, data, len) == 0, "message '%.*s', expected '%.*s'",
                  (int)x->len, x->data, (int)len, data);
        cr_assert_eq(x->text, is_text);
}

/* --- the request head ---------------------------------------------------------- */

Test(wsconn, new_and_free) {
        WsConn *w = new_conn();
        cr_assert_null(ws_conn_free(w));
        cr_assert_null(ws_conn_free(NULL));
}

Test(wsconn, request_head_split_at_every_byte) {
        /* The handshake and two frames right after it: cut once anywhere, or
         * fed a byte at a time, the events and the output are those of one
         * read. */
        memcpy(stream, rfc_request, RFC_REQUEST_LEN);
        size_t n = text(stream, RFC_REQUEST_LEN, "hello");
        n = ping(stream, n, "p");

        for (size_t cut = 0; cut <= n + 1; cut++) {
                WsConn *w = new_conn();
                Evs e = {0};
                if (cut == n + 1)
                        feed_steps(w, stream, n, 1, NO_LIMIT, &e);
                else {
                        feed_steps(w, stream, cut, 0, NO_LIMIT, &e);
                        if (cut < RFC_REQUEST_LEN) {
                                cr_assert_eq(e.n, 0, "cut %zu: an event before the head is whole", cut);
                                cr_assert_eq(ws_conn_pending_input(w), cut, "cut %zu: %zu bytes pending",
                                             cut, ws_conn_pending_input(w));
                                cr_assert_not(ws_conn_has_control(w));
                        }
                        feed_steps(w, stream + cut, n - cut, 0, NO_LIMIT, &e);
                }
                cr_assert_eq(e.n, 2, "cut %zu: %zu events", cut, e.n);
                cr_assert_eq(e.ev[0].type, WS_EVENT_REQUEST);
                cr_assert_eq(e.ev[0].len, RFC_REQUEST_LEN, "cut %zu: a head of %zu bytes", cut, e.ev[0].len);
                cr_assert(memcmp(e.ev[0].data, rfc_request, RFC_REQUEST_LEN) == 0);
                expect_message(&e.ev[1], "hello", 5, true);
                cr_assert_eq(ws_conn_pending_input(w), 0);

                uint8_t out[512];
                size_t len = drain(w, 0, out, sizeof(out));
                cr_assert_eq(len, RFC_RESPONSE_LEN + 3, "cut %zu: %zu control bytes", cut, len);
                cr_assert(memcmp(out, rfc_response, RFC_RESPONSE_LEN) == 0, "cut %zu: not the 101", cut);
                cr_assert(memcmp(out + RFC_RESPONSE_LEN, "\x8a\x01p", 3) == 0, "cut %zu: not the pong", cut);
                evs_clear(&e);
                ws_conn_free(w);
        }
}

Test(wsconn, bytes_after_the_head_stay_in_the_input) {
        /* Frames in the same read as the head: REQUEST leaves them where
         * they are, and once accepted the message is handed out in place. */
        static char buf[1024];
        memcpy(buf, rfc_request, RFC_REQUEST_LEN);
        size_t n = text((uint8_t *)buf, RFC_REQUEST_LEN, "first");
        WsConn *w = new_conn();
        char *in = buf;
        size_t in_len = n;
        WsEvent ev;
        cr_assert_eq(ws_conn_next(w, &in, &in_len, NO_LIMIT, &ev), 1);
        cr_assert_eq(ev.type, WS_EVENT_REQUEST);
        cr_assert_eq(in, buf + RFC_REQUEST_LEN);
        cr_assert_eq(in_len, n - RFC_REQUEST_LEN);
        cr_assert(http_span_eq(w->head, w->req.method, "GET"));
        cr_assert(http_span_eq(w->head, w->req.path, "/chat"));
        cr_assert(http_span_eq(w->head, w->req.host, "server.example.com"));
        cr_assert(http_span_eq(w->head, w->req.origin, "http://example.com"));
        cr_assert_eq(w->req.ws_version, 13);
        cr_assert_eq(http_ws_check(&w->req, w->head), 1);
        cr_assert_eq(w->phase, WS_PHASE_REQUEST);
        cr_assert_not(ws_conn_open(w));

        cr_assert_eq(ws_conn_accept(w), 0);
        cr_assert_eq(ws_conn_pending_input(w), 0, "the head is let go at the answer");
        cr_assert_eq(ws_conn_next(w, &in, &in_len, NO_LIMIT, &ev), 1);
        cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
        cr_assert_eq(ev.len, 5);
        cr_assert_eq(ev.data, buf + RFC_REQUEST_LEN + 6, "not handed out in place");
        cr_assert(memcmp(ev.data, "first", 5) == 0);
        cr_assert(ev.text);
        cr_assert_eq(ws_conn_next(w, &in, &in_len, NO_LIMIT, &ev), 0);
        cr_assert_eq(in_len, 0);
        ws_conn_free(w);

        /* An ordinary request with bytes pipelined after it (a bare LF ends
         * lines too): REQUEST at the end of the head; once answered, the
         * rest is read and ignored. */
        static const char get[] = "GET /?x=1 HTTP/1.1\nHost: h\n\nGET /again HTTP/1.1\r\n";
        memcpy(buf, get, sizeof(get) - 1);
        w = new_conn();
        in = buf;
        in_len = sizeof(get) - 1;
        cr_assert_eq(ws_conn_next(w, &in, &in_len, NO_LIMIT, &ev), 1);
        cr_assert_eq(ev.type, WS_EVENT_REQUEST);
        cr_assert_eq(in, buf + 28);
        cr_assert(http_span_eq(w->head, w->req.path, "/"));
        cr_assert(http_span_eq(w->head, w->req.target, "/?x=1"));
        cr_assert_eq(http_ws_check(&w->req, w->head), 0);
        cr_assert_eq(ws_conn_respond(w, 404, "", "no\n", 3, false), 0);
        cr_assert_eq(ws_conn_pending_input(w), 0);
        cr_assert_eq(ws_conn_next(w, &in, &in_len, NO_LIMIT, &ev), 0);
        cr_assert_eq(in_len, 0);
        ws_conn_free(w);
}

/* A head of exactly 'total' bytes: the request line, Host and one field
 * padding it out. */
static char *head_of_size(size_t total) {
        static const char start[] = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
        cr_assert_geq(total, sizeof(start) - 1 + 4);
        char *h = malloc(total);
        cr_assert_not_null(h);
        memcpy(h, start, sizeof(start) - 1);
        memset(h + sizeof(start) - 1, 'a', total - (sizeof(start) - 1) - 4);
        memcpy(h + total - 4, "\r\n\r\n", 4);
        return h;
}

Test(wsconn, head_errors_and_their_status) {
        static const struct {
                const char *name;
                const char *head; /* NULL: a head of 'size' bytes */
                size_t size;
                int error; /* 0: a request */
                unsigned status;
                const char *status_line;
        } cases[] = {
                {"HTTP/1.0", "GET / HTTP/1.0\r\nHost: h\r\n\r\n", 0, -EPROTONOSUPPORT, 505,
                 "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
                {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 0, -EPROTONOSUPPORT, 505,
                 "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
                {"no Host", "GET / HTTP/1.1\r\n\r\n", 0, -EBADMSG, 400, "HTTP/1.1 400 Bad Request\r\n"},
                {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, -EBADMSG, 400,
                 "HTTP/1.1 400 Bad Request\r\n"},
                {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 0, -EBADMSG, 400,
                 "HTTP/1.1 400 Bad Request\r\n"},
                {"bad request line", "GARBAGE\r\n\r\n", 0, -EBADMSG, 400, "HTTP/1.1 400 Bad Request\r\n"},
                {"lone CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", 0, -EBADMSG, 400,
                 "HTTP/1.1 400 Bad Request\r\n"},
                {"absolute target", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 0, -EBADMSG, 400,
                 "HTTP/1.1 400 Bad Request\r\n"},
                {"exactly the limit", NULL, HTTP_HEAD_MAX, 0, 0, NULL},
                {"one over the limit", NULL, HTTP_HEAD_MAX + 1, -E2BIG, 431,
                 "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
                {"far over the limit", NULL, 3 * HTTP_HEAD_MAX, -E2BIG, 431,
                 "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
        };
        static const size_t steps[] = {0, 1, 7, 1000, HTTP_HEAD_MAX};
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
                        const char *name = cases[i].name;
                        size_t n = cases[i].head ? strlen(cases[i].head) : cases[i].size;
                        char *head = cases[i].head ? copy(cases[i].head, n) : head_of_size(n);
                        size_t step = steps[s] ? steps[s] : n;
                        WsConn *w = new_conn();
                        Evs e = {0};
                        size_t off = 0;
                        /* As the hub does: read until an event, answer it. */
                        while (off < n && e.n == 0) {
                                size_t k = n - off < step ? n - off : step;
                                cr_assert_eq(feed(w, head + off, k, NO_LIMIT, &e, false), 0, "%s", name);
                                off += k;
                        }
                        cr_assert_eq(e.n, 1, "%s, step %zu: %zu events", name, step, e.n);
                        if (cases[i].error == 0) {
                                cr_assert_eq(e.ev[0].type, WS_EVENT_REQUEST, "%s: event %d", name,
                                             e.ev[0].type);
                                cr_assert_eq(e.ev[0].len, n);
                                evs_clear(&e);
                                free(head);
                                ws_conn_free(w);
                                continue;
                        }
                        cr_assert_eq(e.ev[0].type, WS_EVENT_ERROR, "%s: event %d", name, e.ev[0].type);
                        cr_assert_eq(e.ev[0].error, cases[i].error, "%s: error %d, expected %d", name,
                                     e.ev[0].error, cases[i].error);
                        cr_assert_eq(ws_http_status(e.ev[0].error), cases[i].status);
                        /* Nothing queued: the hub answers. */
                        cr_assert_eq(w->phase, WS_PHASE_REQUEST, "%s", name);
                        cr_assert_not(ws_conn_has_control(w), "%s", name);
                        cr_assert_not(ws_conn_finished(w), "%s", name);
                        /* More input before the answer gives the same error. */
                        cr_assert_eq(feed(w, "\r\n\r\n", 4, NO_LIMIT, &e, false), 0);
                        cr_assert_eq(e.n, 2, "%s: %zu events", name, e.n);
                        cr_assert_eq(e.ev[1].type, WS_EVENT_ERROR);
                        cr_assert_eq(e.ev[1].error, cases[i].error);
                        cr_assert_not(ws_conn_has_control(w), "%s", name);

                        cr_assert_eq(ws_conn_respond(w, cases[i].status, "", "x\n", 2, false), 0);
                        cr_assert_eq(w->phase, WS_PHASE_RESPONDED);
                        cr_assert_eq(ws_conn_pending_input(w), 0);
                        /* The rest of the head, and anything after it, is ignored. */
                        if (off < n)
                                cr_assert_eq(feed(w, head + off, n - off, NO_LIMIT, &e, false), 0);
                        cr_assert_eq(feed(w, rfc_request, RFC_REQUEST_LEN, NO_LIMIT, &e, false), 0);
                        cr_assert_eq(e.n, 2, "%s: events after the answer", name);
                        uint8_t out[256];
                        size_t len = drain(w, 0, out, sizeof(out));
                        size_t sl = strlen(cases[i].status_line);
                        cr_assert_geq(len, sl);
                        cr_assert(memcmp(out, cases[i].status_line, sl) == 0, "%s: '%.*s'", name, (int)len,
                                  out);
                        cr_assert(ws_conn_finished(w), "%s", name);
                        evs_clear(&e);
                        free(head);
                        ws_conn_free(w);
                }
}

Test(wsconn, http_status_and_reason) {
        static const struct {
                int error;
                unsigned status;
        } errors[] = {
                {-EBADMSG, 400}, {-E2BIG, 431}, {-EPROTONOSUPPORT, 505}, {-EINVAL, 400}, {0, 400},
        };
        for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
                cr_assert_eq(ws_http_status(errors[i].error), errors[i].status, "error %d: %u",
                             errors[i].error, ws_http_status(errors[i].error));

        static const struct {
                unsigned status;
                const char *reason;
        } reasons[] = {
                {101, "Switching Protocols"},
                {200, "OK"},
                {400, "Bad Request"},
                {403, "Forbidden"},
                {404, "Not Found"},
                {405, "Method Not Allowed"},
                {408, "Request Timeout"},
                {426, "Upgrade Required"},
                {431, "Request Header Fields Too Large"},
                {500, "Internal Server Error"},
                {503, "Service Unavailable"},
                {505, "HTTP Version Not Supported"},
                {418, "Unknown"},
        };
        for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
                cr_assert_str_eq(ws_http_reason(reasons[i].status), reasons[i].reason);
}

/* --- answers ---------------------------------------------------------------------- */

Test(wsconn, accept_answers_the_rfc_sample_key) {
        /* The 101 byte for byte, sent in every bite size; the connection
         * opens at once (the frames after the head are the client's). */
        for (size_t bite = 0; bite <= RFC_RESPONSE_LEN; bite++) {
                WsConn *w = new_conn();
                Evs e = {0};
                cr_assert_eq(feed(w, rfc_request, RFC_REQUEST_LEN, NO_LIMIT, &e, false), 0);
                cr_assert_eq(e.n, 1);
                cr_assert_eq(ws_conn_accept(w), 0);
                cr_assert_eq(w->phase, WS_PHASE_OPEN);
                cr_assert(ws_conn_open(w));
                cr_assert(ws_conn_has_control(w));
                cr_assert_not(ws_conn_finished(w));
                cr_assert_null(w->head, "the head is kept after the answer");
                cr_assert_eq(ws_conn_pending_input(w), 0);
                uint8_t out[512];
                size_t n = drain(w, bite, out, sizeof(out));
                cr_assert_eq(n, RFC_RESPONSE_LEN, "bite %zu: %zu bytes", bite, n);
                cr_assert(memcmp(out, rfc_response, n) == 0, "bite %zu: '%.*s'", bite, (int)n, out);
                cr_assert(ws_conn_open(w));
                cr_assert_not(ws_conn_finished(w), "an open connection is not finished");
                evs_clear(&e);
                ws_conn_free(w);
        }
}

Test(wsconn, respond_writes_the_whole_answer) {
        static const struct {
                unsigned status;
                const char *headers;
                const char *body;
                size_t body_len;
                bool head_only;
                const char *want;
                size_t want_len;
        } cases[] = {
#define S(s) s, sizeof(s) - 1
                {404, "", S("404 Not Found: nope\n"), false,
                 S("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 20\r\n\r\n"
                   "404 Not Found: nope\n")},
                {200, "Content-Type: text/html\r\nCache-Control: no-store\r\n", S("<p>hi</p>"), false,
                 S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n"
                   "Content-Type: text/html\r\nCache-Control: no-store\r\n\r\n<p>hi</p>")},
                {200, "Content-Type: text/html\r\n", S("<p>hi</p>"), true,
                 S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 9\r\n"
                   "Content-Type: text/html\r\n\r\n")},
                {405, "Allow: GET, HEAD\r\n", S("only GET\n"), false,
                 S("HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 9\r\n"
                   "Allow: GET, HEAD\r\n\r\nonly GET\n")},
                {426, "Sec-WebSocket-Version: 13\r\n", S(""), false,
                 S("HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Length: 0\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")},
                {200, "", S("a\0b\r\n"), false,
                 S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\na\0b\r\n")},
                {599, "", S(""), true,
                 S("HTTP/1.1 599 Unknown\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")},
#undef S
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                for (size_t bite = 0; bite < 12; bite += 5) {
                        WsConn *w = new_conn();
                        Evs e = {0};
                        static const char get[] = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
                        cr_assert_eq(feed(w, get, sizeof(get) - 1, NO_LIMIT, &e, false), 0);
                        cr_assert_eq(ws_conn_respond(w, cases[i].status, cases[i].headers, cases[i].body,
                                                     cases[i].body_len, cases[i].head_only),
                                     0);
                        cr_assert_eq(w->phase, WS_PHASE_RESPONDED);
                        cr_assert_not(ws_conn_open(w));
                        cr_assert(ws_conn_has_control(w));
                        cr_assert_not(ws_conn_finished(w));
                        cr_assert_null(w->head);
                        uint8_t out[512];
                        size_t n = drain(w, bite, out, sizeof(out));
                        cr_assert_eq(n, cases[i].want_len, "case %zu: %zu bytes: '%.*s'", i, n, (int)n, out);
                        cr_assert(memcmp(out, cases[i].want, n) == 0, "case %zu: '%.*s'", i, (int)n, out);
                        cr_assert(ws_conn_finished(w), "case %zu: not finished once sent", i);
                        evs_clear(&e);
                        ws_conn_free(w);
                }
}

Test(wsconn, respond_with_a_large_body_in_bites) {
        size_t len = 200000;
        char *body = malloc(len);
        cr_assert_not_null(body);
        for (size_t i = 0; i < len; i++)
                body[i] = (char)(i * 31 + 7);
        WsConn *w = new_conn();
        Evs e = {0};
        static const char get[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        feed(w, get, sizeof(get) - 1, NO_LIMIT, &e, false);
        cr_assert_eq(ws_conn_respond(w, 200, "", body, len, false), 0);
        uint8_t *out = malloc(len + 256);
        cr_assert_not_null(out);
        size_t n = drain(w, 4093, out, len + 256);
        static const char want[] = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 200000\r\n\r\n";
        cr_assert_eq(n, sizeof(want) - 1 + len);
        cr_assert(memcmp(out, want, sizeof(want) - 1) == 0);
        cr_assert(memcmp(out + sizeof(want) - 1, body, len) == 0);
        cr_assert(ws_conn_finished(w));
        free(out);
        free(body);
        evs_clear(&e);
        ws_conn_free(w);
}

Test(wsconn, respond_headers_too_long_changes_nothing) {
        WsConn *w = new_conn();
        Evs e = {0};
        static const char get[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        feed(w, get, sizeof(get) - 1, NO_LIMIT, &e, false);
        char headers[2048];
        memset(headers, 'a', sizeof(headers) - 3);
        memcpy(headers + sizeof(headers) - 3, "\r\n", 3);
        cr_assert_lt(ws_conn_respond(w, 200, headers, "x", 1, false), 0);
        cr_assert_eq(w->phase, WS_PHASE_REQUEST);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert_not_null(w->head);
        cr_assert_eq(ws_conn_respond(w, 500, "", "", 0, false), 0);
        cr_assert_eq(w->phase, WS_PHASE_RESPONDED);
        evs_clear(&e);
        ws_conn_free(w);
}

/* --- messages ------------------------------------------------------------------------ */

Test(wsconn, a_message_in_one_frame_is_handed_out_in_place) {
        static char big[70000];
        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (char)(i % 200 + 11);
        static const struct {
                uint8_t opcode;
                const char *payload;
                size_t len;
        } cases[] = {
                {WS_OP_TEXT, "hello", 5},
                {WS_OP_TEXT, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e", 16},
                {WS_OP_BINARY, "\x00\xff\r\x80", 4},
                {WS_OP_TEXT, "", 0},
                {WS_OP_BINARY, "", 0},
                {WS_OP_BINARY, big, 125},
                {WS_OP_BINARY, big, 126},
                {WS_OP_BINARY, big, 0xFFFF},
                {WS_OP_BINARY, big, 0x10000},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                WsConn *w = open_conn();
                Evs e = {0};
                /* Three of them in one read, all in place, in order. */
                size_t n = 0;
                for (int k = 0; k < 3; k++)
                        n = frame(stream, n, FIN | cases[i].opcode, cases[i].payload, cases[i].len, true);
                feed_steps(w, stream, n, 0, NO_LIMIT, &e);
                cr_assert_eq(e.n, 3, "case %zu: %zu events", i, e.n);
                for (int k = 0; k < 3; k++) {
                        expect_message(&e.ev[k], cases[i].payload, cases[i].len,
                                       cases[i].opcode == WS_OP_TEXT);
                        cr_assert(cases[i].len == 0 || e.ev[k].in_place, "case %zu: copied", i);
                        cr_assert_eq(e.ev[k].pending, 0);
                }
                cr_assert_eq(ws_conn_pending_input(w), 0);
                cr_assert_not(ws_conn_has_control(w));
                evs_clear(&e);
                ws_conn_free(w);
        }
}

Test(wsconn, fragmented_messages_are_gathered) {
        /* Fragments in reads of their own: the bytes so far are pending
         * input, let go once the message is handed out. */
        WsConn *w = open_conn();
        Evs e = {0};
        static const struct {
                uint8_t b0;
                const char *payload;
                size_t pending;
        } reads[] = {
                {WS_OP_TEXT, "abc", 3},      {FIN | WS_OP_PING, "x", 3},
                {WS_OP_CONTINUATION, "", 3}, {WS_OP_CONTINUATION, "de", 5},
                {FIN | WS_OP_PONG, "", 5},   {FIN | WS_OP_CONTINUATION, "f", 0},
        };
        for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
                size_t n = frame(stream, 0, reads[i].b0, reads[i].payload, strlen(reads[i].payload), true);
                feed_steps(w, stream, n, 0, NO_LIMIT, &e);
                cr_assert_eq(ws_conn_pending_input(w), reads[i].pending, "read %zu: %zu pending", i,
                             ws_conn_pending_input(w));
        }
        cr_assert_eq(e.n, 1);
        expect_message(&e.ev[0], "abcdef", 6, true);
        cr_assert_not(e.ev[0].in_place);
        cr_assert_eq(e.ev[0].pending, 0, "a message handed out is not pending");
        evs_clear(&e);

        /* One frame cut across three reads is gathered as well. */
        size_t n = frame(stream, 0, FIN | WS_OP_BINARY, "0123456789", 10, true);
        feed_steps(w, stream, 4, 0, NO_LIMIT, &e);
        cr_assert_eq(ws_conn_pending_input(w), 0, "only the header so far");
        feed_steps(w, stream + 4, 9, 0, NO_LIMIT, &e);
        cr_assert_eq(ws_conn_pending_input(w), 7);
        feed_steps(w, stream + 13, n - 13, 0, NO_LIMIT, &e);
        cr_assert_eq(e.n, 1);
        expect_message(&e.ev[0], "0123456789", 10, false);
        cr_assert_not(e.ev[0].in_place);
        cr_assert_eq(ws_conn_pending_input(w), 0);
        evs_clear(&e);

        /* All fragments in one read: still one message, gathered; then a
         * message in place, unaffected by the buffer of the one before. */
        n = frame(stream, 0, WS_OP_BINARY, "ab", 2, true);
        n = frame(stream, n, WS_OP_CONTINUATION, "cd", 2, true);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "e", 1, true);
        n = text(stream, n, "next");
        feed_steps(w, stream, n, 0, NO_LIMIT, &e);
        cr_assert_eq(e.n, 2);
        expect_message(&e.ev[0], "abcde", 5, false);
        expect_message(&e.ev[1], "next", 4, true);
        cr_assert(e.ev[1].in_place);
        cr_assert_eq(ws_conn_pending_input(w), 0);
        evs_clear(&e);
        ws_conn_free(w);
}

Test(wsconn, control_frames_between_fragments) {
        /* frag, ping, pong, frag, ping, frag: cut anywhere, one message and
         * one pong, for the latest ping. */
        size_t n = frame(stream, 0, WS_OP_TEXT, "ab", 2, true);
        n = ping(stream, n, "first");
        n = frame(stream, n, FIN | WS_OP_PONG, "y", 1, true);
        n = frame(stream, n, WS_OP_CONTINUATION, "cd", 2, true);
        n = ping(stream, n, "second");
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "ef", 2, true);
        for (size_t cut = 0; cut <= n; cut++) {
                WsConn *w = open_conn();
                Evs e = {0};
                feed_steps(w, stream, cut, 0, NO_LIMIT, &e);
                feed_steps(w, stream + cut, n - cut, 0, NO_LIMIT, &e);
                cr_assert_eq(e.n, 1, "cut %zu: %zu events", cut, e.n);
                expect_message(&e.ev[0], "abcdef", 6, true);
                SFrame f[4];
                cr_assert_eq(drain_frames(w, 0, f, 4), 1, "cut %zu", cut);
                expect_frame(&f[0], WS_OP_PONG, "second");
                cr_assert(ws_conn_open(w));
                evs_clear(&e);
                ws_conn_free(w);
        }
}

Test(wsconn, pings_are_answered_with_the_latest_payload) {
        WsConn *w = open_conn();
        Evs e = {0};
        size_t n = ping(stream, 0, "a");
        n = ping(stream, n, "bb");
        n = ping(stream, n, "");
        n = ping(stream, n, "ccc");
        feed_steps(w, stream, n, 0, NO_LIMIT, &e);
        cr_assert_eq(e.n, 0, "pings make no event");
        cr_assert(ws_conn_has_control(w));
        SFrame f[4];
        cr_assert_eq(drain_frames(w, 0, f, 4), 1);
        expect_frame(&f[0], WS_OP_PONG, "ccc");

        /* A pong on the wire is never rewritten: a ping arriving while one is
         * part sent gets its own pong after it. */
        n = ping(stream, 0, "one");
        feed_steps(w, stream, n, 0, NO_LIMIT, &e);
        const uint8_t *p;
        cr_assert_eq(ws_conn_control(w, &p), 5);
        ws_conn_control_sent(w, 2);
        n = ping(stream, 0, "two");
        n = ping(stream, n, "three");
        feed_steps(w, stream, n, 0, NO_LIMIT, &e);
        uint8_t out[64];
        cr_assert_eq(ws_conn_control(w, &p), 3, "the rest of the first pong");
        memcpy(out, "\x8a\x03", 2);
        size_t len = 2 + drain(w, 1, out + 2, sizeof(out) - 2);
        cr_assert_eq(parse_frames(out, len, f, 4), 2);
        expect_frame(&f[0], WS_OP_PONG, "one");
        expect_frame(&f[1], WS_OP_PONG, "three");

        /* The largest ping payload, echoed whole. */
        char pl[126];
        memset(pl, 'z', 125);
        pl[125] = '\0';
        n = ping(stream, 0, pl);
        feed_steps(w, stream, n, 0, NO_LIMIT, &e);
        cr_assert_eq(drain_frames(w, 0, f, 4), 1);
        expect_frame(&f[0], WS_OP_PONG, pl);
        cr_assert_eq(e.n, 0);
        ws_conn_free(w);
}

Test(wsconn, pongs_are_ignored) {
        WsConn *w = open_conn();
        Evs e = {0};
        size_t n = frame(stream, 0, FIN | WS_OP_PONG, "", 0, true);
        n = frame(stream, n, FIN | WS_OP_PONG, "unsolicited", 11, true);
        n = text(stream, n, "after");
        feed_steps(w, stream, n, 1, NO_LIMIT, &e);
        cr_assert_eq(e.n, 1);
        expect_message(&e.ev[0], "after", 5, true);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert(ws_conn_open(w));
        evs_clear(&e);
        ws_conn_free(w);
}

Test(wsconn, close_is_echoed_and_input_ignored_after) {
        static const struct {
                int code; /* < 0: an empty close */
                const char *reason;
                uint16_t event_code;
                int echoed; /* < 0: an empty close */
                const char *echoed_reason;
        } cases[] = {
                {-1, "", WS_CLOSE_NO_STATUS, -1, NULL},
                {1000, "", 1000, 1000, ""},
                {1000, "bye", 1000, 1000, ""},
                {3000, "app", 3000, 3000, ""},
                {4999, "", 4999, 4999, ""},
                /* Codes the server sends too: echoed without a reason of ours. */
                {1001, "tab closed", 1001, 1001, ""},
                {1002, "", 1002, 1002, ""},
                {1009, "", 1009, 1009, ""},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                for (size_t step = 0; step < 3; step++) {
                        WsConn *w = open_conn();
                        Evs e = {0};
                        size_t n = text(stream, 0, "before");
                        n = close_frame(stream, n, cases[i].code, cases[i].reason);
                        /* Ignored: a message, a ping, an unmasked frame. */
                        n = text(stream, n, "after");
                        n = ping(stream, n, "late");
                        n = frame(stream, n, FIN | WS_OP_TEXT, "x", 1, false);
                        feed_steps(w, stream, n, step, NO_LIMIT, &e);
                        cr_assert_eq(e.n, 2, "case %zu: %zu events", i, e.n);
                        expect_message(&e.ev[0], "before", 6, true);
                        cr_assert_eq(e.ev[1].type, WS_EVENT_CLOSE);
                        cr_assert_eq(e.ev[1].close_code, cases[i].event_code, "case %zu: code %u", i,
                                     e.ev[1].close_code);
                        cr_assert_eq(w->phase, WS_PHASE_CLOSING);
                        cr_assert_not(ws_conn_open(w));
                        cr_assert(ws_conn_has_control(w));
                        cr_assert_not(ws_conn_finished(w));
                        /* A later read, even garbage, is read and ignored. */
                        feed_steps(w, "\xff\xff\xff\xff", 4, 0, NO_LIMIT, &e);
                        cr_assert_eq(e.n, 2);
                        SFrame f[4];
                        cr_assert_eq(drain_frames(w, step, f, 4), 1, "case %zu", i);
                        expect_close(&f[0], cases[i].echoed, cases[i].echoed_reason);
                        cr_assert(ws_conn_finished(w));
                        evs_clear(&e);
                        ws_conn_free(w);
                }
}

Test(wsconn, errors_queue_their_close_code_and_stop_input) {
        static char over[20];
        memset(over, 'o', sizeof(over));
        static const struct {
                const char *name;
                struct {
                        uint8_t b0;
                        const char *payload;
                        size_t len;
                        bool unmasked;
                } frames[3];
                int error;
                uint16_t code;
                const char *reason;
        } cases[] = {
                {"unmasked", {{FIN | WS_OP_TEXT, "hi", 2, true}}, -EPROTO, 1002, NULL},
                {"RSV1", {{FIN | 0x40 | WS_OP_TEXT, "hi", 2, false}}, -EPROTO, 1002, NULL},
                {"opcode 3", {{FIN | 0x3, "hi", 2, false}}, -EPROTO, 1002, NULL},
                {"lone continuation", {{FIN | WS_OP_CONTINUATION, "hi", 2, false}}, -EPROTO, 1002, NULL},
                {"new message inside one",
                 {{WS_OP_TEXT, "a", 1, false}, {FIN | WS_OP_TEXT, "b", 1, false}},
                 -EPROTO,
                 1002,
                 NULL},
                {"fragmented ping", {{WS_OP_PING, "", 0, false}}, -EPROTO, 1002, NULL},
                {"1-byte close", {{FIN | WS_OP_CLOSE, "\x03", 1, false}}, -EPROTO, 1002, NULL},
                {"close code 999", {{FIN | WS_OP_CLOSE, "\x03\xe7", 2, false}}, -EPROTO, 1002, NULL},
                {"close code 1005", {{FIN | WS_OP_CLOSE, "\x03\xed", 2, false}}, -EPROTO, 1002, NULL},
                {"invalid UTF-8", {{FIN | WS_OP_TEXT, "\xc3\x28", 2, false}}, -EILSEQ, 1007, NULL},
                {"close reason not UTF-8",
                 {{FIN | WS_OP_CLOSE, "\x03\xe8\xff", 3, false}},
                 -EILSEQ,
                 1007,
                 NULL},
                {"surrogate", {{FIN | WS_OP_TEXT, "\xed\xa0\x80", 3, false}}, -EILSEQ, 1007, NULL},
                {"text cut inside a character",
                 {{FIN | WS_OP_TEXT, "\xe2\x82", 2, false}},
                 -EILSEQ,
                 1007,
                 NULL},
                {"invalid UTF-8 in a later fragment",
                 {{WS_OP_TEXT, "ok", 2, false}, {FIN | WS_OP_CONTINUATION, "\x80", 1, false}},
                 -EILSEQ,
                 1007,
                 NULL},
                {"LF in text",
                 {{FIN | WS_OP_TEXT, "a\nb", 3, false}},
                 -EBADMSG,
                 1003,
                 "message contains a line feed"},
                {"LF alone",
                 {{FIN | WS_OP_TEXT, "\n", 1, false}},
                 -EBADMSG,
                 1003,
                 "message contains a line feed"},
                {"LF in binary",
                 {{FIN | WS_OP_BINARY, "\x00\n\xff", 3, false}},
                 -EBADMSG,
                 1003,
                 "message contains a line feed"},
                {"LF in a later fragment",
                 {{WS_OP_BINARY, "ab", 2, false}, {FIN | WS_OP_CONTINUATION, "c\n", 2, false}},
                 -EBADMSG,
                 1003,
                 "message contains a line feed"},
                {"over the limit", {{FIN | WS_OP_BINARY, over, 11, false}}, -EMSGSIZE, 1009, NULL},
                {"fragments over the limit",
                 {{WS_OP_TEXT, over, 6, false}, {FIN | WS_OP_CONTINUATION, over, 5, false}},
                 -EMSGSIZE,
                 1009,
                 NULL},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                for (size_t step = 0; step < 4; step++) {
                        const char *name = cases[i].name;
                        WsConn *w = open_conn();
                        Evs e = {0};
                        /* A message and a ping first: both still count. */
                        size_t n = text(stream, 0, "ok");
                        n = ping(stream, n, "p");
                        for (size_t k = 0; k < 3 && cases[i].frames[k].b0; k++)
                                n = frame(stream, n, cases[i].frames[k].b0, cases[i].frames[k].payload,
                                          cases[i].frames[k].len, !cases[i].frames[k].unmasked);
                        /* After the error: ignored. */
                        n = text(stream, n, "after");
                        n = ping(stream, n, "late");
                        n = close_frame(stream, n, 1000, "");
                        feed_steps(w, stream, n, step, 10, &e);
                        cr_assert_eq(e.n, 2, "%s, step %zu: %zu events", name, step, e.n);
                        expect_message(&e.ev[0], "ok", 2, true);
                        cr_assert_eq(e.ev[1].type, WS_EVENT_ERROR, "%s: event %d", name, e.ev[1].type);
                        cr_assert_eq(e.ev[1].error, cases[i].error, "%s: error %d", name, e.ev[1].error);
                        cr_assert_eq(e.ev[1].close_code, cases[i].code, "%s: code %u", name,
                                     e.ev[1].close_code);
                        cr_assert_eq(w->phase, WS_PHASE_CLOSING, "%s", name);
                        cr_assert_not(ws_conn_open(w));
                        cr_assert_not(ws_conn_finished(w));
                        feed_steps(w, stream, n, 0, 10, &e);
                        cr_assert_eq(e.n, 2, "%s: input after the error made events", name);
                        SFrame f[4];
                        cr_assert_eq(drain_frames(w, step, f, 4), 2, "%s", name);
                        expect_frame(&f[0], WS_OP_PONG, "p");
                        expect_close(&f[1], cases[i].code, cases[i].reason);
                        cr_assert(ws_conn_finished(w), "%s", name);
                        evs_clear(&e);
                        ws_conn_free(w);
                }
}

Test(wsconn, max_payload_exactly_at_and_one_over) {
        static char data[70000];
        memset(data, 'd', sizeof(data));
        static const struct {
                uint64_t max;
                size_t parts[3]; /* fragment sizes; 0 ends the list, unless first */
                size_t n_parts;
                bool ok;
        } cases[] = {
                {0, {0}, 1, true},          {0, {1}, 1, false},           {10, {10}, 1, true},
                {10, {11}, 1, false},       {10, {4, 0, 6}, 3, true},     {10, {4, 0, 7}, 3, false},
                {10, {5, 6}, 2, false},     {200, {200}, 1, true},        {200, {201}, 1, false},
                {200, {100, 100}, 2, true}, {200, {100, 101}, 2, false},  {65536, {65536}, 1, true},
                {65536, {65537}, 1, false}, {65536, {65535, 1}, 2, true}, {65536, {65535, 2}, 2, false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                for (size_t step = 0; step < 2; step++) {
                        WsConn *w = open_conn();
                        Evs e = {0};
                        size_t n = 0, total = 0;
                        for (size_t k = 0; k < cases[i].n_parts; k++) {
                                uint8_t b0 = (k == 0 ? WS_OP_TEXT : WS_OP_CONTINUATION) |
                                             (k + 1 == cases[i].n_parts ? FIN : 0);
                                n = frame(stream, n, b0, data, cases[i].parts[k], true);
                                total += cases[i].parts[k];
                        }
                        feed_steps(w, stream, n, step ? 1000 : 0, cases[i].max, &e);
                        cr_assert_eq(e.n, 1, "case %zu: %zu events", i, e.n);
                        if (cases[i].ok) {
                                expect_message(&e.ev[0], data, total, true);
                                cr_assert(ws_conn_open(w));
                        } else {
                                cr_assert_eq(e.ev[0].type, WS_EVENT_ERROR, "case %zu: event %d", i,
                                             e.ev[0].type);
                                cr_assert_eq(e.ev[0].error, -EMSGSIZE);
                                cr_assert_eq(e.ev[0].close_code, WS_CLOSE_TOO_BIG);
                                SFrame f[2];
                                cr_assert_eq(drain_frames(w, 0, f, 2), 1);
                                expect_close(&f[0], WS_CLOSE_TOO_BIG, NULL);
                        }
                        evs_clear(&e);
                        ws_conn_free(w);
                }

        /* Too big is known at the header: no payload needed. */
        WsConn *w = open_conn();
        Evs e = {0};
        size_t n = frame(stream, 0, FIN | WS_OP_BINARY, data, 1000, true);
        feed_steps(w, stream, 8, 0, 999, &e);
        cr_assert_eq(e.n, 1);
        cr_assert_eq(e.ev[0].error, -EMSGSIZE);
        cr_assert_eq(ws_conn_pending_input(w), 0);
        feed_steps(w, stream + 8, n - 8, 0, 999, &e);
        cr_assert_eq(e.n, 1);
        ws_conn_free(w);
}

/* --- control output ---------------------------------------------------------------- */

Test(wsconn, control_composed_pong_ping_close_in_any_bites) {
        /* A pong, the hub's ping and its close, all pending at once: one
         * composition, in that order, the same bytes in every bite size. */
        uint8_t first[512];
        size_t first_len = 0;
        for (size_t bite = 0; bite <= 40; bite++) {
                WsConn *w = open_conn();
                Evs e = {0};
                size_t n = ping(stream, 0, "payload");
                feed_steps(w, stream, n, 0, NO_LIMIT, &e);
                ws_conn_ping(w);
                cr_assert(ws_conn_open(w));
                ws_conn_close(w, WS_CLOSE_GOING_AWAY);
                ws_conn_close(w, WS_CLOSE_NORMAL); /* once: the first code counts */
                cr_assert_not(ws_conn_open(w), "data frames go on after a close");
                cr_assert_eq(w->phase, WS_PHASE_CLOSING);
                uint8_t out[512];
                size_t len = drain(w, bite, out, sizeof(out));
                SFrame f[4];
                cr_assert_eq(parse_frames(out, len, f, 4), 3, "bite %zu", bite);
                expect_frame(&f[0], WS_OP_PONG, "payload");
                expect_frame(&f[1], WS_OP_PING, "");
                expect_close(&f[2], WS_CLOSE_GOING_AWAY, NULL);
                if (bite == 0) {
                        memcpy(first, out, len);
                        first_len = len;
                } else {
                        cr_assert_eq(len, first_len);
                        cr_assert(memcmp(out, first, len) == 0, "bite %zu: other bytes", bite);
                }
                cr_assert(ws_conn_finished(w));
                /* A close after the close changes nothing. */
                ws_conn_close(w, WS_CLOSE_NORMAL);
                cr_assert_not(ws_conn_has_control(w));
                cr_assert(ws_conn_finished(w));
                evs_clear(&e);
                ws_conn_free(w);
        }
}

Test(wsconn, control_queued_during_a_partial_send_follows_it) {
        /* A close asked for while a pong is part sent: the rest of the pong,
         * then the close; the pong is not recomposed. */
        WsConn *w = open_conn();
        Evs e = {0};
        size_t n = ping(stream, 0, "abc");
        feed_steps(w, stream, n, 0, NO_LIMIT, &e);
        const uint8_t *p;
        cr_assert_eq(ws_conn_control(w, &p), 5);
        cr_assert(memcmp(p,
                         "\x8a\x03"
                         "abc",
                         5) == 0);
        ws_conn_control_sent(w, 3);
        ws_conn_ping(w);
        ws_conn_close(w, WS_CLOSE_GOING_AWAY);
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 2);
        cr_assert(memcmp(p, "bc", 2) == 0);
        ws_conn_control_sent(w, 0);
        cr_assert_eq(ws_conn_control(w, &p), 2, "a zero-byte send changes nothing");
        ws_conn_control_sent(w, 2);
        SFrame f[4];
        cr_assert_eq(drain_frames(w, 3, f, 4), 2);
        expect_frame(&f[0], WS_OP_PING, "");
        expect_close(&f[1], WS_CLOSE_GOING_AWAY, "server stopping");
        cr_assert(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 0);
        ws_conn_free(w);
}

Test(wsconn, has_control_and_finished_in_each_phase) {
        /* Step by step through each way a connection goes. */
        WsConn *w = new_conn();
        Evs e = {0};
        const uint8_t *p;
        feed(w, rfc_request, 10, NO_LIMIT, &e, false);
        cr_assert_eq(w->phase, WS_PHASE_REQUEST);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 0);
        feed(w, rfc_request + 10, RFC_REQUEST_LEN - 10, NO_LIMIT, &e, false);
        cr_assert_eq(e.n, 1);
        cr_assert_not(ws_conn_has_control(w), "a request alone queues nothing");
        cr_assert_not(ws_conn_finished(w));
        /* Open: the 101, then idle, then a ping. */
        cr_assert_eq(ws_conn_accept(w), 0);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), (ssize_t)RFC_RESPONSE_LEN);
        ws_conn_control_sent(w, 20);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        ws_conn_control_sent(w, RFC_RESPONSE_LEN - 20);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert(ws_conn_open(w));
        ws_conn_ping(w);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 2);
        cr_assert(memcmp(p, "\x89\x00", 2) == 0);
        ws_conn_control_sent(w, 2);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert(ws_conn_open(w));
        /* Closing: pending, composed and part sent, sent. */
        ws_conn_close(w, WS_CLOSE_NORMAL);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_not(ws_conn_open(w));
        cr_assert_eq(ws_conn_control(w, &p), 4);
        cr_assert(memcmp(p, "\x88\x02\x03\xe8", 4) == 0);
        ws_conn_control_sent(w, 3);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        ws_conn_control_sent(w, 1);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert(ws_conn_finished(w));
        ws_conn_free(w);

        /* Responded: pending, part sent, sent. */
        w = new_conn();
        feed(w, rfc_request, RFC_REQUEST_LEN, NO_LIMIT, &e, false);
        cr_assert_eq(ws_conn_respond(w, 403, "", "no\n", 3, false), 0);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_not(ws_conn_open(w));
        ssize_t n = ws_conn_control(w, &p);
        cr_assert_gt(n, 3);
        ws_conn_control_sent(w, (size_t)n - 1);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 1);
        cr_assert_eq(*p, '\n');
        ws_conn_control_sent(w, 1);
        cr_assert_not(ws_conn_has_control(w));
        cr_assert(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 0);
        ws_conn_free(w);

        /* The peer's close: its answer queued at once, finished once sent. */
        w = open_conn();
        size_t len = close_frame(stream, 0, -1, "");
        feed_steps(w, stream, len, 0, NO_LIMIT, &e);
        cr_assert_eq(e.ev[e.n - 1].type, WS_EVENT_CLOSE);
        cr_assert(ws_conn_has_control(w));
        cr_assert_not(ws_conn_finished(w));
        cr_assert_eq(ws_conn_control(w, &p), 2);
        cr_assert(memcmp(p, "\x88\x00", 2) == 0);
        ws_conn_control_sent(w, 2);
        cr_assert(ws_conn_finished(w));
        evs_clear(&e);
        ws_conn_free(w);
}

/* Calls out of order change nothing: a close or ping once the close frame
 * is composed, a close after an HTTP answer, and a second look at the
 * input before the request is answered (it must not move backwards). */
Test(wsconn, calls_out_of_order_change_nothing) {
        uint8_t out[1024];
        SFrame f[4];

        WsConn *w = open_conn();
        ws_conn_close(w, WS_CLOSE_GOING_AWAY);
        const uint8_t *p;
        cr_assert_gt(ws_conn_control(w, &p), 0); /* the close is composed */
        ws_conn_ping(w);
        ws_conn_close(w, WS_CLOSE_PROTOCOL_ERROR);
        size_t n = drain(w, 0, out, sizeof(out));
        cr_assert_eq(parse_frames(out, n, f, 4), 1, "something after the close");
        expect_close(&f[0], WS_CLOSE_GOING_AWAY, "server stopping");
        cr_assert(ws_conn_finished(w));
        ws_conn_free(w);

        w = new_conn();
        Evs e = {0};
        (void)feed(w, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", 28, NO_LIMIT, &e, false);
        cr_assert_eq(e.n, 1);
        evs_clear(&e);
        cr_assert_eq(ws_conn_respond(w, 404, "", "no\n", 3, false), 0);
        (void)drain(w, 0, out, sizeof(out));
        cr_assert(ws_conn_finished(w));
        ws_conn_close(w, WS_CLOSE_GOING_AWAY);
        ws_conn_ping(w);
        cr_assert(ws_conn_finished(w));
        cr_assert_not(ws_conn_has_control(w));
        ws_conn_free(w);

        static char buf[512];
        memcpy(buf, rfc_request, RFC_REQUEST_LEN);
        memcpy(buf + RFC_REQUEST_LEN, "XYZ", 3);
        w = new_conn();
        char *in = buf;
        size_t in_len = RFC_REQUEST_LEN + 3;
        WsEvent ev;
        for (int i = 0; i < 3; i++) {
                cr_assert_eq(ws_conn_next(w, &in, &in_len, NO_LIMIT, &ev), 1);
                cr_assert_eq(ev.type, WS_EVENT_REQUEST);
                cr_assert_eq(in, buf + RFC_REQUEST_LEN, "call %d moved the input to %td", i, in - buf);
                cr_assert_eq(in_len, 3);
                cr_assert_eq(ws_conn_pending_input(w), RFC_REQUEST_LEN);
        }
        ws_conn_free(w);
}

/* The framed form of broadcast messages (websocket.h): for every length
 * up to past 64 KiB and some beyond, in one or two payload pieces, the
 * frames parse back to the payload, as one message of the right opcode in
 * one or (only where one header would hold 0x0A) two fragments; no header
 * holds 0x0A; the trailer pong ends it; len counts every byte. */
static void expect_log_form(uint64_t len, bool text, size_t cut) {
        static uint8_t payload[1 << 21], out[(1 << 21) + 64];
        for (uint64_t i = 0; i < len; i++)
                payload[i] = (uint8_t)('a' + i % 26);
        struct iovec pieces[2] = {{.iov_base = payload, .iov_len = MIN(cut, len)},
                                  {.iov_base = payload + MIN(cut, len), .iov_len = len - MIN(cut, len)}};
        WsLogForm f;
        ws_log_form(&f, pieces, 2, text);
        size_t n = 0;
        for (size_t i = 0; i < f.n; i++) {
                memcpy(out + n, f.iov[i].iov_base, f.iov[i].iov_len);
                n += f.iov[i].iov_len;
        }
        cr_assert_eq(n, f.len, "length %llu", (unsigned long long)len);
        cr_assert(n >= 3 && memcmp(out + n - 3, WS_LOG_TRAILER, 3) == 0, "length %llu: no trailer",
                  (unsigned long long)len);
        size_t at = 0, got = 0, frames = 0;
        while (at < n - 3) {
                size_t h = 2, l = out[at + 1] & 0x7F;
                if (l == 126) {
                        l = (size_t)out[at + 2] << 8 | out[at + 3];
                        h = 4;
                } else if (l == 127) {
                        l = 0;
                        for (int i = 2; i < 10; i++)
                                l = l << 8 | out[at + i];
                        h = 10;
                }
                cr_assert_null(memchr(out + at, '\n', h), "length %llu: a header holds 0x0A",
                               (unsigned long long)len);
                uint8_t op = out[at] & 0x0F;
                bool fin = out[at] & 0x80;
                cr_assert_eq(op, frames == 0 ? (text ? WS_OP_TEXT : WS_OP_BINARY) : WS_OP_CONTINUATION);
                cr_assert(memcmp(out + at + h, payload + got, l) == 0);
                got += l;
                at += h + l;
                frames++;
                cr_assert_eq(fin, at == n - 3, "length %llu: FIN on frame %zu", (unsigned long long)len,
                             frames);
        }
        cr_assert_eq(at, n - 3);
        cr_assert_eq(got, len);
        uint8_t one[WSFRAME_HEADER_MAX];
        size_t hl = wsframe_header(one, WS_OP_TEXT, true, len);
        cr_assert_eq(frames, memchr(one, '\n', hl) ? 2 : 1, "length %llu: %zu frames",
                     (unsigned long long)len, frames);
}

Test(wsconn, log_form_of_every_length, .timeout = 60) {
        for (uint64_t len = 0; len <= 70000; len++)
                expect_log_form(len, len % 3 != 0, (size_t)(len * 7 / 11));
        static const uint64_t large[] = {0x0A0000, 0x0A0A0A, 0x0B0A00, 0x10000A, 0x1FFFFF, 0x0A00FF};
        for (size_t i = 0; i < ARRAY_SIZE(large); i++)
                expect_log_form(large[i], false, 5);
}
