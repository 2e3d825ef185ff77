/* One connection: a socket, its transport, its protocol codec (the line
 * framer, or the WebSocket codec) and its cursor into the broadcast log. Owns the one read path and
 * the one write path; policy (limits, prefixes, who is closed) lives in the
 * server. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bcastlog.h"
#include "framer.h"
#include "listener.h"
#include "loop.h"
#include "tls.h"
#include "transport.h"
#include "websocket.h"

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
        uint8_t input_paused : 1;    /* not read until its own backlog shrinks */
        uint8_t output_failed : 1;   /* lingering because a write failed */
        uint8_t discard_noticed : 1; /* a subscriber's input was reported discarded */
        uint8_t receiving : 1;       /* has a cursor: not publish-only, not in a handshake */
        uint8_t role : 2;            /* ListenRole of its listener */
        uint8_t protocol : 2;        /* ListenProtocol of its listener */
        struct sockaddr_in6 peer;    /* AF_INET fits too; AF_UNIX keeps the family only */
} Client;

/* Largest write handed to the transport at once: enough to batch, small
 * enough that one client cannot monopolise a round. */
#define CLIENT_FLUSH_MAX_BYTES ((size_t)256 * 1024)

/* A client on connected socket fd (taken over: closed by the server after
 * client_close()) of a listener with 'spec' (which must outlive the
 * client's request phase). With 'tls', a TLS server session over it; on a
 * websocket or metrics listener, the WebSocket codec: that state lives
 * beside the Client, so plain line clients pay nothing for it. */
int client_new(Client **ret, uint64_t id, int fd, const struct sockaddr *peer, socklen_t peer_len,
               const ConnSpec *spec, TlsContext *tls);
/* Frees the client's buffers; the cursor must have been released and the fd
 * closed by the server. */
Client *client_free(Client *c);

/* The peer as %a shows it. */
size_t client_peer(const Client *c, char *buf, size_t size);
/* The authenticated identity %u shows, or NULL. */
const char *client_identity(const Client *c);

/* The WebSocket codec of a client of a websocket or metrics listener, else
 * NULL; and the spec of its listener (NULL for a plain line client). */
WsConn *client_ws(const Client *c);
const ConnSpec *client_spec(const Client *c);

/* A TLS client before the end of its handshake is not established yet
 * (plain ones always are). */
bool client_established(const Client *c);
/* When its connection began (seconds, the caller's clock); set at accept. */
uint32_t client_handshake_since(const Client *c);
void client_set_handshake_since(Client *c, uint32_t since);
/* The transport's last read wanted to write: an EPOLLOUT edge retries the
 * read; its last write wanted to read: an EPOLLIN edge retries the write. */
bool client_read_wants_write(const Client *c);
bool client_write_wants_read(const Client *c);
/* Why the last read failed with -EPROTO (a TLS error), for the log. */
const char *client_transport_error(const Client *c);
/* Before the socket is closed: a TLS client gets close_notify if its socket
 * takes it. */
void client_close(Client *c);

/* One read through the transport into buf. Returns the bytes read, 0 when
 * the peer's stream has ended cleanly (closed, shut down, a plain
 * connection reset after its bytes arrived, a TLS close_notify: its last
 * line counts), -EAGAIN, or another -errno when the stream failed (a TLS
 * stream cut without close_notify, a TLS error): what came before was read,
 * an unfinished line is not the peer's to deliver. */
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

/* Writes everything queued (up to the caps) in one transport write: for a
 * WebSocket client ('log' is then the framed copy), the codec's control
 * bytes too, between two messages.
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
