/* Transports: how one connection's bytes cross its socket. Plain sockets
 * read() and sendmsg(); TLS (tls.c) sits behind the same table, with its
 * session as 'conn' (NULL for plain). A transport
 * moves bytes only: it never frames, decides or logs. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef enum TransportKind {
        TRANSPORT_PLAIN,
        TRANSPORT_TLS,
        N_TRANSPORTS,
} TransportKind;

typedef struct Transport {
        /* Reads up to n bytes. Returns the count, 0 at the end of the peer's
         * stream (its last unfinished line counts), -EAGAIN when nothing is
         * there, or another -errno when the stream failed (what came before
         * was read; an unfinished line is not delivered). */
        ssize_t (*read)(int fd, void *conn, void *buf, size_t n);
        /* Writes the spans in order, short writes allowed. Returns the bytes
         * taken, or -errno (-EAGAIN when the socket is full). */
        ssize_t (*writev)(int fd, void *conn, const struct iovec *iov, size_t n);
        /* Ends our sending side after what was written (FIN). 0 or -errno. */
        int (*shutdown)(int fd, void *conn);
} Transport;

extern const Transport *const transports[N_TRANSPORTS];
