/* Unit tests of the hub with TLS clients, in-process: each client is a
 * socketpair whose far end the test drives with an OpenSSL client, the hub
 * pumped at timeout 0 in between. Certificates come from make-certs.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "server.h"
#include "tls.h"
#include "util.h"

static char certs[64];

static void make_certs(void) {
        snprintf(certs, sizeof certs, "/tmp/eb-tls-XXXXXX");
        cr_assert(mkdtemp(certs));
        char cmd[256];
        snprintf(cmd, sizeof cmd, "sh '%s' '%s'", getenv("EB_MAKE_CERTS") ?: "tests/make-certs.sh", certs);
        cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static void remove_certs(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs);
        cr_assert_eq(system(cmd), 0);
}

static char *cert_path(const char *name) {
        char *p;
        cr_assert(asprintf(&p, "%s/%s", certs, name) > 0);
        return p;
}

typedef struct Hub {
        Server *s;
        char dir[64], path[128];
} Hub;

static void hub_new(Hub *h, const char *text, TlsClientAuth auth) {
        make_certs();
        snprintf(h->dir, sizeof h->dir, "/tmp/eb-hub-XXXXXX");
        cr_assert(mkdtemp(h->dir));
        snprintf(h->path, sizeof h->path, "%s/eb.conf", h->dir);
        FILE *f = fopen(h->path, "w");
        cr_assert(f);
        fputs(text, f);
        cr_assert(fclose(f) == 0);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        cr_assert(sigprocmask(SIG_BLOCK, &mask, NULL) == 0);
        /* As the daemon does: OpenSSL writes with write(2), no MSG_NOSIGNAL. */
        cr_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
        Config *c;
        char err[512];
        cr_assert_eq(config_load(h->path, true, &c, NULL, err, sizeof err), 0, "%s", err);
        cr_assert_eq(server_new(&h->s, c, h->path, false), 0);

        TlsConfig t = {
                .present = true,
                .cert_file = cert_path("server.pem"),
                .key_file = cert_path("server.key"),
                .ca_file = cert_path("ca.pem"),
                .client_auth = auth,
                .min_version = TLS_VERSION_1_2,
                .ciphers = (char *)"",
                .ciphersuites = (char *)"",
                .handshake_timeout = 10,
                .source = h->path,
        };
        TlsContext *ctx;
        cr_assert_eq(tls_context_new(&ctx, &t, err, sizeof err), 0, "%s", err);
        server_set_tls(h->s, ctx);
        free(t.cert_file);
        free(t.key_file);
        free(t.ca_file);
}

static void hub_free(Hub *h) {
        server_free(h->s);
        unlink(h->path);
        rmdir(h->dir);
        remove_certs();
}

static void pump(Hub *h, int rounds) {
        for (int i = 0; i < rounds; i++)
                cr_assert_eq(server_run_once(h->s, 0), 0);
}

static int hub_plain(Hub *h) {
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        struct sockaddr peer = {.sa_family = AF_UNIX};
        server_add_connection(h->s, sv[0], &peer, sizeof(sa_family_t),
                              &(ConnSpec){.role = LISTEN_ROLE_BOTH});
        return sv[1];
}

/* A TLS client of the hub: its SSL object and its end of the socketpair. */
typedef struct Peer {
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
} Peer;

/* Connects (cert: a client certificate name from make-certs.sh, or NULL)
 * and pumps the hub until the handshake is over; returns whether it
 * succeeded. */
static bool peer_connect(Hub *h, Peer *p, const char *cert) {
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        struct sockaddr addr = {.sa_family = AF_UNIX};
        server_add_connection(h->s, sv[0], &addr, sizeof(sa_family_t), &(ConnSpec){.tls = true});
        p->fd = sv[1];
        p->ctx = SSL_CTX_new(TLS_client_method());
        cr_assert(p->ctx);
        char *ca = cert_path("ca.pem");
        cr_assert_eq(SSL_CTX_load_verify_locations(p->ctx, ca, NULL), 1);
        free(ca);
        SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, NULL);
        if (cert) {
                char *pem, *key;
                cr_assert(asprintf(&pem, "%s/%s.pem", certs, cert) > 0 &&
                          asprintf(&key, "%s/%s.key", certs, cert) > 0);
                cr_assert_eq(SSL_CTX_use_certificate_file(p->ctx, pem, SSL_FILETYPE_PEM), 1);
                cr_assert_eq(SSL_CTX_use_PrivateKey_file(p->ctx, key, SSL_FILETYPE_PEM), 1);
                free(pem);
                free(key);
        }
        p->ssl = SSL_new(p->ctx);
        cr_assert(p->ssl && SSL_set_fd(p->ssl, p->fd) == 1);
        SSL_set_connect_state(p->ssl);
        cr_assert_eq(SSL_set1_host(p->ssl, "localhost"), 1);
        for (int i = 0; i < 200; i++) {
                int r = SSL_do_handshake(p->ssl);
                if (r == 1) {
                        /* TLS 1.3: the server's verdict on a client
                         * certificate comes after; read it. */
                        pump(h, 2);
                        char c;
                        size_t got;
                        r = SSL_read_ex(p->ssl, &c, 1, &got);
                        int e = SSL_get_error(p->ssl, r);
                        ERR_clear_error();
                        return e == SSL_ERROR_WANT_READ;
                }
                int e = SSL_get_error(p->ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                        ERR_clear_error();
                        return false;
                }
                pump(h, 1);
        }
        return false;
}

static void peer_free(Peer *p) {
        SSL_free(p->ssl);
        SSL_CTX_free(p->ctx);
        if (p->fd >= 0)
                close(p->fd);
}

static void peer_send(Hub *h, Peer *p, const char *s) {
        size_t n = strlen(s), w;
        for (int i = 0; n > 0 && i < 100; i++) {
                if (SSL_write_ex(p->ssl, s, n, &w) == 1) {
                        s += w;
                        n -= w;
                }
                pump(h, 1);
        }
        cr_assert_eq(n, 0, "could not send");
}

/* What the hub sent to p (decrypted), pumping as it goes, until 'want'
 * bytes came or nothing more does. */
static size_t peer_recv(Hub *h, Peer *p, char *buf, size_t size, size_t want) {
        size_t got = 0;
        /* want 0: what is there now; else until want bytes or quiet. */
        for (int idle = 0; idle < (want ? 20 : 1) && got < MAX(want, (size_t)1) && got < size - 1;) {
                size_t n;
                if (SSL_read_ex(p->ssl, buf + got, size - 1 - got, &n) == 1) {
                        got += n;
                        idle = 0;
                        continue;
                }
                ERR_clear_error();
                pump(h, 1);
                idle++;
        }
        buf[got] = '\0';
        return got;
}

static size_t plain_recv(int fd, char *buf, size_t size) {
        size_t got = 0;
        ssize_t n;
        while ((n = read(fd, buf + got, size - 1 - got)) > 0)
                got += (size_t)n;
        buf[got] = '\0';
        return got;
}

Test(hub_tls, tls_and_plain_clients_relay_both_ways) {
        Hub h;
        hub_new(&h, "", TLS_CLIENT_AUTH_NONE);
        Peer a;
        cr_assert(peer_connect(&h, &a, NULL), "handshake failed");
        int b = hub_plain(&h);
        peer_send(&h, &a, "from tls\n");
        pump(&h, 2);
        char buf[1 << 16];
        plain_recv(b, buf, sizeof buf);
        cr_assert_str_eq(buf, "from tls\n");

        /* Thousands of lines, whole and in order, through TLS records. */
        static char all[1 << 20];
        size_t len = 0;
        for (int i = 0; i < 5000; i++)
                len += (size_t)snprintf(all + len, sizeof all - len, "line %05d\n", i);
        for (size_t off = 0; off < len;) {
                ssize_t w = write(b, all + off, len - off);
                if (w > 0)
                        off += (size_t)w;
                pump(&h, 1);
        }
        static char got[1 << 20];
        size_t n = peer_recv(&h, &a, got, sizeof got, len);
        cr_assert_eq(n, len, "got %zu of %zu bytes", n, len);
        cr_assert(memcmp(got, all, len) == 0, "the lines arrived changed");
        peer_free(&a);
        close(b);
        hub_free(&h);
}

Test(hub_tls, client_auth_require_refuses_a_client_without_certificate) {
        Hub h;
        hub_new(&h, "", TLS_CLIENT_AUTH_REQUIRE);
        Peer a, b, c;
        cr_assert_not(peer_connect(&h, &a, NULL), "a client without a certificate got through");
        cr_assert_not(peer_connect(&h, &c, "other"), "a certificate of another CA got through");
        cr_assert(peer_connect(&h, &b, "client"), "a client with a certificate was refused");
        pump(&h, 2);
        cr_assert_eq(server_stats(h.s)->tls_failures, 2);
        cr_assert_eq(server_clients(h.s), 1);
        peer_free(&a);
        peer_free(&b);
        peer_free(&c);
        hub_free(&h);
}

Test(hub_tls, prefix_u_is_the_certificate_identity) {
        Hub h;
        hub_new(&h, "prefix = \"%u: \";\n", TLS_CLIENT_AUTH_OPTIONAL);
        Peer alice, bob, anon;
        cr_assert(peer_connect(&h, &alice, "client"));
        cr_assert(peer_connect(&h, &bob, "nocn"));
        cr_assert(peer_connect(&h, &anon, NULL));
        int r = hub_plain(&h);
        peer_send(&h, &alice, "hi\n");
        peer_send(&h, &bob, "hey\n");
        peer_send(&h, &anon, "who\n");
        pump(&h, 2);
        char buf[256];
        plain_recv(r, buf, sizeof buf);
        cr_assert_str_eq(buf, "alice: hi\nbob.example: hey\n-: who\n");
        peer_free(&alice);
        peer_free(&bob);
        peer_free(&anon);
        close(r);
        hub_free(&h);
}

/* The last line without LF is the peer's only once it closed with
 * close_notify; a stream cut without it is truncated. */
Test(hub_tls, last_line_needs_close_notify) {
        Hub h;
        hub_new(&h, "", TLS_CLIENT_AUTH_NONE);
        Peer clean, cut;
        cr_assert(peer_connect(&h, &clean, NULL));
        cr_assert(peer_connect(&h, &cut, NULL));
        int r = hub_plain(&h);
        peer_send(&h, &cut, "cut short");
        shutdown(cut.fd, SHUT_WR);
        pump(&h, 3);
        peer_send(&h, &clean, "said goodbye");
        cr_assert(SSL_shutdown(clean.ssl) >= 0);
        shutdown(clean.fd, SHUT_WR);
        pump(&h, 3);
        char buf[256];
        plain_recv(r, buf, sizeof buf);
        cr_assert_str_eq(buf, "said goodbye\n");
        cr_assert_eq(server_clients(h.s), 1);
        peer_free(&clean);
        peer_free(&cut);
        close(r);
        hub_free(&h);
}

/* A TLS reader that stops reading is cut off like a plain one, while the
 * others get everything. */
Test(hub_tls, a_tls_reader_that_stops_reading_is_cut_off) {
        Hub h;
        hub_new(&h, "max_queue_bytes = 65536;\n", TLS_CLIENT_AUTH_NONE);
        Peer slow, fast;
        cr_assert(peer_connect(&h, &slow, NULL));
        cr_assert(peer_connect(&h, &fast, NULL));
        int sender = hub_plain(&h);
        static char line[1000], got[1 << 16];
        memset(line, 'x', sizeof line - 1);
        line[sizeof line - 1] = '\n';
        size_t total = 0;
        for (int i = 0; i < 2000 && server_stats(h.s)->slow_disconnects == 0; i++) {
                cr_assert_eq(write(sender, line, sizeof line), (ssize_t)sizeof line);
                pump(&h, 1);
                total += peer_recv(&h, &fast, got, sizeof got, 0);
        }
        cr_assert_eq(server_stats(h.s)->slow_disconnects, 1, "the stalled TLS reader was never cut off");
        total += peer_recv(&h, &fast, got, sizeof got, SIZE_MAX);
        cr_assert_eq(total, (size_t)server_stats(h.s)->messages * sizeof line,
                     "the fast reader lost messages");
        peer_free(&slow);
        peer_free(&fast);
        close(sender);
        hub_free(&h);
}

/* What a TLS reader got, as numbered lines ("NNNNNN xxx...\n", LEN bytes):
 * in order, each whole, with the gaps counted. */
typedef struct Lines {
        char buf[8192];
        size_t len;
        long last, gaps;
} Lines;

static void lines_take(Lines *l, Peer *p, size_t max) {
        size_t n;
        if (SSL_read_ex(p->ssl, l->buf + l->len, MIN(max, sizeof l->buf - l->len), &n) != 1) {
                ERR_clear_error();
                return;
        }
        l->len += n;
        char *s = l->buf, *lf;
        while ((lf = memchr(s, '\n', l->len - (size_t)(s - l->buf)))) {
                cr_assert_eq(lf - s + 1, 100, "a broken line of %td bytes", lf - s + 1);
                long seq = strtol(s, NULL, 10);
                for (char *q = s + 7; q < lf; q++)
                        cr_assert_eq(*q, 'a' + seq % 26, "line %ld is not whole", seq);
                cr_assert_gt(seq, l->last, "line %ld after %ld", seq, l->last);
                l->gaps += seq > l->last + 1;
                l->last = seq;
                s = lf + 1;
        }
        l->len -= (size_t)(s - l->buf);
        memmove(l->buf, s, l->len);
}

/* Drop mode through TLS: a stalled TLS reader skips whole messages only,
 * in order, even with a record OpenSSL could not finish pending when the
 * drop comes. */
Test(hub_tls, drop_mode_keeps_tls_messages_whole_and_in_order) {
        enum { LEN = 100, COUNT = 3000 };
        Hub h;
        hub_new(&h, "slow_client = \"drop\";\nmax_queue_bytes = 16384;\nmax_message_bytes = 1024;\n",
                TLS_CLIENT_AUTH_NONE);
        Peer slow;
        cr_assert(peer_connect(&h, &slow, NULL));
        int sender = hub_plain(&h);
        static Lines got = {.last = -1};
        char msg[LEN];
        for (int i = 0; i < COUNT; i++) {
                int k = snprintf(msg, sizeof msg, "%06d ", i);
                memset(msg + k, 'a' + i % 26, LEN - 1 - (size_t)k);
                msg[LEN - 1] = '\n';
                cr_assert_eq(write(sender, msg, LEN), LEN);
                pump(&h, 1);
                /* Read a little now and then: steadily too slow. */
                if (i % 50 == 0)
                        lines_take(&got, &slow, 512);
        }
        close(sender);
        for (int i = 0; i < 2000 && got.last < COUNT - 1; i++) {
                pump(&h, 1);
                lines_take(&got, &slow, sizeof got.buf);
        }
        cr_assert_eq(got.last, COUNT - 1, "the slow reader stopped at message %ld", got.last);
        cr_assert_gt(got.gaps, 0, "no gap: nothing was dropped for it");
        cr_assert_gt(server_stats(h.s)->dropped, 0, "nothing was dropped");
        cr_assert_eq(server_clients(h.s), 1, "the slow TLS reader was cut off in drop mode");
        peer_free(&slow);
        hub_free(&h);
}

/* Handshakes count towards max_clients. */
Test(hub_tls, handshakes_count_towards_max_clients) {
        Hub h;
        hub_new(&h, "max_clients = 1;\n", TLS_CLIENT_AUTH_NONE);
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        struct sockaddr addr = {.sa_family = AF_UNIX};
        server_add_connection(h.s, sv[0], &addr, sizeof(sa_family_t), &(ConnSpec){.tls = true});
        int plain = hub_plain(&h);
        cr_assert_eq(server_clients(h.s), 1);
        cr_assert_eq(server_stats(h.s)->rejected, 1,
                     "a client past max_clients was taken during a handshake");
        char c;
        cr_assert_eq(read(plain, &c, 1), 0, "the rejected client was not closed");
        close(plain);
        close(sv[1]);
        hub_free(&h);
}
