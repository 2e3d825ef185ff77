/* Listening sockets: binding the configured addresses (including the
 * stale-Unix-socket check) and accepting connections. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "addr.h"
#include "loop.h"

/* What a listener makes of its connections. */
typedef struct ConnSpec {
        bool tls;         /* they speak TLS */
        uint8_t protocol; /* ListenProtocol */
        uint8_t role;     /* ListenRole */
        char **origins;   /* websocket: the Origin values allowed ("*": any) */
        size_t n_origins;
} ConnSpec;

typedef struct Listener {
        Source src;
        SockAddr addr;
        char name[ADDR_STR_MAX];
        bool owns_path; /* a Unix socket file this process created */
        bool paused;    /* accepting failed for lack of resources */
        ConnSpec spec;  /* owned: outlives a reload of the configuration */
        char *fdname;   /* FileDescriptorName= of a passed socket, or NULL */
} Listener;

#define LISTENER_BACKLOG 4096

/* Creates a non-blocking, close-on-exec socket listening on a, in l->src.fd
 * (not yet added to a loop). A Unix socket file nothing listens on any more
 * is replaced; one in use, or a path that is not a socket, gives -EADDRINUSE.
 * Returns 0 or -errno. */
int listener_open(Listener *l, const SockAddr *a);

/* Takes over a listening socket passed by systemd: checks that it is a
 * listening stream socket (-ENOTSOCK otherwise), makes it non-blocking.
 * Returns 0 or -errno. */
int listener_adopt(Listener *l, int fd);

/* Takes over every listening socket systemd passed (sd_listen_fds), with
 * its FileDescriptorName= in fdname (NULL when systemd gave none): *ret
 * (NULL when none) holds *ret_n listeners. A passed fd that is not a
 * listening stream socket fails the whole start: -ENOTSOCK, logged, every
 * passed fd closed. Returns 0 or -errno. */
int listener_adopt_passed(Listener **ret, size_t *ret_n);

/* Accepts one connection (non-blocking, close-on-exec). Returns the fd, or
 * -errno (-EAGAIN when the queue is empty). */
int listener_accept(Listener *l, struct sockaddr_storage *peer, socklen_t *peer_len);

/* Takes a copy of the listen options' spec (origins included). 0 or
 * -ENOMEM. */
int listener_set_spec(Listener *l, bool tls, uint8_t protocol, uint8_t role, char *const *origins,
                      size_t n_origins);

/* Closes the socket, frees the spec and removes a Unix socket file this
 * process created. (Only connections still reading their request head use
 * the spec, and a stop closes them with the listeners.) */
void listener_close(Listener *l);
