/* TLS with OpenSSL 3.0: the server context built from the 'tls' group, and
 * the TLS transport of one connection. The only module that includes
 * OpenSSL's headers. Moves bytes only: it never frames, decides or logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config.h"

typedef struct TlsContext TlsContext;
typedef struct TlsConn TlsConn;

/* Builds the server context: certificate chain, key (checked against the
 * certificate), CAs for client certificates, protocol floor, cipher lists;
 * renegotiation off. On failure returns -errno-style code (-EINVAL for
 * content, -ENOENT/-EACCES for files) and writes one line to err:
 * "FILE:LINE: setting 'tls.NAME': what is wrong". */
int tls_context_new(TlsContext **ret, const TlsConfig *cfg, char *err, size_t errlen);
TlsContext *tls_context_free(TlsContext *t);

/* A server side TLS session over connected socket fd; the handshake runs
 * within the first reads and writes. Returns 0 or -ENOMEM. */
int tls_conn_new(TlsConn **ret, TlsContext *t, int fd);
/* Frees the session (no I/O: send close_notify first with tls_shutdown()). */
TlsConn *tls_conn_free(TlsConn *c);

/* The transport (see transport.h): data, 0 once the peer's close_notify
 * came (a clean end: its last line counts), -EAGAIN, or -errno: -ECONNABORTED
 * for a stream that ended without close_notify (truncated: an unfinished
 * line is not the peer's to deliver), -EPROTO for a failed handshake or a
 * TLS error (tls_conn_error() says which). */
ssize_t tls_read(int fd, void *conn, void *buf, size_t n);
/* Coalesces the spans into one record-sized scratch buffer shared by every
 * connection, and writes it. Bytes OpenSSL could not write yet are kept by
 * the connection and written first next time (a retry must offer the same
 * bytes): they count as taken. Returns the bytes taken from iov or -errno. */
ssize_t tls_writev(int fd, void *conn, const struct iovec *iov, size_t n);
/* Sends close_notify (once, without waiting for the peer's), then FIN. */
int tls_shutdown(int fd, void *conn);
/* Sends close_notify if it can, without blocking (before a close). */
void tls_close_notify(TlsConn *c);

/* The handshake is done. */
bool tls_conn_established(const TlsConn *c);
/* The last read wanted to write (EPOLLOUT should retry the read), the last
 * write wanted to read (EPOLLIN should retry the write). */
bool tls_conn_read_wants_write(const TlsConn *c);
bool tls_conn_write_wants_read(const TlsConn *c);
/* The authenticated identity (CN of a verified client certificate, else its
 * first subjectAltName), or NULL. Control bytes are shown as '?'. */
const char *tls_conn_identity(const TlsConn *c);
/* Why the last -EPROTO happened, for a log line. */
const char *tls_conn_error(const TlsConn *c);
