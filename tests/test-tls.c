/* Integration tests of TLS listeners and roles with the real daemon and
 * real TLS peers: openssl s_client, gnutls-cli and Python's ssl module
 * (Debian's /usr/bin/python3), plus an OpenSSL client of the test's own for
 * the load. Certificates come from make-certs.sh, made fresh per test. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define _unused_ __attribute__((unused))

typedef struct TlsSettings {
        const char *tls_extra, *extra;
} TlsSettings;

static char *tls_conf(Daemon *d, const uint16_t p[2], const void *arg) {
        const TlsSettings *t = arg;
        char cmd[512], *conf;
        snprintf(cmd, sizeof cmd, "sh '%s' '%s/certs'", getenv("EB_MAKE_CERTS") ?: "tests/make-certs.sh",
                 d->dir);
        cr_assert_eq(system(cmd), 0, "%s failed", cmd);
        cr_assert(
                asprintf(&conf,
                         "listen = ( \"127.0.0.1:@PORT@\", { address = \"127.0.0.1:%u\"; tls = true; } );\n"
                         "tls = { cert_file = \"certs/server.pem\"; key_file = \"certs/server.key\"; %s };\n"
                         "log_level = \"info\";\n%s\n",
                         p[0], t->tls_extra ? t->tls_extra : "", t->extra ? t->extra : "") > 0);
        return conf;
}

/* A daemon with a plain listener on d.port, a TLS one on the port returned
 * (both 127.0.0.1), certificates in DIR/certs, 'tls_extra' settings in the
 * tls group and 'extra' ones beside it. */
static uint16_t start_tls(Daemon *d, const char *tls_extra, const char *extra) {
        TlsSettings t = {tls_extra, extra};
        uint16_t p[2];
        daemon_exec_ports(d, p, 2, 1, tls_conf, &t);
        return p[0];
}

static char *certs_file(const Daemon *d, const char *name) {
        char *p;
        cr_assert(asprintf(&p, "%s/certs/%s", d->dir, name) > 0);
        return p;
}

/* A peer program with its stdin and stdout on a socketpair (so the
 * harness's line helpers read it), stderr into DIR/peer.log. */
typedef struct Peer {
        pid_t pid;
        int fd;
} Peer;

static Peer peer_spawn(const Daemon *d, char *const argv[]) {
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        char log[160];
        snprintf(log, sizeof log, "%s/peer.log", d->dir);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                int err = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (err < 0 || dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0 || dup2(err, 2) < 0)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(sv[1]);
        return (Peer){.pid = pid, .fd = sv[0]};
}

/* Ends the peer (closing its stdin first) and returns its exit status. */
static int peer_end(Peer *p) {
        shutdown(p->fd, SHUT_WR);
        int st = -1;
        for (int i = 0; i < 100; i++) {
                pid_t r = waitpid(p->pid, &st, WNOHANG);
                if (r == p->pid)
                        break;
                if (i == 99) {
                        kill(p->pid, SIGKILL);
                        (void)waitpid(p->pid, &st, 0);
                }
                harness_sleep_ms(50);
        }
        close(p->fd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool have(const char *program) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", program);
        return system(cmd) == 0;
}

/* The peer and a plain client exchange a line each way. */
static void exchange(Daemon *d, Peer *p, int plain, const char *who) {
        char want[64], line[128];
        /* The peer is connected once the daemon relays to it. */
        int64_t deadline = harness_now_ms() + harness_ms(10000);
        for (;;) {
                client_send_str(plain, "hello tls\n");
                ssize_t n = client_try_recv_line(p->fd, line, sizeof line, 300);
                if (n > 0) {
                        cr_assert_str_eq(line, "hello tls\n", "%s got: %s", who, line);
                        break;
                }
                cr_assert(harness_now_ms() < deadline, "%s never received a line; log:\n%s", who,
                          daemon_log_text(d));
        }
        snprintf(want, sizeof want, "hello from %s\n", who);
        client_send_str(p->fd, want);
        /* Lines the loop above sent twice may still come: skip them. */
        for (;;) {
                size_t n = client_recv_line(plain, line, sizeof line, 10000);
                if (n == strlen(want) && memcmp(line, want, n) == 0)
                        break;
                cr_assert_str_eq(line, "hello tls\n", "the plain client got: %s", line);
        }
}

/* A real TLS peer program and a plain client relay a line each way; in
 * argv "@CA@" becomes the CA file, "@PORT@" the TLS port, "@ADDR@"
 * 127.0.0.1:PORT. */
static void interop(const char *who, const char *const argv_template[]) {
        Daemon d;
        uint16_t port = start_tls(&d, NULL, NULL);
        int plain = client_connect(d.port);
        char *ca = certs_file(&d, "ca.pem"), portstr[8], addr[32];
        snprintf(portstr, sizeof portstr, "%u", port);
        snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
        char *argv[16];
        size_t n = 0;
        for (; argv_template[n] && n < 15; n++) {
                const char *a = argv_template[n];
                argv[n] = (char *)(strcmp(a, "@CA@") == 0     ? ca
                                   : strcmp(a, "@PORT@") == 0 ? portstr
                                   : strcmp(a, "@ADDR@") == 0 ? addr
                                                              : a);
        }
        argv[n] = NULL;
        Peer p = peer_spawn(&d, argv);
        exchange(&d, &p, plain, who);
        peer_end(&p);
        close(plain);
        free(ca);
        daemon_stop(&d);
}

Test(tls, openssl_s_client_relays_with_plain_clients) {
        if (!have("openssl"))
                cr_skip_test("openssl is not installed");
        const char *const argv[] = {"openssl",  "s_client", "-quiet",     "-verify_return_error",
                                    "-CAfile",  "@CA@",     "-verify_ip", "127.0.0.1",
                                    "-connect", "@ADDR@",   NULL};
        interop("s_client", argv);
}

Test(tls, gnutls_cli_relays_with_plain_clients) {
        if (!have("gnutls-cli"))
                cr_skip_test("gnutls-cli is not installed (gnutls-bin)");
        const char *const argv[] = {
                "gnutls-cli", "--logfile=/dev/null", "--x509cafile", "@CA@", "-p", "@PORT@", "127.0.0.1",
                NULL};
        interop("gnutls-cli", argv);
}

/* Python's ssl module: verifies the daemon against the CA and the address,
 * then relays lines between the socketpair and the TLS connection. */
static const char python_peer[] =
        "import socket, ssl, sys, threading\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
        "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[2]))),"
        " server_hostname='127.0.0.1')\n"
        "def up():\n"
        "    for line in sys.stdin.buffer:\n"
        "        s.sendall(line)\n"
        "threading.Thread(target=up, daemon=True).start()\n"
        "out = sys.stdout.buffer\n"
        "while True:\n"
        "    b = s.recv(65536)\n"
        "    if not b: break\n"
        "    out.write(b); out.flush()\n";

Test(tls, python_ssl_relays_with_plain_clients) {
        if (access("/usr/bin/python3", X_OK) != 0)
                cr_skip_test("/usr/bin/python3 is not installed");
        const char *const argv[] = {"/usr/bin/python3", "-c", python_peer, "@CA@", "@PORT@", NULL};
        interop("python", argv);
}

/* The test's own TLS client, blocking with a receive timeout. */
typedef struct Tls {
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
} Tls;

static bool tls_connect(Tls *t, const Daemon *d, uint16_t port, const char *cert) {
        t->fd = client_connect(port);
        struct timeval tv = {.tv_sec = 10 * harness_slow()};
        cr_assert(setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
        int fl = fcntl(t->fd, F_GETFL);
        cr_assert(fl >= 0 && fcntl(t->fd, F_SETFL, fl & ~O_NONBLOCK) == 0);
        t->ctx = SSL_CTX_new(TLS_client_method());
        char *ca = certs_file(d, "ca.pem");
        cr_assert(t->ctx && SSL_CTX_load_verify_locations(t->ctx, ca, NULL) == 1);
        free(ca);
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (cert) {
                char name[64];
                snprintf(name, sizeof name, "%s.pem", cert);
                char *pem = certs_file(d, name);
                snprintf(name, sizeof name, "%s.key", cert);
                char *key = certs_file(d, name);
                cr_assert(SSL_CTX_use_certificate_file(t->ctx, pem, SSL_FILETYPE_PEM) == 1);
                cr_assert(SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) == 1);
                free(pem);
                free(key);
        }
        t->ssl = SSL_new(t->ctx);
        cr_assert(t->ssl && SSL_set_fd(t->ssl, t->fd) == 1);
        bool ok = SSL_connect(t->ssl) == 1;
        ERR_clear_error();
        return ok;
}

static void tls_close(Tls *t) {
        SSL_free(t->ssl);
        SSL_CTX_free(t->ctx);
        close(t->fd);
}

/* Reads exactly len bytes (false on EOF, error or timeout). */
static bool tls_read_exact(Tls *t, char *buf, size_t len) {
        for (size_t got = 0; got < len;) {
                size_t n;
                if (SSL_read_ex(t->ssl, buf + got, len - got, &n) != 1) {
                        ERR_clear_error();
                        return false;
                }
                got += n;
        }
        return true;
}

/* The subject CN of the certificate the daemon presented. */
static void tls_server_cn(Tls *t, char *buf, size_t size) {
        X509 *c = SSL_get0_peer_certificate(t->ssl);
        cr_assert(c);
        cr_assert(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, buf, (int)size) > 0);
}

Test(tls, a_hundred_tls_clients_get_thousands_of_messages_whole_and_in_order) {
        enum { CLIENTS = 100, COUNT = 2000, LEN = 64 };
        Daemon d;
        uint16_t port = start_tls(&d, NULL, NULL);
        static Tls t[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
                cr_assert(tls_connect(&t[i], &d, port, NULL), "client %d: handshake failed", i);
        int sender = client_connect(d.port);
        cr_assert_eq(daemon_wait_stat(&d, "clients", CLIENTS + 1, 10000), CLIENTS + 1);
        /* Every TLS client is established (it has a cursor) once a line
         * reaches it: sync on one marker line first. */
        client_send_str(sender, "marker\n");
        char buf[LEN + 1];
        for (int i = 0; i < CLIENTS; i++)
                cr_assert(tls_read_exact(&t[i], buf, 7) && memcmp(buf, "marker\n", 7) == 0, "client %d", i);
        static char all[COUNT * LEN];
        for (uint32_t i = 0; i < COUNT; i++)
                seq_msg_format(all + (size_t)i * LEN, LEN, i);
        client_send(sender, all, sizeof all);
        static char got[COUNT * LEN];
        for (int i = 0; i < CLIENTS; i++) {
                cr_assert(tls_read_exact(&t[i], got, sizeof got), "client %d got less than everything", i);
                cr_assert(memcmp(got, all, sizeof all) == 0, "client %d got the messages changed", i);
        }
        for (int i = 0; i < CLIENTS; i++)
                tls_close(&t[i]);
        close(sender);
        daemon_stop(&d);
}

Test(tls, client_auth_require_and_prefix_u) {
        Daemon d;
        uint16_t port = start_tls(&d, "ca_file = \"certs/ca.pem\"; client_auth = \"require\";",
                                  "prefix = \"%u: \";");
        Tls none, alice, mallory;
        int plain = client_connect(d.port);
        cr_assert(tls_connect(&alice, &d, port, "client"), "a client with a certificate was refused");
        /* TLS 1.3 reports a refused client certificate on the first read. */
        bool refused = !tls_connect(&none, &d, port, NULL);
        char b;
        size_t n;
        refused = refused || SSL_read_ex(none.ssl, &b, 1, &n) != 1;
        cr_assert(refused, "a client without a certificate got through");
        refused = !tls_connect(&mallory, &d, port, "other");
        refused = refused || SSL_read_ex(mallory.ssl, &b, 1, &n) != 1;
        cr_assert(refused, "a certificate from another CA got through");
        cr_assert(daemon_log_contains(&d, "TLS handshake failed", 5000),
                  "no warning names the refused client");
        cr_assert(daemon_log_contains(&d, "127.0.0.1:", 0));
        const char *msg = "signed\n";
        size_t w;
        cr_assert(SSL_write_ex(alice.ssl, msg, strlen(msg), &w) == 1);
        char line[64];
        client_recv_line(plain, line, sizeof line, 10000);
        cr_assert_str_eq(line, "alice: signed\n");
        tls_close(&none);
        tls_close(&alice);
        tls_close(&mallory);
        close(plain);
        daemon_stop(&d);
}

Test(tls, a_silent_client_is_closed_at_handshake_timeout) {
        Daemon d;
        uint16_t port = start_tls(&d, "handshake_timeout = 1;", NULL);
        int silent = client_connect(port);
        cr_assert(client_wait_closed(silent, 10000), "a client that never sent a ClientHello stayed");
        cr_assert(daemon_log_contains(&d, "no TLS handshake within handshake_timeout", 2000));
        close(silent);
        daemon_stop(&d);
}

/* SIGHUP re-reads the certificate and key: new connections get the new
 * ones, connected clients stay; a key that does not match is refused and
 * the running pair kept. */
Test(tls, sighup_rotates_the_certificate_and_keeps_clients) {
        Daemon d;
        uint16_t port = start_tls(&d, NULL, NULL);
        Tls old;
        cr_assert(tls_connect(&old, &d, port, NULL));
        char cn[64];
        tls_server_cn(&old, cn, sizeof cn);
        cr_assert_str_eq(cn, "localhost");
        char *conf;
        cr_assert(asprintf(&conf,
                           "listen = ( \"127.0.0.1:%u\", { address = \"127.0.0.1:%u\"; tls = true; } );\n"
                           "tls = { cert_file = \"certs/rotated.pem\"; key_file = \"certs/%s\"; };\n"
                           "log_level = \"info\";\n",
                           d.port, port, "client.key") > 0);
        daemon_write_conf(&d, conf);
        free(conf);
        daemon_signal(&d, SIGHUP);
        cr_assert(daemon_log_contains(&d, "tls.key_file", 5000), "a mismatched key was not reported");
        Tls still;
        cr_assert(tls_connect(&still, &d, port, NULL));
        tls_server_cn(&still, cn, sizeof cn);
        cr_assert_str_eq(cn, "localhost", "the bad pair replaced the running one");

        cr_assert(
                asprintf(&conf,
                         "listen = ( \"127.0.0.1:%u\", { address = \"127.0.0.1:%u\"; tls = true; } );\n"
                         "tls = { cert_file = \"certs/rotated.pem\"; key_file = \"certs/rotated.key\"; };\n"
                         "log_level = \"info\";\n",
                         d.port, port) > 0);
        daemon_write_conf(&d, conf);
        free(conf);
        int before = daemon_log_count(&d, "reloaded configuration");
        daemon_signal(&d, SIGHUP);
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        while (daemon_log_count(&d, "reloaded configuration") <= before) {
                cr_assert(harness_now_ms() < deadline, "no reload");
                harness_sleep_ms(20);
        }
        Tls fresh;
        cr_assert(tls_connect(&fresh, &d, port, NULL));
        tls_server_cn(&fresh, cn, sizeof cn);
        cr_assert_str_eq(cn, "rotated", "new connections did not get the new certificate");
        /* The clients of the old pair still relay. */
        int plain = client_connect(d.port);
        cr_assert_eq(daemon_wait_stat(&d, "clients", 4, 5000), 4);
        client_send_str(plain, "after rotation\n");
        char buf[16];
        cr_assert(tls_read_exact(&old, buf, 15) && memcmp(buf, "after rotation\n", 15) == 0);
        cr_assert(tls_read_exact(&fresh, buf, 15) && memcmp(buf, "after rotation\n", 15) == 0);
        tls_close(&old);
        tls_close(&still);
        tls_close(&fresh);
        close(plain);
        daemon_stop(&d);
}

/* Unusable TLS settings are configuration errors: exit 78, the setting
 * named. */
Test(tls, unusable_tls_settings_exit_78_naming_the_setting) {
        static const struct {
                const char *tls, *want;
        } cases[] = {
                {"cert_file = \"certs/server.pem\"; key_file = \"certs/missing.key\";", "tls.key_file"},
                {"cert_file = \"certs/server.pem\"; key_file = \"certs/client.key\";", "tls.key_file"},
                {"cert_file = \"certs/nothing.pem\"; key_file = \"certs/server.key\";", "tls.cert_file"},
                {"cert_file = \"certs/server.pem\"; key_file = \"certs/server.key\"; ciphers = \"NOPE\";",
                 "tls.ciphers"},
                {"cert_file = \"certs/server.pem\"; key_file = \"certs/server.key\"; ciphersuites = "
                 "\"NOPE\";",
                 "tls.ciphersuites"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                Daemon d;
                daemon_init(&d);
                char cmd[512];
                snprintf(cmd, sizeof cmd, "sh '%s' '%s/certs'",
                         getenv("EB_MAKE_CERTS") ?: "tests/make-certs.sh", d.dir);
                cr_assert_eq(system(cmd), 0);
                char *conf;
                cr_assert(asprintf(&conf,
                                   "listen = ( { address = \"127.0.0.1:@PORT@\"; tls = true; } );\n"
                                   "tls = { %s };\n",
                                   cases[i].tls) > 0);
                daemon_exec(&d, conf, NULL);
                free(conf);
                int st = daemon_wait(&d, 10000);
                char *log = daemon_log_text(&d);
                cr_assert_eq(st, 78, "case %zu: exit %d; log:\n%s", i, st, log);
                cr_assert(strstr(log, cases[i].want), "case %zu: the log does not name %s:\n%s", i,
                          cases[i].want, log);
                free(log);
                daemon_stop(&d);
        }
}

/* Roles: a subscriber receives and what it sends is discarded (said once);
 * a publisher sends and receives nothing. */
static char *roles_conf(Daemon *d _unused_, const uint16_t p[2], const void *arg _unused_) {
        char *conf;
        cr_assert(
                asprintf(&conf,
                         "listen = ( \"127.0.0.1:@PORT@\", { address = \"127.0.0.1:%u\"; role = "
                         "\"subscribe\"; },\n"
                         "  { address = \"127.0.0.1:%u\"; role = \"publish\"; } );\nlog_level = \"info\";\n",
                         p[0], p[1]) > 0);
        return conf;
}

Test(tls, roles_subscribe_and_publish) {
        Daemon d;
        uint16_t p[2];
        daemon_exec_ports(&d, p, 2, 1, roles_conf, NULL);
        uint16_t sub_port = p[0], pub_port = p[1];
        daemon_wait_tcp_listening(&d, pub_port, 5000);
        int sub = client_connect(sub_port), pub = client_connect(pub_port), both = client_connect(d.port);
        cr_assert_eq(daemon_wait_stat(&d, "clients", 3, 5000), 3);
        client_send_str(pub, "published\n");
        client_expect_line(sub, "published\n");
        client_expect_line(both, "published\n");
        client_send_str(sub, "ignored\n");
        client_send_str(sub, "ignored again\n");
        client_send_str(both, "from both\n");
        client_expect_line(sub, "from both\n");
        cr_assert(client_recv_nothing(both, 300), "a subscriber's line was relayed");
        cr_assert(client_recv_nothing(pub, 300), "a publisher received something");
        cr_assert_eq(daemon_log_count(&d, "subscribe-only listener"), 1,
                     "the discard was not said exactly once");
        cr_assert_eq(daemon_stat(&d, "discarded"), 22);
        close(sub);
        close(pub);
        close(both);
        daemon_stop(&d);
}
