/* Client: owns one connection's buffers (framer, drop remainder) and its
 * place in the broadcast log. Invariants: 'rest' is sent before anything
 * from the cursor, since it is the end of a message the cursor has passed;
 * own_pending counts exactly the bytes of the client's own runs that its
 * cursor will step over, so what waits for it is a subtraction. */
#include "client.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>

#include "addr.h"

/* An idle client costs its struct and nothing else: keep it in a 160-byte
 * malloc chunk (glibc adds 8 bytes and rounds to 16). */
_Static_assert(sizeof(Client) <= 152, "Client outgrew its malloc chunk: every idle client pays for it");

/* A client with more than a plain line connection (TLS, or a websocket or
 * metrics listener): the Client and the rest, in one allocation. */
typedef struct ClientExt {
        Client client;
        TlsConn *tls;
        WsConn *ws;
        const ConnSpec *spec;
        uint32_t since;
} ClientExt;

static bool client_extended(const Client *c) {
        return c->transport == TRANSPORT_TLS || c->protocol != LISTEN_PROTOCOL_LINE;
}

static TlsConn *client_tls(const Client *c) {
        return c->transport == TRANSPORT_TLS ? container_of(c, const ClientExt, client)->tls : NULL;
}

WsConn *client_ws(const Client *c) {
        return c->protocol != LISTEN_PROTOCOL_LINE ? container_of(c, const ClientExt, client)->ws : NULL;
}

const ConnSpec *client_spec(const Client *c) {
        return client_extended(c) ? container_of(c, const ClientExt, client)->spec : NULL;
}

static ClientExt *client_ext_new(const ConnSpec *spec, TlsContext *tls, int fd) {
        ClientExt *x = calloc(1, sizeof(*x));
        if (!x)
                return NULL;
        x->spec = spec;
        if (tls && tls_conn_new(&x->tls, tls, fd) < 0) {
                free(x);
                return NULL;
        }
        if (spec->protocol != LISTEN_PROTOCOL_LINE && ws_conn_new(&x->ws) < 0) {
                tls_conn_free(x->tls);
                free(x);
                return NULL;
        }
        x->client.transport = tls ? TRANSPORT_TLS : TRANSPORT_PLAIN;
        x->client.protocol = spec->protocol & 3;
        return x;
}

int client_new(Client **ret, uint64_t id, int fd, const struct sockaddr *peer, socklen_t peer_len,
               const ConnSpec *spec, TlsContext *tls) {
        Client *c;
        if (tls || spec->protocol != LISTEN_PROTOCOL_LINE) {
                ClientExt *x = client_ext_new(spec, tls, fd);
                if (!x)
                        return -ENOMEM;
                c = &x->client;
        } else {
                c = calloc(1, sizeof(*c));
                if (!c)
                        return -ENOMEM;
                c->transport = TRANSPORT_PLAIN;
        }
        c->role = spec->role & 3;
        c->id = id;
        c->src.fd = -1;
        list_init(&c->link);
        list_init(&c->src.ready);
        c->tcp = peer->sa_family == AF_INET || peer->sa_family == AF_INET6;
        if (c->tcp)
                memcpy(&c->peer, peer, MIN((size_t)peer_len, sizeof(c->peer)));
        else
                c->peer.sin6_family = peer->sa_family;
        *ret = c;
        return 0;
}

Client *client_free(Client *c) {
        if (!c)
                return NULL;
        framer_reset(&c->framer);
        free(c->rest);
        if (client_extended(c)) {
                ClientExt *x = container_of(c, ClientExt, client);
                tls_conn_free(x->tls);
                ws_conn_free(x->ws);
                free(x);
        } else
                free(c);
        return NULL;
}

const char *client_identity(const Client *c) {
        TlsConn *t = client_tls(c);
        return t ? tls_conn_identity(t) : NULL;
}

bool client_established(const Client *c) {
        TlsConn *t = client_tls(c);
        return !t || tls_conn_established(t);
}

uint32_t client_handshake_since(const Client *c) {
        return c->transport == TRANSPORT_TLS ? container_of(c, const ClientExt, client)->since : 0;
}

void client_set_handshake_since(Client *c, uint32_t since) {
        if (c->transport == TRANSPORT_TLS)
                container_of(c, ClientExt, client)->since = since;
}

bool client_read_wants_write(const Client *c) {
        TlsConn *t = client_tls(c);
        return t && tls_conn_read_wants_write(t);
}

bool client_write_wants_read(const Client *c) {
        TlsConn *t = client_tls(c);
        return t && tls_conn_write_wants_read(t);
}

const char *client_transport_error(const Client *c) {
        TlsConn *t = client_tls(c);
        return t ? tls_conn_error(t) : "transport error";
}

void client_close(Client *c) {
        TlsConn *t = client_tls(c);
        if (t)
                tls_close_notify(t);
}

size_t client_peer(const Client *c, char *buf, size_t size) {
        socklen_t len = c->peer.sin6_family == AF_INET ? sizeof(struct sockaddr_in)
                        : c->tcp                       ? sizeof(struct sockaddr_in6)
                                                       : sizeof(sa_family_t);
        return addr_format((const struct sockaddr *)&c->peer, len, buf, size);
}

ssize_t client_read(Client *c, char *buf, size_t n) {
        return transports[c->transport]->read(c->src.fd, client_tls(c), buf, n);
}

int client_next_message(Client *c, const char **in, size_t *in_len, size_t max, const char **ret_msg,
                        size_t *ret_len) {
        return framer_next(&c->framer, in, in_len, max, ret_msg, ret_len);
}

int client_last_message(Client *c, size_t max, const char **ret_msg, size_t *ret_len) {
        return framer_finish(&c->framer, max, ret_msg, ret_len);
}

size_t client_pending_input(const Client *c) {
        WsConn *w = client_ws(c);
        return w ? ws_conn_pending_input(w) : framer_pending(&c->framer);
}

uint64_t client_waiting(const Client *c, const BcastLog *log, uint64_t skip) {
        uint64_t own = skip == c->id ? c->own_pending : 0;
        return bcastlog_backlog(log, &c->cursor) - own + c->rest_len;
}

static void client_passed_own(Client *c, uint64_t bytes) {
        c->own_pending -= (uint32_t)MIN(bytes, (uint64_t)c->own_pending);
}

/* --- the WebSocket write path ------------------------------------------------
 *
 * One sendmsg carries, in order: the rest of a frame a short write cut (its
 * header, then the payload: a drop remainder or the log up to the LF), the
 * codec's control bytes, then a frame per broadcast message: its header
 * from a per-call array, its payload as spans of the log, the LF left out.
 * Payload is never copied. What each iovec stands for is kept beside it, so
 * a short write moves the cursor by exactly the log bytes it covered. */

/* Spans taken from the log per call: with a header each, within IOV_MAX. */
#define WS_FLUSH_SPANS 384

typedef enum WsSegment {
        WS_SEG_HEADER_REST, /* the unsent end of a header a short write cut */
        WS_SEG_REST,        /* a drop remainder, its LF left out */
        WS_SEG_CONTROL,
        WS_SEG_HEADER,
        WS_SEG_LOG, /* payload from the log */
} WsSegment;

typedef struct WsBatch {
        struct iovec iov[IOV_MAX];
        uint32_t log_bytes[IOV_MAX]; /* cursor bytes the iovec covers when sent whole (its LF included) */
        uint8_t seg[IOV_MAX];
        size_t n;
        uint8_t hdrs[WS_FLUSH_SPANS][WSFRAME_HEADER_MAX];
        size_t n_hdrs;
        /* The log's spans from the cursor. */
        struct iovec span[WS_FLUSH_SPANS];
        uint8_t kind[WS_FLUSH_SPANS];
        size_t n_spans, at_span, at_off;
} WsBatch;

static void ws_batch_add(WsBatch *b, WsSegment seg, const void *p, size_t len, uint32_t log_bytes) {
        b->iov[b->n] = (struct iovec){.iov_base = (void *)(uintptr_t)p, .iov_len = len};
        b->seg[b->n] = (uint8_t)seg;
        b->log_bytes[b->n] = log_bytes;
        b->n++;
}

/* Adds the payload of the message at the batch's span position, up to its
 * LF, as LOG segments, moving past the LF. 'len' is its length when known
 * (a header was just written for it: the LF is where it says, no need to
 * look), else -1. Returns false when its LF is not among the spans or the
 * iovecs ran out (what there was is added). */
static bool ws_batch_payload(WsBatch *b, int64_t len) {
        uint64_t left_in_msg = len < 0 ? UINT64_MAX : (uint64_t)len;
        while (b->at_span < b->n_spans && b->n < IOV_MAX) {
                const char *p = (const char *)b->span[b->at_span].iov_base + b->at_off;
                size_t left = b->span[b->at_span].iov_len - b->at_off;
                const char *lf = len < 0              ? memchr(p, '\n', left)
                                 : left_in_msg < left ? p + left_in_msg
                                                      : NULL;
                size_t k = lf ? (size_t)(lf - p) : left;
                ws_batch_add(b, WS_SEG_LOG, p, k, (uint32_t)(k + (lf != NULL)));
                left_in_msg -= k;
                b->at_off += k + (lf != NULL);
                if (b->at_off == b->span[b->at_span].iov_len) {
                        b->at_span++;
                        b->at_off = 0;
                }
                if (lf)
                        return true;
        }
        return false;
}

/* The length of the next message's payload among the spans, if its LF is
 * there: a header can only be written once it is known. */
static int64_t ws_batch_peek(const WsBatch *b) {
        uint64_t len = 0;
        size_t off = b->at_off;
        for (size_t i = b->at_span; i < b->n_spans; i++, off = 0) {
                const char *p = (const char *)b->span[i].iov_base + off;
                const char *lf = memchr(p, '\n', b->span[i].iov_len - off);
                if (lf)
                        return (int64_t)(len + (uint64_t)(lf - p));
                len += b->span[i].iov_len - off;
        }
        return -1;
}

/* New frames from the batch's span position on, while they fit. The first
 * may be longer than the spans: its length then comes from the log. */
static void ws_batch_frames(WsBatch *b, const BcastLog *log, const LogCursor *cursor, uint64_t skip,
                            bool at_cursor) {
        while (b->at_span < b->n_spans && b->n + 2 < IOV_MAX && b->n_hdrs < WS_FLUSH_SPANS) {
                int64_t len = ws_batch_peek(b);
                if (len < 0) {
                        if (!at_cursor)
                                return;
                        len = (int64_t)bcastlog_message_size(log, cursor, skip) - 1;
                }
                uint8_t opcode = b->kind[b->at_span] == BCASTLOG_TEXT ? WS_OP_TEXT : WS_OP_BINARY;
                uint8_t *h = b->hdrs[b->n_hdrs++];
                ws_batch_add(b, WS_SEG_HEADER, h, wsframe_header(h, opcode, true, (uint64_t)len), 0);
                /* (An empty payload is an empty iovec standing for the LF.) */
                if (!ws_batch_payload(b, len))
                        return;
                at_cursor = false;
        }
}

static void ws_rest_sent(Client *c, size_t sent, bool whole) {
        if (whole) {
                free(c->rest);
                c->rest = NULL;
                c->rest_len = 0;
        } else if (sent > 0) {
                memmove(c->rest, c->rest + sent, c->rest_len - sent);
                c->rest_len -= (uint32_t)sent;
        }
}

/* Accounts a write of 'sent' bytes of the batch. */
static void ws_batch_sent(Client *c, WsConn *w, BcastLog *log, uint64_t skip, const WsBatch *b,
                          size_t sent) {
        uint64_t log_bytes = 0;
        size_t rest_sent = 0;
        /* A header went out whole, its message's LF not yet. */
        bool rest_whole = false, header_cut = false, begun = false;
        for (size_t i = 0; i < b->n; i++) {
                size_t len = b->iov[i].iov_len, k = MIN(sent, len);
                sent -= k;
                switch ((WsSegment)b->seg[i]) {
                case WS_SEG_HEADER_REST:
                        w->hdr_sent = (uint8_t)(w->hdr_sent + k);
                        break;
                case WS_SEG_REST:
                        rest_sent = k;
                        rest_whole = k == len;
                        break;
                case WS_SEG_CONTROL:
                        ws_conn_control_sent(w, k);
                        break;
                case WS_SEG_HEADER:
                        if (k < len) {
                                memcpy(w->hdr, (const uint8_t *)b->iov[i].iov_base + k, len - k);
                                w->hdr_len = (uint8_t)(len - k);
                                w->hdr_sent = 0;
                                header_cut = true;
                        } else
                                begun = true;
                        break;
                case WS_SEG_LOG:
                        log_bytes += k < len ? k : b->log_bytes[i];
                        if (k == len && b->log_bytes[i] > len)
                                begun = false;
                        break;
                }
                if (k < len)
                        break;
        }
        if (w->hdr_sent == w->hdr_len && !header_cut)
                w->hdr_len = w->hdr_sent = 0;
        if (rest_sent > 0 || rest_whole)
                ws_rest_sent(c, rest_sent, rest_whole);
        if (c->receiving) {
                client_passed_own(c, bcastlog_advance(log, &c->cursor, skip, log_bytes));
                /* Even with none of its payload sent, the message is begun:
                 * its next bytes are payload, not a new header. */
                if (header_cut || begun)
                        bcastlog_cursor_begin_message(&c->cursor);
        }
}

static bool ws_more_queued(const Client *c, WsConn *w, const BcastLog *log, uint64_t skip) {
        if (w->hdr_len > 0 || c->rest_len > 0 || ws_conn_has_control(w))
                return true;
        if (!c->receiving)
                return false;
        return c->cursor.mid_message || (ws_conn_open(w) && client_waiting(c, log, skip) > 0);
}

static int client_flush_ws(Client *c, WsConn *w, BcastLog *log, uint64_t skip) {
        static WsBatch b;
        b.n = b.n_hdrs = b.n_spans = b.at_span = b.at_off = 0;

        if (w->hdr_len > w->hdr_sent)
                ws_batch_add(&b, WS_SEG_HEADER_REST, w->hdr + w->hdr_sent, w->hdr_len - w->hdr_sent, 0);
        if (c->rest_len > 0)
                ws_batch_add(&b, WS_SEG_REST, c->rest, c->rest_len - 1, 0);

        bool frame_open = false;
        if (c->receiving) {
                size_t bytes;
                b.n_spans = bcastlog_fill_kinds(log, &c->cursor, skip, b.span, b.kind, WS_FLUSH_SPANS,
                                                CLIENT_FLUSH_MAX_BYTES, &bytes);
                /* A frame begun earlier is finished before anything else. */
                frame_open = c->cursor.mid_message && !ws_batch_payload(&b, -1);
        }
        if (!frame_open) {
                const uint8_t *ctl;
                ssize_t n = ws_conn_control(w, &ctl);
                if (n < 0)
                        return (int)n;
                if (n > 0)
                        ws_batch_add(&b, WS_SEG_CONTROL, ctl, (size_t)n, 0);
                if (c->receiving && ws_conn_open(w))
                        ws_batch_frames(&b, log, &c->cursor, skip, b.n == 0);
        }

        size_t total = 0;
        for (size_t i = 0; i < b.n; i++)
                total += b.iov[i].iov_len;
        if (total == 0 && b.n == 0) {
                /* Only the client's own messages were left: step over them. */
                if (c->receiving)
                        client_passed_own(c, bcastlog_advance(log, &c->cursor, skip, 0));
                return 0;
        }
        ssize_t sent = 0;
        if (total > 0) {
                sent = transports[c->transport]->writev(c->src.fd, client_tls(c), b.iov, b.n);
                if (sent < 0) {
                        if (sent == -EAGAIN)
                                c->writable = false;
                        return (int)sent;
                }
        }
        ws_batch_sent(c, w, log, skip, &b, (size_t)sent);
        return ws_more_queued(c, w, log, skip) ? 1 : 0;
}

int client_flush(Client *c, BcastLog *log, uint64_t skip) {
        WsConn *ws = client_ws(c);
        if (ws)
                return client_flush_ws(c, ws, log, skip);

        struct iovec iov[IOV_MAX];
        size_t n = 0, rest = c->rest_len;

        if (rest > 0)
                iov[n++] = (struct iovec){.iov_base = c->rest, .iov_len = rest};
        size_t from_log;
        n += bcastlog_fill(log, &c->cursor, skip, iov + n, IOV_MAX - n,
                           CLIENT_FLUSH_MAX_BYTES - MIN(rest, CLIENT_FLUSH_MAX_BYTES - 1), &from_log);
        if (rest + from_log == 0) {
                /* Only the client's own messages were left: step over them. */
                client_passed_own(c, bcastlog_advance(log, &c->cursor, skip, 0));
                return 0;
        }

        ssize_t w = transports[c->transport]->writev(c->src.fd, client_tls(c), iov, n);
        if (w < 0) {
                if (w == -EAGAIN)
                        c->writable = false;
                return (int)w;
        }

        size_t sent = (size_t)w, from_rest = MIN(sent, rest);
        if (from_rest == rest) {
                free(c->rest);
                c->rest = NULL;
                c->rest_len = 0;
        } else if (from_rest > 0) {
                /* Rare (a drop cut into a message) and at most one message. */
                memmove(c->rest, c->rest + from_rest, rest - from_rest);
                c->rest_len -= (uint32_t)from_rest;
        }
        client_passed_own(c, bcastlog_advance(log, &c->cursor, skip, sent - from_rest));

        return client_waiting(c, log, skip) > 0 ? 1 : 0;
}

int64_t client_drop(Client *c, BcastLog *log, uint64_t skip, uint64_t limit) {
        LogDrop drop;
        uint64_t own = skip == c->id ? c->own_pending : 0;
        int r = bcastlog_cursor_drop(log, &c->cursor, skip, own, limit, &drop);
        if (r < 0)
                return r;
        client_passed_own(c, drop.skipped);
        if (drop.rest) {
                /* The cursor never moves while an older remainder is unsent,
                 * so a drop finds at most one. */
                c->rest = drop.rest;
                c->rest_len = (uint32_t)drop.rest_len;
        }
        return (int64_t)MIN(drop.messages, (uint64_t)INT64_MAX);
}

int client_shutdown(Client *c) {
        return transports[c->transport]->shutdown(c->src.fd, client_tls(c));
}
