/* WsConn: owns a connection's request head, its message in progress and
 * its control output. Invariants: 'out' holds either the HTTP response
 * (until it is sent, nothing else goes out) or composed control frames;
 * slots are composed into 'out' only once it is entirely sent, so a frame
 * on the wire is never rewritten; once the close frame is composed,
 * nothing else ever is. */
#include "websocket.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Control frames composed at once: a pong, a ping and the close frame. */
#define CONTROL_OUT_MAX ((size_t)3 * WSFRAME_CONTROL_FRAME_MAX)

int ws_conn_new(WsConn **ret) {
        WsConn *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->req = (HttpRequest)HTTP_REQUEST_INIT;
        w->dec = (WsDecoder)WSDECODER_INIT;
        *ret = w;
        return 0;
}

WsConn *ws_conn_free(WsConn *w) {
        if (!w)
                return NULL;
        free(w->head);
        free(w->msg);
        free(w->out);
        free(w);
        return NULL;
}

size_t ws_conn_pending_input(const WsConn *w) {
        return (w->phase == WS_PHASE_REQUEST ? w->head_len : 0) + (w->msg_handed_out ? 0 : w->msg_len);
}

/* Request phase: the head is copied whole into 'head' (http_parse() wants
 * all its bytes in one buffer); bytes past its end stay in the input, as
 * the first frames of an upgraded connection. */
static int ws_read_head(WsConn *w, char **in, size_t *in_len, WsEvent *ev) {
        size_t take = MIN(*in_len, (size_t)HTTP_HEAD_MAX - w->head_len);
        if (w->head_len + take > w->head_cap) {
                /* Most heads are well under a kilobyte: grow by what
                 * arrives, not to the limit at once (every handshake in
                 * flight holds one). */
                size_t cap =
                        MIN((size_t)HTTP_HEAD_MAX, MAX((size_t)w->head_len + take, (size_t)w->head_cap * 2));
                char *head = realloc(w->head, cap);
                if (!head)
                        return -ENOMEM;
                w->head = head;
                w->head_cap = (uint16_t)cap;
        }
        memcpy(w->head + w->head_len, *in, take);
        size_t before = w->head_len;
        w->head_len = (uint16_t)(w->head_len + take);

        int r = http_parse(&w->req, w->head, w->head_len);
        if (r == 0 && w->head_len < HTTP_HEAD_MAX) {
                *in += take;
                *in_len -= take;
                return 0;
        }
        if (r == 0)
                r = -E2BIG;
        if (r < 0) {
                *in += *in_len;
                *in_len = 0;
                *ev = (WsEvent){.type = WS_EVENT_ERROR, .error = r};
                return 1;
        }
        /* The bytes past the head are not the head's: they stay input. */
        size_t used = (size_t)r - before;
        w->head_len = (uint16_t)r;
        *in += used;
        *in_len -= used;
        *ev = (WsEvent){.type = WS_EVENT_REQUEST};
        return 1;
}

static int ws_msg_append(WsConn *w, const uint8_t *p, size_t n) {
        if (n == 0)
                return 0;
        if (w->msg_len + n > w->msg_cap) {
                /* Doubling, bounded by the decoder's limit on the message. */
                size_t cap = MAX((size_t)w->msg_len + n, MAX((size_t)w->msg_cap * 2, (size_t)256));
                char *m = realloc(w->msg, cap);
                if (!m)
                        return -ENOMEM;
                w->msg = m;
                w->msg_cap = (uint32_t)cap;
        }
        memcpy(w->msg + w->msg_len, p, n);
        w->msg_len += (uint32_t)n;
        return 0;
}

static void ws_fail(WsConn *w, int error, uint16_t code, WsEvent *ev) {
        ws_conn_close(w, code);
        *ev = (WsEvent){.type = WS_EVENT_ERROR, .error = error, .close_code = code};
}

/* Open phase: one event, or 0 once the input is used up. A message whose
 * frames all lie in the input is handed out where it is; anything else is
 * gathered in 'msg'. */
static int ws_read_frames(WsConn *w, char **in, size_t *in_len, uint64_t max_payload, WsEvent *ev) {
        for (;;) {
                WsFrameEvent fe;
                uint8_t *p = (uint8_t *)*in;
                int r = wsframe_next(&w->dec, &p, in_len, max_payload, &fe);
                *in = (char *)p;
                if (r < 0) {
                        ws_fail(w, r, wsframe_close_code(r), ev);
                        return 1;
                }
                if (r == 0)
                        return 0;
                switch (fe.type) {
                case WSFRAME_DATA:
                        /* Broadcast messages are lines: an LF inside one
                         * would split it for every line client. */
                        if (memchr(fe.data, '\n', fe.len)) {
                                ws_fail(w, -EBADMSG, WS_CLOSE_UNSUPPORTED, ev);
                                return 1;
                        }
                        if (!fe.msg_end || w->msg_len > 0) {
                                if (ws_msg_append(w, fe.data, fe.len) < 0)
                                        return -ENOMEM;
                                if (!fe.msg_end)
                                        continue;
                                *ev = (WsEvent){.type = WS_EVENT_MESSAGE, .data = w->msg, .len = w->msg_len};
                                w->msg_handed_out = true;
                        } else
                                *ev = (WsEvent){.type = WS_EVENT_MESSAGE,
                                                .data = (const char *)fe.data,
                                                .len = fe.len};
                        ev->text = fe.opcode == WS_OP_TEXT;
                        return 1;
                case WSFRAME_PING:
                        /* RFC 6455 5.5.3: only the latest ping needs its pong. */
                        memcpy(w->pong, fe.data, fe.len);
                        w->pong_len = (uint8_t)fe.len;
                        w->pong_pending = true;
                        continue;
                case WSFRAME_PONG:
                        continue;
                case WSFRAME_CLOSE:
                        /* Echo the peer's code (RFC 6455 5.5.1), without a
                         * reason of ours; none for none. */
                        ws_conn_close(w, fe.close_code == WS_CLOSE_NO_STATUS ? 0 : fe.close_code);
                        w->close_echo = true;
                        *ev = (WsEvent){.type = WS_EVENT_CLOSE, .close_code = fe.close_code};
                        return 1;
                }
                return -EINVAL;
        }
}

int ws_conn_next(WsConn *w, char **in, size_t *in_len, uint64_t max_payload, WsEvent *ev) {
        if (w->msg_handed_out) {
                w->msg_len = 0;
                w->msg_handed_out = false;
        }
        switch (w->phase) {
        case WS_PHASE_REQUEST:
                return *in_len > 0 ? ws_read_head(w, in, in_len, ev) : 0;
        case WS_PHASE_OPEN:
                return ws_read_frames(w, in, in_len, max_payload, ev);
        case WS_PHASE_CLOSING:
        case WS_PHASE_RESPONDED:
                break;
        }
        *in += *in_len;
        *in_len = 0;
        return 0;
}

/* --- output ----------------------------------------------------------------- */

static void ws_drop_head(WsConn *w) {
        free(w->head);
        w->head = NULL;
        w->head_len = w->head_cap = 0;
}

const char *ws_http_reason(unsigned status) {
        switch (status) {
        case 101:
                return "Switching Protocols";
        case 200:
                return "OK";
        case 400:
                return "Bad Request";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 408:
                return "Request Timeout";
        case 426:
                return "Upgrade Required";
        case 431:
                return "Request Header Fields Too Large";
        case 500:
                return "Internal Server Error";
        case 503:
                return "Service Unavailable";
        case 505:
                return "HTTP Version Not Supported";
        default:
                return "Unknown";
        }
}

unsigned ws_http_status(int error) {
        switch (error) {
        case -E2BIG:
                return 431;
        case -EPROTONOSUPPORT:
                return 505;
        default:
                return 400;
        }
}

static int ws_queue_response(WsConn *w, const char *head, size_t head_len, const void *body,
                             size_t body_len) {
        uint8_t *out = malloc(head_len + body_len);
        if (!out)
                return -ENOMEM;
        memcpy(out, head, head_len);
        if (body_len > 0)
                memcpy(out + head_len, body, body_len);
        free(w->out);
        w->out = out;
        w->out_len = (uint32_t)(head_len + body_len);
        w->out_sent = 0;
        w->out_is_response = true;
        return 0;
}

int ws_conn_accept(WsConn *w) {
        char accept[HTTP_WS_ACCEPT_SIZE], head[256];
        int r = http_ws_accept(w->head + w->req.ws_key.off, w->req.ws_key.len, accept);
        if (r < 0)
                return r;
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: %s\r\n\r\n",
                         accept);
        r = ws_queue_response(w, head, (size_t)n, NULL, 0);
        if (r < 0)
                return r;
        ws_drop_head(w);
        w->phase = WS_PHASE_OPEN;
        return 0;
}

int ws_conn_respond(WsConn *w, unsigned status, const char *headers, const void *body, size_t body_len,
                    bool head_only) {
        char head[1024];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %u %s\r\n"
                         "Connection: close\r\n"
                         "Content-Length: %zu\r\n"
                         "%s\r\n",
                         status, ws_http_reason(status), body_len, headers);
        if (n < 0 || (size_t)n >= sizeof(head))
                return -ENOBUFS;
        int r = ws_queue_response(w, head, (size_t)n, body, head_only ? 0 : body_len);
        if (r < 0)
                return r;
        ws_drop_head(w);
        w->phase = WS_PHASE_RESPONDED;
        return 0;
}

void ws_conn_close(WsConn *w, uint16_t code) {
        /* Only a WebSocket has a close frame, and only one. */
        if (w->phase != WS_PHASE_OPEN)
                return;
        w->close_pending = true;
        w->close_code = code;
        w->phase = WS_PHASE_CLOSING;
}

void ws_conn_ping(WsConn *w) {
        if (w->phase == WS_PHASE_OPEN)
                w->ping_pending = true;
}

bool ws_conn_has_control(const WsConn *w) {
        return w->out_sent < w->out_len || w->pong_pending || w->ping_pending || w->close_pending;
}

/* Why a close is sent, for the peer's logs (the code says it all to a
 * program). */
static const char *close_reason(uint16_t code) {
        switch (code) {
        case WS_CLOSE_GOING_AWAY:
                return "server stopping";
        case WS_CLOSE_PROTOCOL_ERROR:
                return "protocol error";
        case WS_CLOSE_UNSUPPORTED:
                return "message contains a line feed";
        case WS_CLOSE_INVALID_DATA:
                return "invalid UTF-8";
        case WS_CLOSE_TOO_BIG:
                return "message too big";
        default:
                return "";
        }
}

/* Composes the pending control frames into 'out', which is sent. */
static int ws_compose(WsConn *w) {
        if (!w->pong_pending && !w->ping_pending && !w->close_pending)
                return 0;
        if (!w->out || w->out_is_response) {
                free(w->out);
                w->out = malloc(CONTROL_OUT_MAX);
                w->out_is_response = false;
                if (!w->out)
                        return -ENOMEM;
        }
        size_t n = 0;
        if (w->pong_pending)
                n += wsframe_pong(w->out + n, w->pong, w->pong_len);
        if (w->ping_pending)
                n += wsframe_ping(w->out + n, NULL, 0);
        if (w->close_pending) {
                const char *why = w->close_echo ? "" : close_reason(w->close_code);
                n += wsframe_close(w->out + n, w->close_code, why, strlen(why));
                w->close_queued = true;
        }
        w->pong_pending = w->ping_pending = w->close_pending = false;
        w->out_len = (uint32_t)n;
        w->out_sent = 0;
        return 0;
}

ssize_t ws_conn_control(WsConn *w, const uint8_t **ret) {
        if (w->out_sent == w->out_len) {
                int r = ws_compose(w);
                if (r < 0)
                        return r;
        }
        *ret = w->out ? w->out + w->out_sent : NULL;
        return (ssize_t)(w->out_len - w->out_sent);
}

void ws_conn_control_sent(WsConn *w, size_t n) {
        w->out_sent += (uint32_t)n;
        if (w->out_sent < w->out_len)
                return;
        /* Sent: the buffer goes, so an idle connection holds none. */
        free(w->out);
        w->out = NULL;
        w->out_len = w->out_sent = 0;
        w->out_is_response = false;
}

bool ws_conn_finished(const WsConn *w) {
        if (w->out_sent < w->out_len)
                return false;
        return w->phase == WS_PHASE_RESPONDED || (w->phase == WS_PHASE_CLOSING && w->close_queued);
}

/* --- the framed form of broadcast messages ---------------------------------- */

static bool header_clean(uint8_t h[WSFRAME_HEADER_MAX], uint8_t opcode, bool fin, uint64_t len,
                         size_t *ret) {
        *ret = wsframe_header(h, opcode, fin, len);
        return !memchr(h, '\n', *ret);
}

/* The first fragment's length for a payload whose one header would hold an
 * LF: the largest length below it without an LF byte (at its first 0x0A
 * byte, 0x09 and 0xFF after), its minimal header clean too; then moved
 * down until the rest's header is clean as well, a step or two at most. */
static uint64_t first_fragment_len(uint64_t len) {
        uint64_t a = 0;
        bool cut = false;
        for (int shift = 56; shift >= 0; shift -= 8) {
                uint64_t byte = (len >> shift) & 0xFF;
                if (cut)
                        byte = 0xFF;
                else if (byte == '\n') {
                        byte = '\n' - 1;
                        cut = true;
                }
                a |= byte << shift;
        }
        uint8_t h[WSFRAME_HEADER_MAX];
        size_t n;
        while (a > 1 && (!header_clean(h, WS_OP_TEXT, false, a, &n) ||
                         !header_clean(h, WS_OP_CONTINUATION, true, len - a, &n)))
                a--;
        return a;
}

/* Appends payload bytes [from, to) of the pieces to f->iov. */
static void form_add_payload(WsLogForm *f, const struct iovec *payload, size_t n, uint64_t from,
                             uint64_t to) {
        uint64_t at = 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t lo = MAX(from, at), hi = MIN(to, at + payload[i].iov_len);
                if (lo < hi)
                        f->iov[f->n++] = (struct iovec){
                                .iov_base = (char *)payload[i].iov_base + (lo - at),
                                .iov_len = (size_t)(hi - lo),
                        };
                at += payload[i].iov_len;
        }
}

void ws_log_form(WsLogForm *f, const struct iovec *payload, size_t n, bool text) {
        uint64_t len = 0;
        for (size_t i = 0; i < n; i++)
                len += payload[i].iov_len;
        uint8_t opcode = text ? WS_OP_TEXT : WS_OP_BINARY;
        size_t h;
        f->n = 0;
        if (header_clean(f->hdr[0], opcode, true, len, &h)) {
                f->iov[f->n++] = (struct iovec){.iov_base = f->hdr[0], .iov_len = h};
                form_add_payload(f, payload, n, 0, len);
        } else {
                uint64_t first = first_fragment_len(len);
                size_t h2;
                (void)header_clean(f->hdr[0], opcode, false, first, &h);
                (void)header_clean(f->hdr[1], WS_OP_CONTINUATION, true, len - first, &h2);
                f->iov[f->n++] = (struct iovec){.iov_base = f->hdr[0], .iov_len = h};
                form_add_payload(f, payload, n, 0, first);
                f->iov[f->n++] = (struct iovec){.iov_base = f->hdr[1], .iov_len = h2};
                form_add_payload(f, payload, n, first, len);
                h += h2;
        }
        f->iov[f->n++] =
                (struct iovec){.iov_base = (void *)(uintptr_t)WS_LOG_TRAILER, .iov_len = WS_LOG_TRAILER_LEN};
        f->len = h + (size_t)len + WS_LOG_TRAILER_LEN;
}
