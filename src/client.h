/* One connection: a socket, its transport, its protocol codec (the line
 * framer) and its cursor into the broadcast log. Owns the one read path and
 * the one write path; policy (limits, prefixes, who is closed) lives in the
 * server. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bcastlog.h"
#include "framer.h"
#include "loop.h"
#include "transport.h"

typedef enum ClientPhase {
        CLIENT_OPEN,    /* relaying */
        CLIENT_LINGER,  /* nothing more to send: waiting for the peer's end of stream */
        CLIENT_CLOSING, /* to be freed at the end of the round */
} ClientPhase;

/* Kept at 152 bytes (a 160-byte malloc chunk): an idle client costs this
 * and nothing else, so fields share their padding. */
typedef struct Client {
        Source src;
        ListNode link; /* on exactly one of the server's lists */
        uint64_t id;
        LogCursor cursor;
        Framer framer;
        char *rest; /* unsent end of a message cut off by a drop */
        uint32_t rest_len;
        uint32_t own_pending; /* own bytes (echo off) the cursor has still to step over */
        uint8_t phase;        /* ClientPhase */
        uint8_t transport;    /* TransportKind */
        uint8_t writable : 1; /* no EAGAIN since the last EPOLLOUT */
        uint8_t tcp : 1;
        uint8_t input_paused : 1;  /* not read until its own backlog shrinks */
        uint8_t output_failed : 1; /* lingering because a write failed */
        struct sockaddr_in6 peer;  /* AF_INET fits too; AF_UNIX keeps the family only */
} Client;

/* Largest write handed to the transport at once: enough to batch, small
 * enough that one client cannot monopolise a round. */
#define CLIENT_FLUSH_MAX_BYTES ((size_t)256 * 1024)

int client_new(Client **ret, uint64_t id, const struct sockaddr *peer, socklen_t peer_len);
/* Frees the client's buffers; the cursor must have been released and the fd
 * closed by the server. */
Client *client_free(Client *c);

/* The peer as %a shows it. */
size_t client_peer(const Client *c, char *buf, size_t size);

/* One read through the transport into buf. Returns the bytes read, 0 when
 * the peer's stream has ended (closed, shut down, or reset: either way
 * nothing more will come), or -EAGAIN. Any other failure of the socket
 * counts as its end: what the peer sent before it is still framed. */
ssize_t client_read(Client *c, char *buf, size_t n);

/* The next complete message of what client_read() returned (*in / *in_len
 * move past it): 1 with *ret_msg / *ret_len set, 0 when the input is used
 * up (an unfinished message is kept), -EMSGSIZE once a message longer than
 * 'max' is certain, or -ENOMEM. The message stays valid until the next call
 * or until the read buffer is reused. */
int client_next_message(Client *c, const char **in, size_t *in_len, size_t max, const char **ret_msg,
                        size_t *ret_len);
/* At the end of the peer's stream: the unfinished last message, if any (1,
 * without its LF), 0 if none, -EMSGSIZE if it cannot take a LF within max. */
int client_last_message(Client *c, size_t max, const char **ret_msg, size_t *ret_len);
/* Bytes of an unfinished message held for this client. */
size_t client_pending_input(const Client *c);

/* Bytes queued for this client that it will be sent: its drop remainder
 * and the log from its cursor on, less its own messages when 'skip' is its
 * id (echo off). */
uint64_t client_waiting(const Client *c, const BcastLog *log, uint64_t skip);

/* Writes everything queued (up to the caps) in one transport write.
 * Returns 0 when the client is caught up, 1 when more is queued (a short
 * write included: only EAGAIN proves that an EPOLLOUT edge will follow),
 * -EAGAIN when the socket is full (c->writable is then false), or another
 * -errno when the connection failed. */
int client_flush(Client *c, BcastLog *log, uint64_t skip);

/* Drop mode: skips the oldest whole messages until at most 'limit' bytes
 * wait for the client (see bcastlog_cursor_drop()). Returns the number of
 * messages skipped, or -ENOMEM with nothing changed. */
int64_t client_drop(Client *c, BcastLog *log, uint64_t skip, uint64_t limit);

/* Ends our sending side (FIN) after what was written. 0 or -errno. */
int client_shutdown(Client *c);
