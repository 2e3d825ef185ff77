/* The plain transport: one read() in, one sendmsg() out (MSG_NOSIGNAL, so a
 * peer that went away is an error, never a signal). EINTR is retried here
 * so callers see only data, end of stream, EAGAIN or a real failure. */
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls.h"
#include "util.h"

static ssize_t plain_read(int fd, void *conn _unused_, void *buf, size_t n) {
        for (;;) {
                ssize_t r = read(fd, buf, n);
                if (r >= 0)
                        return r;
                /* A reset after the peer's bytes arrived: they were read, and
                 * its last line counts like after a close. */
                if (errno == ECONNRESET)
                        return 0;
                if (errno != EINTR)
                        return -errno;
        }
}

static ssize_t plain_writev(int fd, void *conn _unused_, const struct iovec *iov, size_t n) {
        struct msghdr msg = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = n};
        for (;;) {
                ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w >= 0)
                        return w;
                if (errno != EINTR)
                        return -errno;
        }
}

static int plain_shutdown(int fd, void *conn _unused_) {
        return shutdown(fd, SHUT_WR) < 0 ? -errno : 0;
}

static const Transport plain = {
        .read = plain_read,
        .writev = plain_writev,
        .shutdown = plain_shutdown,
};

static const Transport tls = {
        .read = tls_read,
        .writev = tls_writev,
        .shutdown = tls_shutdown,
};

const Transport *const transports[N_TRANSPORTS] = {
        [TRANSPORT_PLAIN] = &plain,
        [TRANSPORT_TLS] = &tls,
};
