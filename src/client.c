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

/* A TLS client: the Client and its session, in one allocation. */
typedef struct TlsClient {
        Client client;
        TlsConn *conn;
        uint32_t since;
} TlsClient;

static TlsConn *client_tls(const Client *c) {
        return c->transport == TRANSPORT_TLS ? container_of(c, const TlsClient, client)->conn : NULL;
}

int client_new(Client **ret, uint64_t id, int fd, const struct sockaddr *peer, socklen_t peer_len,
               TlsContext *tls) {
        Client *c;
        if (tls) {
                TlsClient *t = calloc(1, sizeof(*t));
                if (!t)
                        return -ENOMEM;
                int r = tls_conn_new(&t->conn, tls, fd);
                if (r < 0) {
                        free(t);
                        return r;
                }
                c = &t->client;
                c->transport = TRANSPORT_TLS;
        } else {
                c = calloc(1, sizeof(*c));
                if (!c)
                        return -ENOMEM;
                c->transport = TRANSPORT_PLAIN;
        }
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
        if (c->transport == TRANSPORT_TLS) {
                TlsClient *t = container_of(c, TlsClient, client);
                tls_conn_free(t->conn);
                free(t);
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
        return c->transport == TRANSPORT_TLS ? container_of(c, const TlsClient, client)->since : 0;
}

void client_set_handshake_since(Client *c, uint32_t since) {
        if (c->transport == TRANSPORT_TLS)
                container_of(c, TlsClient, client)->since = since;
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
        return framer_pending(&c->framer);
}

uint64_t client_waiting(const Client *c, const BcastLog *log, uint64_t skip) {
        uint64_t own = skip == c->id ? c->own_pending : 0;
        return bcastlog_backlog(log, &c->cursor) - own + c->rest_len;
}

static void client_passed_own(Client *c, uint64_t bytes) {
        c->own_pending -= (uint32_t)MIN(bytes, (uint64_t)c->own_pending);
}

int client_flush(Client *c, BcastLog *log, uint64_t skip) {
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
