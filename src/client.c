/* Client: owns one connection's buffers (framer, drop remainder) and its
 * place in the broadcast log. Invariant: 'rest' is sent before anything
 * from the cursor, since it is the end of a message the cursor has passed. */
#include "client.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>

#include "addr.h"

int client_new(Client **ret, uint64_t id, const struct sockaddr *peer, socklen_t peer_len) {
        Client *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
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
        free(c);
        return NULL;
}

size_t client_peer(const Client *c, char *buf, size_t size) {
        socklen_t len = c->peer.sin6_family == AF_INET ? sizeof(struct sockaddr_in)
                        : c->tcp                       ? sizeof(struct sockaddr_in6)
                                                       : sizeof(sa_family_t);
        return addr_format((const struct sockaddr *)&c->peer, len, buf, size);
}

/* Bytes queued for this client in the server's memory. */
static uint64_t client_backlog(const Client *c, const BcastLog *log) {
        return bcastlog_backlog(log, &c->cursor) + (c->rest_len - c->rest_off);
}

static void client_drop_rest(Client *c) {
        free(c->rest);
        c->rest = NULL;
        c->rest_len = c->rest_off = 0;
}

int client_flush(Client *c, BcastLog *log, uint64_t skip) {
        struct iovec iov[IOV_MAX];
        size_t n = 0, rest = c->rest_len - c->rest_off;

        if (rest > 0)
                iov[n++] = (struct iovec){.iov_base = c->rest + c->rest_off, .iov_len = rest};
        size_t from_log;
        n += bcastlog_fill(log, &c->cursor, skip, iov + n, IOV_MAX - n,
                           CLIENT_FLUSH_MAX_BYTES - MIN(rest, CLIENT_FLUSH_MAX_BYTES - 1), &from_log);
        size_t total = rest + from_log;
        if (total == 0) {
                /* Only the client's own messages were left: step over them. */
                bcastlog_advance(log, &c->cursor, skip, 0);
                return 0;
        }

        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(c->src.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
                if (errno == EINTR)
                        return 1;
                if (errno == EAGAIN) {
                        c->writable = false;
                        return -EAGAIN;
                }
                return -errno;
        }

        size_t sent = (size_t)w, from_rest = MIN(sent, rest);
        c->rest_off += (uint32_t)from_rest;
        if (c->rest && c->rest_off == c->rest_len)
                client_drop_rest(c);
        bcastlog_advance(log, &c->cursor, skip, sent - from_rest);

        return client_backlog(c, log) > 0 ? 1 : 0;
}
