/* TLS: owns the OpenSSL server context and each connection's SSL object.
 *
 * Edge-triggered epoll and OpenSSL: bytes already decrypted inside OpenSSL
 * raise no edge, so a reader keeps reading until SSL_read_ex() says it
 * wants to read from the socket (the caller only stops on -EAGAIN). A read
 * may want to write (and a write to read): the flags say so, and the caller
 * retries on the other edge. A write that OpenSSL could not finish must be
 * offered again with the same bytes (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
 * lets the buffer move, not the bytes change): they are copied into the
 * connection's own buffer, so a drop or a reload in the meantime cannot
 * change them; a connection holds that buffer only while a write is pending.
 * Idle connections hold no OpenSSL buffers (SSL_MODE_RELEASE_BUFFERS). */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "prefix.h"
#include "util.h"

/* One TLS record: what one SSL_write_ex() turns into one record. */
#define TLS_SCRATCH_SIZE ((size_t)16 * 1024)

struct TlsContext {
        SSL_CTX *ctx;
};

struct TlsConn {
        SSL *ssl;
        char *pending; /* bytes taken but not yet written */
        uint32_t pending_len;
        bool read_wants_write;
        bool write_wants_read;
        bool established;
        char *identity;
        unsigned long error;
};

static char scratch[TLS_SCRATCH_SIZE];

/* The line of setting 'name' in the tls group, else the group's. */
static unsigned tls_line(const TlsConfig *cfg, const char *name) {
        unsigned line = strcmp(name, "cert_file") == 0      ? cfg->cert_file_line
                        : strcmp(name, "key_file") == 0     ? cfg->key_file_line
                        : strcmp(name, "ca_file") == 0      ? cfg->ca_file_line
                        : strcmp(name, "ciphers") == 0      ? cfg->ciphers_line
                        : strcmp(name, "ciphersuites") == 0 ? cfg->ciphersuites_line
                                                            : 0;
        return line ? line : cfg->line;
}

/* "FILE:LINE: setting 'tls.NAME': what ... : OpenSSL's reason". */
_printf_(5, 6) static int tls_error(const TlsConfig *cfg, char *err, size_t errlen, const char *name,
                                    const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        unsigned long e = ERR_peek_last_error();
        char why[256] = "";
        if (e)
                ERR_error_string_n(e, why, sizeof(why));
        ERR_clear_error();
        (void)snprintf(err, errlen, "%s:%u: setting 'tls.%s': %s%s%s", cfg->source ? cfg->source : "?",
                       tls_line(cfg, name), name, msg, why[0] ? ": " : "", why);
        return -EINVAL;
}

/* A file OpenSSL is about to read: say plainly when it is missing or
 * unreadable, which OpenSSL reports only as a parse failure. */
static int tls_check_file(const TlsConfig *cfg, char *err, size_t errlen, const char *name,
                          const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;
                (void)snprintf(err, errlen, "%s:%u: setting 'tls.%s': cannot read %s: %s",
                               cfg->source ? cfg->source : "?", tls_line(cfg, name), name, path,
                               strerror(e));
                return -e;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                (void)snprintf(err, errlen, "%s:%u: setting 'tls.%s': %s is not a regular file",
                               cfg->source ? cfg->source : "?", tls_line(cfg, name), name, path);
                return -EINVAL;
        }
        return 0;
}

static int tls_verify_callback(int ok, X509_STORE_CTX *ctx _unused_) {
        return ok;
}

int tls_context_new(TlsContext **ret, const TlsConfig *cfg, char *err, size_t errlen) {
        ERR_clear_error();
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
                (void)tls_error(cfg, err, errlen, "cert_file", "cannot create a TLS context");
                return -ENOMEM;
        }
        TlsContext *t = calloc(1, sizeof(*t));
        if (!t) {
                SSL_CTX_free(ctx);
                return -ENOMEM;
        }
        t->ctx = ctx;
        int r;

        if ((r = tls_check_file(cfg, err, errlen, "cert_file", cfg->cert_file)) < 0)
                goto fail;
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
                r = tls_error(cfg, err, errlen, "cert_file", "%s is not a PEM certificate chain",
                              cfg->cert_file);
                goto fail;
        }
        if ((r = tls_check_file(cfg, err, errlen, "key_file", cfg->key_file)) < 0)
                goto fail;
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
                r = tls_error(cfg, err, errlen, "key_file", "%s is not a PEM private key (or is encrypted)",
                              cfg->key_file);
                goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
                r = tls_error(cfg, err, errlen, "key_file", "%s does not match the certificate in %s",
                              cfg->key_file, cfg->cert_file);
                goto fail;
        }
        if (cfg->ca_file && cfg->ca_file[0]) {
                if ((r = tls_check_file(cfg, err, errlen, "ca_file", cfg->ca_file)) < 0)
                        goto fail;
                if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
                        r = tls_error(cfg, err, errlen, "ca_file", "%s holds no usable CA certificate",
                                      cfg->ca_file);
                        goto fail;
                }
                /* The CAs are named in the CertificateRequest, so a client
                 * knows which certificate to send. */
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
                if (names)
                        SSL_CTX_set_client_CA_list(ctx, names);
        }
        int mode = cfg->client_auth == TLS_CLIENT_AUTH_REQUIRE
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                   : cfg->client_auth == TLS_CLIENT_AUTH_OPTIONAL ? SSL_VERIFY_PEER
                                                                  : SSL_VERIFY_NONE;
        SSL_CTX_set_verify(ctx, mode, mode == SSL_VERIFY_NONE ? NULL : tls_verify_callback);
        if (SSL_CTX_set_min_proto_version(ctx, cfg->min_version == TLS_VERSION_1_3 ? TLS1_3_VERSION
                                                                                   : TLS1_2_VERSION) != 1) {
                r = tls_error(cfg, err, errlen, "min_version", "cannot set the protocol floor");
                goto fail;
        }
        if (cfg->ciphers && cfg->ciphers[0] && SSL_CTX_set_cipher_list(ctx, cfg->ciphers) != 1) {
                r = tls_error(cfg, err, errlen, "ciphers", "no usable cipher in \"%s\"", cfg->ciphers);
                goto fail;
        }
        if (cfg->ciphersuites && cfg->ciphersuites[0] &&
            SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites) != 1) {
                r = tls_error(cfg, err, errlen, "ciphersuites", "no usable TLS 1.3 suite in \"%s\"",
                              cfg->ciphersuites);
                goto fail;
        }
        SSL_CTX_set_options(ctx,
                            SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_ENABLE_KTLS);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
        /* One session cache per process is all a relay needs; tickets let
         * reconnecting clients resume without it. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        *ret = t;
        return 0;
fail:
        tls_context_free(t);
        return r;
}

TlsContext *tls_context_free(TlsContext *t) {
        if (!t)
                return NULL;
        SSL_CTX_free(t->ctx);
        free(t);
        return NULL;
}

int tls_conn_new(TlsConn **ret, TlsContext *t, int fd) {
        TlsConn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->ssl = SSL_new(t->ctx);
        if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                ERR_clear_error();
                tls_conn_free(c);
                return -ENOMEM;
        }
        SSL_set_accept_state(c->ssl);
        *ret = c;
        return 0;
}

TlsConn *tls_conn_free(TlsConn *c) {
        if (!c)
                return NULL;
        SSL_free(c->ssl);
        free(c->pending);
        free(c->identity);
        free(c);
        return NULL;
}

static void tls_conn_identify(TlsConn *c) {
        X509 *cert = SSL_get0_peer_certificate(c->ssl);
        if (!cert || SSL_get_verify_result(c->ssl) != X509_V_OK)
                return;
        char name[PREFIX_USER_MAX + 1] = "";
        X509_NAME *subject = X509_get_subject_name(cert);
        if (subject && X509_NAME_get_text_by_NID(subject, NID_commonName, name, sizeof(name)) <= 0)
                name[0] = '\0';
        if (!name[0]) {
                GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
                for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !name[0]; i++) {
                        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
                        if (g->type == GEN_DNS || g->type == GEN_EMAIL || g->type == GEN_URI) {
                                const ASN1_IA5STRING *s = g->d.ia5;
                                size_t n = MIN((size_t)s->length, sizeof(name) - 1);
                                memcpy(name, s->data, n);
                                name[n] = '\0';
                        }
                }
                GENERAL_NAMES_free(sans);
        }
        ERR_clear_error();
        if (!name[0])
                return;
        /* A certificate is the peer's words: no byte of it may end a line. */
        for (char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        c->identity = strdup(name);
}

/* Maps an OpenSSL failure of the last call to an errno-style code. */
static ssize_t tls_failed(TlsConn *c, int ret) {
        int e = SSL_get_error(c->ssl, ret);
        switch (e) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL: {
                int saved = errno;
                c->error = ERR_get_error();
                ERR_clear_error();
                /* EOF without close_notify: truncated, not a clean end. */
                return saved && saved != EAGAIN ? -saved : -ECONNABORTED;
        }
        default:
                c->error = ERR_get_error();
                ERR_clear_error();
                if (c->error && ERR_GET_REASON(c->error) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                        return -ECONNABORTED;
                return -EPROTO;
        }
}

ssize_t tls_read(int fd _unused_, void *conn, void *buf, size_t n) {
        TlsConn *c = conn;
        size_t got = 0;
        ERR_clear_error();
        int ret = SSL_read_ex(c->ssl, buf, n, &got);
        if (!c->established && SSL_is_init_finished(c->ssl)) {
                c->established = true;
                tls_conn_identify(c);
        }
        if (ret == 1) {
                c->read_wants_write = false;
                return (ssize_t)got;
        }
        c->read_wants_write = SSL_get_error(c->ssl, ret) == SSL_ERROR_WANT_WRITE;
        return tls_failed(c, ret);
}

/* Writes what is pending; 0 once nothing is, -errno otherwise. */
static ssize_t tls_write_pending(TlsConn *c) {
        while (c->pending_len > 0) {
                size_t w = 0;
                ERR_clear_error();
                int ret = SSL_write_ex(c->ssl, c->pending, c->pending_len, &w);
                if (ret != 1) {
                        c->write_wants_read = SSL_get_error(c->ssl, ret) == SSL_ERROR_WANT_READ;
                        ssize_t r = tls_failed(c, ret);
                        return r == 0 ? -EPIPE : r;
                }
                c->write_wants_read = false;
                memmove(c->pending, c->pending + w, c->pending_len - w);
                c->pending_len -= (uint32_t)w;
        }
        free(c->pending);
        c->pending = NULL;
        return 0;
}

ssize_t tls_writev(int fd, void *conn, const struct iovec *iov, size_t n) {
        TlsConn *c = conn;
        if (BIO_get_ktls_send(SSL_get_wbio(c->ssl)) && c->pending_len == 0) {
                /* The kernel encrypts: the plain path, scatter-gather and all. */
                struct msghdr msg = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = n};
                ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                return w < 0 ? -errno : w;
        }
        ssize_t r = tls_write_pending(c);
        if (r < 0)
                return r;

        size_t len = 0;
        for (size_t i = 0; i < n && len < sizeof(scratch); i++) {
                size_t k = MIN(iov[i].iov_len, sizeof(scratch) - len);
                memcpy(scratch + len, iov[i].iov_base, k);
                len += k;
        }
        if (len == 0)
                return 0;
        size_t w = 0;
        ERR_clear_error();
        int ret = SSL_write_ex(c->ssl, scratch, len, &w);
        if (ret == 1) {
                c->write_wants_read = false;
                return (ssize_t)w;
        }
        int e = SSL_get_error(c->ssl, ret);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
                r = tls_failed(c, ret);
                return r == 0 ? -EPIPE : r;
        }
        /* OpenSSL holds these bytes in a record now: keep them for the
         * retry and count them as taken. */
        c->write_wants_read = e == SSL_ERROR_WANT_READ;
        c->pending = malloc(len);
        if (!c->pending)
                return -ENOMEM;
        memcpy(c->pending, scratch, len);
        c->pending_len = (uint32_t)len;
        return (ssize_t)len;
}

void tls_close_notify(TlsConn *c) {
        /* Not after a fatal error (OpenSSL forbids it), and not over bytes
         * of a record still pending. */
        if (c->established && !c->error && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN) &&
            c->pending_len == 0) {
                ERR_clear_error();
                (void)SSL_shutdown(c->ssl);
                ERR_clear_error();
        }
}

int tls_shutdown(int fd, void *conn) {
        tls_close_notify(conn);
        return shutdown(fd, SHUT_WR) < 0 ? -errno : 0;
}

bool tls_conn_established(const TlsConn *c) {
        return c->established;
}

bool tls_conn_read_wants_write(const TlsConn *c) {
        return c->read_wants_write;
}

bool tls_conn_write_wants_read(const TlsConn *c) {
        return c->write_wants_read;
}

const char *tls_conn_identity(const TlsConn *c) {
        return c->identity;
}

const char *tls_conn_error(const TlsConn *c) {
        const char *why = c->error ? ERR_reason_error_string(c->error) : NULL;
        return why ? why : "TLS error";
}
