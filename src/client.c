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

/* A WebSocket client's control bytes (an HTTP answer, pongs, pings, the
 * close frame) go between two messages, never inside one: right after the
 * message the cursor is in, or first when it is at a boundary (a drop
 * remainder is always the end of a message). Returns the index of the
 * iovec before which they go, splitting the one holding the LF that ends
 * the cursor's message if need be, or SIZE_MAX when that LF is not among
 * the spans (they wait for the next write). */
static size_t client_control_at(const Client *c, struct iovec *iov, size_t first, size_t *n, size_t max) {
        if (!c->receiving || !c->cursor.mid_message || first > 0)
                return first;
        for (size_t i = 0; i < *n; i++) {
                const char *p = iov[i].iov_base, *lf = memchr(p, '\n', iov[i].iov_len);
                if (!lf)
                        continue;
                size_t k = (size_t)(lf - p) + 1;
                if (k < iov[i].iov_len) {
                        if (*n == max)
                                *n = i + 1; /* the rest goes next time */
                        else {
                                memmove(&iov[i + 2], &iov[i + 1], (*n - i - 1) * sizeof(*iov));
                                iov[i + 1] = (struct iovec){.iov_base = (char *)p + k,
                                                            .iov_len = iov[i].iov_len - k};
                                (*n)++;
                        }
                        iov[i].iov_len = k;
                }
                return i + 1;
        }
        return SIZE_MAX;
}

static size_t iov_bytes(const struct iovec *iov, size_t n) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
                bytes += iov[i].iov_len;
        return bytes;
}

static bool client_more_queued(const Client *c, WsConn *ws, const BcastLog *log, uint64_t skip) {
        if (c->rest_len > 0 || (ws && ws_conn_has_control(ws)))
                return true;
        if (!c->receiving)
                return false;
        /* After its close frame, a WebSocket client is sent nothing more
         * than the end of the message it is in. */
        if (ws && !ws_conn_open(ws))
                return c->cursor.mid_message;
        return client_waiting(c, log, skip) > 0;
}

int client_flush(Client *c, BcastLog *log, uint64_t skip) {
        WsConn *ws = client_ws(c);
        struct iovec iov[IOV_MAX];
        size_t n = 0, rest = c->rest_len, log_before_ctl = 0, ctl_len = 0;

        if (rest > 0)
                iov[n++] = (struct iovec){.iov_base = c->rest, .iov_len = rest};
        if (c->receiving) {
                size_t from_log;
                n += bcastlog_fill(log, &c->cursor, skip, iov + n, IOV_MAX - 1 - n,
                                   CLIENT_FLUSH_MAX_BYTES - MIN(rest, CLIENT_FLUSH_MAX_BYTES - 1),
                                   &from_log);
        }
        if (ws) {
                size_t at = client_control_at(c, iov, rest > 0, &n, IOV_MAX - 1);
                if (at != SIZE_MAX) {
                        if (!ws_conn_open(ws))
                                n = at;
                        const uint8_t *ctl;
                        ssize_t k = ws_conn_control(ws, &ctl);
                        if (k < 0)
                                return (int)k;
                        ctl_len = (size_t)k;
                        log_before_ctl = iov_bytes(iov, at) - rest;
                        if (ctl_len > 0) {
                                memmove(&iov[at + 1], &iov[at], (n - at) * sizeof(*iov));
                                iov[at] = (struct iovec){.iov_base = (void *)(uintptr_t)ctl,
                                                         .iov_len = ctl_len};
                                n++;
                        }
                }
        }
        if (iov_bytes(iov, n) == 0) {
                /* Only the client's own messages were left: step over them. */
                if (c->receiving)
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
        size_t left = sent - from_rest, log_sent = MIN(left, log_before_ctl);
        left -= log_sent;
        if (ctl_len > 0) {
                size_t ctl_sent = MIN(left, ctl_len);
                ws_conn_control_sent(ws, ctl_sent);
                left -= ctl_sent;
        }
        log_sent += left;
        if (c->receiving)
                client_passed_own(c, bcastlog_advance(log, &c->cursor, skip, log_sent));

        return client_more_queued(c, ws, log, skip) ? 1 : 0;
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
