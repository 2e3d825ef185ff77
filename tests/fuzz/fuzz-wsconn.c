/* Fuzz target: the WebSocket codec of one connection (src/websocket.h) on
 * an arbitrary client byte stream cut into arbitrary reads, driven as the
 * hub drives it: a complete request is accepted when http_ws_check() says
 * it is a valid upgrade and answered with an HTTP error otherwise, a head
 * error is answered with ws_http_status(); between reads the hub may ping
 * or close (only while open, as the hub does) and the write path takes the
 * control output in bites of any size.
 *
 * Properties: no crash, no leak (LeakSanitizer), no read past a read's
 * buffer (each read is a buffer of its own, scribbled over once used); the
 * input only moves forward within its read and is used up when
 * ws_conn_next() returns 0; the pending input stays within HTTP_HEAD_MAX +
 * max_payload; a message never holds an LF nor exceeds max_payload, and a
 * text one is valid UTF-8; an error in the open phase queues the close code
 * of its error; the phases only move forward and no event comes once the
 * connection closes or has answered. The control output is exactly the HTTP
 * answer (the 101 with the accept value of the key, or the response asked
 * for), then for a 101 only well-formed server control frames, each
 * composition in the order pong, ping, close, with the hub's ping in it
 * exactly when one was asked for, the close exactly when one is due (with
 * the expected code: the hub's, the error's, or the peer's echoed without
 * a reason, none for none), and nothing ever after the close. Once finished, the connection
 * stays finished, with nothing left to send.
 *
 * Input: the message limit (2 bytes; 0xFFFF: none), then three lists, each
 * a count byte and one byte per entry, used in turn: read sizes, control
 * bites (0: all that is offered) and actions (one a read: bits 0-1 how many
 * bites to send, 3 meaning all; bit 2 the hub pings, bit 3 it closes with
 * 1001); then the stream. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "util.h"
#include "websocket.h"

#define MAX_LIST 16

typedef struct List {
        uint8_t v[MAX_LIST];
        size_t n, next;
} List;

static void list_read(List *l, FuzzInput *in, size_t max) {
        l->n = 1 + fuzz_u8(in) % max;
        l->next = 0;
        for (size_t i = 0; i < l->n; i++)
                l->v[i] = fuzz_u8(in);
}

static uint8_t list_next(List *l) {
        uint8_t v = l->v[l->next];
        l->next = (l->next + 1) % l->n;
        return v;
}

typedef struct State {
        WsConn *w;
        uint64_t max;
        List bites, actions;
        /* The HTTP answer expected first on the wire, and whether it is a 101. */
        uint8_t *http;
        size_t http_len;
        bool upgraded, answered, http_sent;
        /* The control output: a new composition starts at the next
         * ws_conn_control() (the previous one is sent whole). */
        bool fresh;
        bool hub_ping;   /* asked for since the last composition */
        int want_close;  /* -2: none due; -1: an empty close; else the code */
        bool close_echo; /* it answers the peer's: no reason of ours */
        bool close_sent; /* composed */
        bool finished;
        WsPhase phase;
} State;

static void answer(State *s, unsigned status, bool head_only) {
        static const char body[] = "refused\n";
        char head[256];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n", status,
                         ws_http_reason(status), sizeof(body) - 1);
        if (n < 0 || (size_t)n >= sizeof(head))
                abort();
        s->http_len = (size_t)n + (head_only ? 0 : sizeof(body) - 1);
        s->http = malloc(s->http_len);
        if (!s->http)
                abort();
        memcpy(s->http, head, (size_t)n);
        memcpy(s->http + n, body, s->http_len - (size_t)n);
        if (ws_conn_respond(s->w, status, "", body, sizeof(body) - 1, head_only) != 0)
                abort();
        if (s->w->phase != WS_PHASE_RESPONDED || ws_conn_open(s->w) || ws_conn_pending_input(s->w) != 0)
                abort();
        s->answered = true;
        s->phase = WS_PHASE_RESPONDED;
}

static void on_request(State *s) {
        WsConn *w = s->w;
        if (w->req.head_len == 0 || w->req.head_len > HTTP_HEAD_MAX || !w->head)
                abort();
        int r = http_ws_check(&w->req, w->head);
        if (r == 1) {
                char key[HTTP_WS_ACCEPT_SIZE];
                if (http_ws_accept(w->head + w->req.ws_key.off, w->req.ws_key.len, key) != 0)
                        abort();
                char head[256];
                int n = snprintf(head, sizeof(head),
                                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                 key);
                s->http = malloc((size_t)n);
                if (!s->http)
                        abort();
                memcpy(s->http, head, (size_t)n);
                s->http_len = (size_t)n;
                if (ws_conn_accept(w) != 0 || !ws_conn_open(w) || ws_conn_pending_input(w) != 0)
                        abort();
                s->upgraded = s->answered = true;
                s->phase = WS_PHASE_OPEN;
                return;
        }
        if (r != 0 && r != -EBADMSG && r != -ENOPROTOOPT)
                abort();
        answer(s, r == -ENOPROTOOPT ? 426 : r < 0 ? 400 : 404, http_span_eq(w->head, w->req.method, "HEAD"));
}

static void due_close(State *s, int code) {
        if (s->want_close == -2)
                s->want_close = code;
}

static bool close_code_for(int error, uint16_t code) {
        switch (error) {
        case -EPROTO:
                return code == WS_CLOSE_PROTOCOL_ERROR;
        case -EILSEQ:
                return code == WS_CLOSE_INVALID_DATA;
        case -EMSGSIZE:
                return code == WS_CLOSE_TOO_BIG;
        case -EBADMSG:
                return code == WS_CLOSE_UNSUPPORTED;
        default:
                return false;
        }
}

static void on_event(State *s, const WsEvent *ev, WsPhase before) {
        WsConn *w = s->w;
        switch (ev->type) {
        case WS_EVENT_REQUEST:
                if (before != WS_PHASE_REQUEST || w->phase != WS_PHASE_REQUEST)
                        abort();
                on_request(s);
                return;
        case WS_EVENT_ERROR:
                if (before == WS_PHASE_REQUEST) {
                        if (w->phase != WS_PHASE_REQUEST || ws_conn_has_control(w))
                                abort();
                        if (ev->error != -EBADMSG && ev->error != -E2BIG && ev->error != -EPROTONOSUPPORT)
                                abort();
                        answer(s, ws_http_status(ev->error), false);
                        return;
                }
                if (before != WS_PHASE_OPEN || w->phase != WS_PHASE_CLOSING || ws_conn_open(w) ||
                    !close_code_for(ev->error, ev->close_code))
                        abort();
                due_close(s, ev->close_code);
                s->phase = WS_PHASE_CLOSING;
                return;
        case WS_EVENT_MESSAGE:
                if (before != WS_PHASE_OPEN || w->phase != WS_PHASE_OPEN)
                        abort();
                if (ev->len > s->max || (ev->len > 0 && !ev->data) || memchr(ev->data, '\n', ev->len) ||
                    (ev->text && !utf8_valid(ev->data, ev->len)))
                        abort();
                return;
        case WS_EVENT_CLOSE:
                if (before != WS_PHASE_OPEN || w->phase != WS_PHASE_CLOSING || ws_conn_open(w))
                        abort();
                if (ev->close_code != WS_CLOSE_NO_STATUS && !wsframe_close_code_valid(ev->close_code))
                        abort();
                if (s->want_close == -2)
                        s->close_echo = true;
                due_close(s, ev->close_code == WS_CLOSE_NO_STATUS ? -1 : ev->close_code);
                s->phase = WS_PHASE_CLOSING;
                return;
        }
        abort();
}

/* One composition of control frames, whole: pong, ping, close, each at most
 * once and in that order; the ping exactly when the hub asked for one, the
 * close exactly when one is due. */
static void check_composition(State *s, const uint8_t *p, size_t n) {
        if (!s->http_sent) {
                /* The HTTP answer comes first, alone. */
                if (!s->answered || n != s->http_len || memcmp(p, s->http, n) != 0)
                        abort();
                s->http_sent = true;
                return;
        }
        if (!s->upgraded || s->close_sent)
                abort();
        int last = -1;
        bool ping = false, close = false;
        for (size_t at = 0; at < n;) {
                if (n - at < 2 || (p[at] & 0xF0) != 0x80 || (p[at + 1] & 0x80) || (p[at + 1] & 0x7F) > 125 ||
                    n - at - 2 < (size_t)(p[at + 1] & 0x7F))
                        abort();
                uint8_t op = p[at] & 0x0F;
                size_t len = p[at + 1] & 0x7F;
                const uint8_t *pl = p + at + 2;
                int rank = op == WS_OP_PONG ? 0 : op == WS_OP_PING ? 1 : op == WS_OP_CLOSE ? 2 : 3;
                if (rank == 3 || rank <= last)
                        abort();
                last = rank;
                if (op == WS_OP_PING) {
                        if (len != 0)
                                abort();
                        ping = true;
                } else if (op == WS_OP_CLOSE) {
                        if (s->want_close == -2 || len == 1)
                                abort();
                        if (s->want_close == -1
                                    ? len != 0
                                    : len < 2 || (pl[0] << 8 | pl[1]) != s->want_close ||
                                              !utf8_valid(pl + 2, len - 2) || (s->close_echo && len != 2))
                                abort();
                        close = true;
                }
                at += 2 + len;
        }
        if (ping != s->hub_ping || close != (s->want_close != -2))
                abort();
        s->hub_ping = false;
        s->close_sent = close;
}

/* Sends one bite of the control output. Returns false if there is none. */
static bool send_bite(State *s) {
        WsConn *w = s->w;
        const uint8_t *p = NULL;
        ssize_t n = ws_conn_control(w, &p);
        if (n < 0)
                abort();
        if (n == 0) {
                if (ws_conn_has_control(w))
                        abort();
                return false;
        }
        if (!p || !ws_conn_has_control(w) || ws_conn_finished(w))
                abort();
        if (s->fresh)
                check_composition(s, p, (size_t)n);
        size_t bite = list_next(&s->bites);
        size_t k = bite == 0 || bite > (size_t)n ? (size_t)n : bite;
        ws_conn_control_sent(w, k);
        s->fresh = k == (size_t)n;
        return true;
}

static void check_state(const State *s) {
        const WsConn *w = s->w;
        if (w->phase != s->phase || ws_conn_open(w) != (s->phase == WS_PHASE_OPEN))
                abort();
        size_t pending = ws_conn_pending_input(w);
        if (pending > HTTP_HEAD_MAX && pending - HTTP_HEAD_MAX > s->max)
                abort();
        if (ws_conn_finished(w) && (ws_conn_has_control(w) || ws_conn_open(w)))
                abort();
        if (s->finished && !ws_conn_finished(w))
                abort();
}

static void read_one(State *s, const uint8_t *data, size_t len) {
        char *buf = malloc(len);
        if (!buf)
                abort();
        memcpy(buf, data, len);
        char *in = buf;
        size_t in_len = len;
        for (;;) {
                WsEvent ev;
                char *before = in;
                WsPhase phase = s->w->phase;
                int r = ws_conn_next(s->w, &in, &in_len, s->max, &ev);
                if (r < 0 || in < before || in > buf + len || in_len != (size_t)(buf + len - in))
                        abort();
                if (r == 0) {
                        if (in_len != 0)
                                abort();
                        break;
                }
                /* Nothing happens once closing or answered. */
                if (phase == WS_PHASE_CLOSING || phase == WS_PHASE_RESPONDED || s->finished)
                        abort();
                on_event(s, &ev, phase);
                check_state(s);
        }
        check_state(s);
        memset(buf, 0xAA, len);
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = {data, size};
        State s = {.want_close = -2, .fresh = true, .phase = WS_PHASE_REQUEST};
        uint16_t lim = fuzz_u16(&in);
        s.max = lim == 0xFFFF ? UINT64_MAX : lim % 8192;
        List reads;
        list_read(&reads, &in, MAX_LIST);
        list_read(&s.bites, &in, 8);
        list_read(&s.actions, &in, 8);
        if (ws_conn_new(&s.w) != 0)
                abort();

        const uint8_t *stream = in.p;
        size_t n = in.left;
        for (size_t off = 0; off < n;) {
                uint8_t b = list_next(&reads);
                size_t len = MIN(1 + (size_t)b * b / 16, n - off);
                read_one(&s, stream + off, len);
                off += len;

                uint8_t act = list_next(&s.actions);
                if ((act & 4) && ws_conn_open(s.w)) {
                        ws_conn_ping(s.w);
                        s.hub_ping = true;
                }
                if ((act & 8) && ws_conn_open(s.w)) {
                        ws_conn_close(s.w, WS_CLOSE_GOING_AWAY);
                        due_close(&s, WS_CLOSE_GOING_AWAY);
                        s.phase = WS_PHASE_CLOSING;
                }
                check_state(&s);
                size_t bites = (act & 3) == 3 ? SIZE_MAX : act & 3;
                for (size_t i = 0; i < bites && send_bite(&s); i++)
                        check_state(&s);
                s.finished = ws_conn_finished(s.w);
                check_state(&s);
        }

        /* The write path sends everything left. */
        for (size_t guard = 0; send_bite(&s); guard++) {
                if (guard > 100000)
                        abort();
                check_state(&s);
        }
        s.finished = ws_conn_finished(s.w);
        check_state(&s);
        if (s.finished != (s.phase == WS_PHASE_RESPONDED || (s.phase == WS_PHASE_CLOSING && s.close_sent)))
                abort();
        if (s.answered != s.http_sent)
                abort();
        ws_conn_free(s.w);
        free(s.http);
        return 0;
}
