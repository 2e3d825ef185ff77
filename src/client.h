/* One connection: its framer for input, its cursor into the broadcast log
 * for output. Policy (limits, prefixes, who is closed) lives in the server. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bcastlog.h"
#include "framer.h"
#include "loop.h"

typedef enum ClientPhase {
        CLIENT_OPEN,    /* relaying */
        CLIENT_LINGER,  /* stopping: all sent, FIN sent, waiting for the peer */
        CLIENT_CLOSING, /* to be freed at the end of the round */
} ClientPhase;

typedef struct Client {
        Source src;
        ListNode link; /* on exactly one of the server's lists */
        uint64_t id;
        LogCursor cursor;
        Framer framer;
        char *rest; /* unsent end of a message cut off by a drop */
        uint32_t rest_len;
        uint32_t rest_off;
        uint8_t phase; /* ClientPhase */
        bool writable; /* no EAGAIN or short write since the last EPOLLOUT */
        bool tcp;
        struct sockaddr_in6 peer; /* AF_INET fits too; AF_UNIX keeps the family only */
} Client;

/* Largest write handed to one sendmsg(): enough to batch, small enough that
 * one client cannot monopolise a round. */
#define CLIENT_FLUSH_MAX_BYTES ((size_t)256 * 1024)

int client_new(Client **ret, uint64_t id, const struct sockaddr *peer, socklen_t peer_len);
/* Frees the client's buffers; the cursor must have been released and the fd
 * closed by the server. */
Client *client_free(Client *c);

/* The peer as %a shows it. */
size_t client_peer(const Client *c, char *buf, size_t size);

/* One sendmsg() of everything queued (up to the caps). Returns 0 when the
 * client is caught up, 1 when more is queued (a short write included: only
 * EAGAIN proves that an EPOLLOUT edge will follow), -EAGAIN when the socket
 * is full (c->writable is then false), or another -errno when the
 * connection failed. */
int client_flush(Client *c, BcastLog *log, uint64_t skip);
