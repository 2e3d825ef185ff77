/* Transports: how one connection's bytes cross its socket. Plain sockets
 * read() and sendmsg(); TLS will sit behind the same table. A transport
 * moves bytes only: it never frames, decides or logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef enum TransportKind {
        TRANSPORT_PLAIN,
        N_TRANSPORTS,
} TransportKind;

typedef struct Transport {
        /* Reads up to n bytes. Returns the count, 0 at the end of the peer's
         * stream, or -errno (-EAGAIN when nothing is there). */
        ssize_t (*read)(int fd, void *buf, size_t n);
        /* Writes the spans in order, short writes allowed. Returns the bytes
         * taken, or -errno (-EAGAIN when the socket is full). */
        ssize_t (*writev)(int fd, const struct iovec *iov, size_t n);
        /* Ends our sending side after what was written (FIN). 0 or -errno. */
        int (*shutdown)(int fd);
} Transport;

extern const Transport *const transports[N_TRANSPORTS];
