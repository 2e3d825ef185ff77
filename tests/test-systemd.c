/* End-to-end tests of epoll-broadcaster(8)'s systemd integration, without systemd:
 * socket activation through systemd-socket-activate (and hand-made
 * LISTEN_FDS), sd_notify through a NOTIFY_SOCKET datagram socket the test
 * owns (READY, STATUS, STOPPING, RELOADING, WATCHDOG, ERRNO), and the
 * syslog-priority prefixes when stderr is the journal stream.
 *
 * The daemon is started by the harness's daemon_exec_argv (the environment
 * without the systemd variables, plus those a test sets, and passed fds),
 * inside a harness Daemon (private directory, log file, waits). Every process
 * is stopped by its PID: the suite's .fini kills what is left, and each child
 * has PR_SET_PDEATHSIG. A collector thread drains the notify socket
 * continuously: sd_notify blocks when the receiver's queue (10 datagrams by
 * default) is full, so an undrained socket would stall the daemon. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void notify_close(void);

static void suite_fini(void) {
        notify_close();
        harness_cleanup();
}

TestSuite(systemd, .fini = suite_fini, .timeout = 30);

/* How long a STATUS= change may take to be sent: five of the daemon's 1-s
 * refresh periods (a hiccup of a shared machine is not a defect). */
#define STATUS_WAIT_MS 5000

/* The daemon on 127.0.0.1:d->port, logging at "info". */
#define INFO_CONF "listen = [\"127.0.0.1:@PORT@\"];\nlog_level = \"info\";\n"

/* A configuration the daemon refuses (exit 78): an unknown setting. */
#define BAD_CONF "listen = [\"127.0.0.1:@PORT@\"];\nno_such_setting = 1;\n"

/* The daemon with -c d->conf_path. */
static void spawn_daemon(Daemon *d, const char *const extra_env[], const int *fds, size_t n_fds) {
        char *argv[] = {(char *)harness_daemon_path(), (char *)"-c", d->conf_path, NULL};
        daemon_exec_argv(d, argv, extra_env, fds, n_fds);
}

static const char *socket_activate_path(void) {
        static const char *const candidates[] = {"/usr/bin/systemd-socket-activate",
                                                 "/bin/systemd-socket-activate",
                                                 "/usr/local/bin/systemd-socket-activate", NULL};
        for (int i = 0; candidates[i]; i++)
                if (access(candidates[i], X_OK) == 0)
                        return candidates[i];
        return NULL;
}

/* systemd-socket-activate passes only what -E names: add the sanitizer
 * settings so a sanitizer build behaves the same under it. */
static size_t add_passthrough_env(char **argv, size_t argc) {
        static const char *const names[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL};
        for (int i = 0; names[i]; i++)
                if (getenv(names[i])) {
                        argv[argc++] = (char *)"-E";
                        argv[argc++] = (char *)names[i];
                }
        return argc;
}

/* Runs `systemd-socket-activate [pre_args...] -- DAEMON -c CONF` in d. The
 * activator execs the daemon in its own process at the first connection,
 * so d->pid becomes the daemon's PID. */
static void spawn_activated(Daemon *d, const char *const pre_args[]) {
        const char *sa = socket_activate_path();
        if (!sa)
                cr_skip_test("systemd-socket-activate is not installed");
        char *argv[40];
        size_t argc = 0;
        argv[argc++] = (char *)sa;
        for (size_t i = 0; pre_args[i]; i++) {
                cr_assert(argc < 28);
                argv[argc++] = (char *)pre_args[i];
        }
        argc = add_passthrough_env(argv, argc);
        argv[argc++] = (char *)"--";
        argv[argc++] = (char *)harness_daemon_path();
        argv[argc++] = (char *)"-c";
        argv[argc++] = d->conf_path;
        argv[argc] = NULL;
        daemon_exec_argv(d, argv, NULL, NULL, 0);
}

static uint16_t other_free_port(uint16_t not_this) {
        for (;;) {
                uint16_t p = harness_free_port();
                if (p != not_this)
                        return p;
        }
}

/* A TCP socket bound to 127.0.0.1:port (port 0: any) but not listening:
 * connections to it are refused, and nobody else can bind the port
 * meanwhile. CLOEXEC. -1 (errno set) when the port is taken. */
static int reserve_port(uint16_t port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        struct sockaddr_in a = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
                int e = errno;
                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

/* A TCP socket listening on 127.0.0.1:port (port 0: any), CLOEXEC. */
static int tcp_listener(uint16_t port) {
        int fd = reserve_port(port);
        cr_assert(fd >= 0, "bind 127.0.0.1:%u: %s", port, strerror(errno));
        cr_assert(listen(fd, 16) == 0);
        return fd;
}

static void notify_reset(void);

/* Waits ≤ 5 s for a log line with needle (the process has bound its
 * address). Returns false when it exited with status 1 and "in use" in its
 * log instead: another test took the port meanwhile, and the caller may
 * retry on another one. Fails the test otherwise. */
static bool wait_bound(Daemon *d, const char *needle) {
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        for (;;) {
                if (daemon_log_contains(d, needle, 0))
                        return true;
                if (!daemon_running(d)) {
                        if (d->status == 1 && daemon_log_contains(d, "in use", 0))
                                return false;
                        char *log = daemon_log_text(d);
                        cr_assert_fail("exited with status %d before \"%s\"; log:\n%s", d->status, needle,
                                       log);
                }
                if (harness_now_ms() >= deadline) {
                        char *log = daemon_log_text(d);
                        cr_assert_fail("no \"%s\" within 5 s; log:\n%s", needle, log);
                }
                harness_sleep_ms(10);
        }
}

/* Forgets a failed attempt: its log and its notifications. */
static void attempt_reset(Daemon *d, int attempt) {
        cr_assert(attempt < 4, "no free port after %d attempts", attempt + 1);
        harness_sleep_ms(50); /* its last datagrams reach the collector */
        cr_assert(truncate(d->log_path, 0) == 0);
        notify_reset();
}

/* Writes conf_text (with @PORT@ = d->port, its first 'listen' address) and
 * starts the daemon with env until it listens there. */
static void start_daemon(Daemon *d, const char *conf_text, const char *const env[]) {
        for (int attempt = 0;; attempt++) {
                daemon_write_conf(d, conf_text);
                spawn_daemon(d, env, NULL, 0);
                char needle[64];
                snprintf(needle, sizeof needle, "listening on 127.0.0.1:%u", d->port);
                if (wait_bound(d, needle))
                        return;
                attempt_reset(d, attempt);
                d->port = harness_free_port();
        }
}

/* Runs systemd-socket-activate -l 127.0.0.1:PORT [-l unix_path] (with
 * --datagram: UDP) [-E notify_env] for the daemon with a config whose
 * 'listen' is 127.0.0.1:d->port (reserved: *reserved is the socket that
 * holds it) plus extra_conf; waits until the activator listens; returns
 * PORT. */
static uint16_t start_activated(Daemon *d, bool datagram, const char *unix_path, const char *notify_env,
                                const char *extra_conf, int *reserved) {
        *reserved = -1;
        for (int attempt = 0;; attempt++) {
                while ((*reserved = reserve_port(d->port)) < 0)
                        d->port = harness_free_port();
                char *conf;
                cr_assert(asprintf(&conf, "listen = [\"127.0.0.1:@PORT@\"%s];\nlog_level = \"info\";\n",
                                   extra_conf ? extra_conf : "") > 0);
                daemon_write_conf(d, conf);
                free(conf);
                uint16_t port = other_free_port(d->port);
                char listen_arg[64];
                snprintf(listen_arg, sizeof listen_arg, "127.0.0.1:%u", port);
                const char *args[12];
                size_t n = 0;
                if (datagram)
                        args[n++] = "--datagram";
                args[n++] = "-l";
                args[n++] = listen_arg;
                if (unix_path) {
                        args[n++] = "-l";
                        args[n++] = unix_path;
                }
                if (notify_env) {
                        args[n++] = "-E";
                        args[n++] = notify_env;
                }
                args[n] = NULL;
                spawn_activated(d, args);
                /* systemd-socket-activate says "Listening on ADDRESS as FD." */
                char needle[96];
                snprintf(needle, sizeof needle, "Listening on %s as 3", listen_arg);
                if (wait_bound(d, needle)) {
                        if (unix_path) {
                                const char *as4[] = {"Listening on ", unix_path, " as 4", NULL};
                                cr_assert(daemon_log_line_has(d, as4, 5000),
                                          "the activator does not listen on %s", unix_path);
                        }
                        return port;
                }
                close(*reserved);
                attempt_reset(d, attempt);
        }
}

/* ------------------------------------------------------------------------ */
/* The notify socket and its collector thread                                */

#define NOTIFY_MAX 4096
#define NOTIFY_TEXT 512

typedef struct NotifyMsg {
        int64_t t_ms; /* harness_now_ms() at reception */
        char text[NOTIFY_TEXT];
} NotifyMsg;

static struct {
        int fd;
        bool running;
        volatile bool stop;
        pthread_t thread;
        pthread_mutex_t lock;
        NotifyMsg *msgs;
        size_t n;
        size_t lost; /* past NOTIFY_MAX: drained but not kept */
        char path[108];
        char env[128]; /* "NOTIFY_SOCKET=path" */
} nt = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void *notify_collect(void *arg) {
        (void)arg;
        char buf[NOTIFY_TEXT];
        while (!nt.stop) {
                struct pollfd pfd = {.fd = nt.fd, .events = POLLIN};
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                ssize_t n = recv(nt.fd, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (n < 0)
                        continue;
                buf[n] = '\0';
                pthread_mutex_lock(&nt.lock);
                if (nt.n < NOTIFY_MAX) {
                        nt.msgs[nt.n].t_ms = harness_now_ms();
                        memcpy(nt.msgs[nt.n].text, buf, (size_t)n + 1);
                        nt.n++;
                } else {
                        nt.lost++;
                }
                pthread_mutex_unlock(&nt.lock);
        }
        return NULL;
}

/* Binds d->dir/notify and starts draining it; returns "NOTIFY_SOCKET=...". */
static const char *notify_open(Daemon *d) {
        cr_assert(!nt.running, "one notify socket per test");
        nt.msgs = calloc(NOTIFY_MAX, sizeof *nt.msgs);
        cr_assert(nt.msgs);
        nt.n = nt.lost = 0;
        snprintf(nt.path, sizeof nt.path, "%s/notify", d->dir);
        snprintf(nt.env, sizeof nt.env, "NOTIFY_SOCKET=%s", nt.path);
        nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert(nt.fd >= 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        cr_assert(strlen(nt.path) < sizeof a.sun_path);
        strcpy(a.sun_path, nt.path);
        cr_assert(bind(nt.fd, (struct sockaddr *)&a, sizeof a) == 0, "bind %s: %s", nt.path,
                  strerror(errno));
        nt.stop = false;
        cr_assert(pthread_create(&nt.thread, NULL, notify_collect, NULL) == 0);
        nt.running = true;
        return nt.env;
}

/* Initialises d, opens the notify socket and runs the activator
 * (start_activated) with NOTIFY_SOCKET passed on, on TCP or (datagram) UDP;
 * returns the activator's port. */
static uint16_t start_activated_notified(Daemon *d, bool datagram, int *reserved) {
        daemon_init(d);
        return start_activated(d, datagram, NULL, notify_open(d), NULL, reserved);
}

static void notify_reset(void) {
        pthread_mutex_lock(&nt.lock);
        nt.n = nt.lost = 0;
        pthread_mutex_unlock(&nt.lock);
}

static void notify_close(void) {
        if (nt.running) {
                nt.stop = true;
                pthread_join(nt.thread, NULL);
                nt.running = false;
        }
        if (nt.fd >= 0)
                close(nt.fd);
        nt.fd = -1;
        free(nt.msgs);
        nt.msgs = NULL;
        nt.n = 0;
}

/* True when one line of text starts with name_eq; its value (the rest of
 * the line, up to the LF) then goes to buf unless buf is NULL. */
static bool line_value(const char *text, const char *name_eq, char *buf, size_t size) {
        size_t nl = strlen(name_eq);
        for (const char *p = text; p && *p;) {
                if (strncmp(p, name_eq, nl) == 0) {
                        size_t l = strcspn(p + nl, "\n");
                        if (buf)
                                snprintf(buf, size, "%.*s", (int)l, p + nl);
                        return true;
                }
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        return false;
}

/* True when one line of text starts with prefix. */
static bool has_line(const char *text, const char *prefix) {
        return line_value(text, prefix, NULL, 0);
}

static size_t notify_count(void) {
        pthread_mutex_lock(&nt.lock);
        size_t n = nt.n;
        pthread_mutex_unlock(&nt.lock);
        return n;
}

/* Copy of message i (i < notify_count()). */
static NotifyMsg notify_get(size_t i) {
        pthread_mutex_lock(&nt.lock);
        NotifyMsg m = nt.msgs[i];
        pthread_mutex_unlock(&nt.lock);
        return m;
}

/* Every message so far, for failure reports (free() it). */
static char *notify_dump(void) {
        size_t n = notify_count(), cap = n * 80 + 64, len = 0;
        char *s = malloc(cap);
        cr_assert(s);
        s[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                NotifyMsg m = notify_get(i);
                char one[160];
                int l = snprintf(one, sizeof one, "  [%zu] %.120s\n", i, m.text);
                for (char *p = one + 6; *p && p < one + l - 1; p++)
                        if (*p == '\n')
                                *p = '|';
                if (len + (size_t)l + 1 > cap)
                        break;
                memcpy(s + len, one, (size_t)l + 1);
                len += (size_t)l;
        }
        return s;
}

/* Waits ≤ timeout_ms for a message at index ≥ *cursor with a line starting
 * with prefix; on success copies it to *out (if not NULL), moves *cursor
 * past it and returns true. */
static bool notify_wait(size_t *cursor, const char *prefix, int timeout_ms, NotifyMsg *out) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                size_t n = notify_count();
                for (size_t i = *cursor; i < n; i++) {
                        NotifyMsg m = notify_get(i);
                        if (has_line(m.text, prefix)) {
                                if (out)
                                        *out = m;
                                *cursor = i + 1;
                                return true;
                        }
                }
                if (harness_now_ms() >= deadline)
                        return false;
                harness_sleep_ms(5);
        }
}

/* Messages in [from, notify_count()) with a line starting with prefix. */
static size_t notify_count_lines(size_t from, const char *prefix) {
        size_t n = notify_count(), c = 0;
        for (size_t i = from; i < n; i++) {
                NotifyMsg m = notify_get(i);
                if (has_line(m.text, prefix))
                        c++;
        }
        return c;
}

#define assert_notify(cursor, prefix, timeout_ms, out)                                                      \
        do {                                                                                                \
                if (!notify_wait((cursor), (prefix), (timeout_ms), (out))) {                                \
                        char *dump_ = notify_dump();                                                        \
                        cr_assert_fail("no \"%s\" notification within %d ms (from #%zu); "                  \
                                       "received:\n%s",                                                     \
                                       (prefix), harness_ms(timeout_ms), *(cursor), dump_);                 \
                }                                                                                           \
        } while (0)

/* Initialises d, opens the notify socket, starts the daemon (conf_text)
 * with NOTIFY_SOCKET plus extra_env (≤ 4, NULL-terminated, may be NULL) and
 * waits ≤ 5 s for READY=1; returns the cursor past it. */
static size_t start_notified(Daemon *d, const char *conf_text, const char *const extra_env[]) {
        daemon_init(d);
        const char *env[6] = {notify_open(d)};
        for (size_t i = 0; extra_env && extra_env[i]; i++) {
                cr_assert(i < 4);
                env[i + 1] = extra_env[i];
        }
        start_daemon(d, conf_text, env);
        size_t cur = 0;
        assert_notify(&cur, "READY=1", 5000, NULL);
        return cur;
}

/* ------------------------------------------------------------------------ */
/* Small assertions                                                          */

static void expect_line(int fd, const char *want) {
        char buf[512];
        size_t n = client_recv_line(fd, buf, sizeof buf, 5000);
        cr_assert(n == strlen(want) && memcmp(buf, want, n) == 0, "fd %d: expected \"%s\", got \"%.*s\"", fd,
                  want, (int)n, buf);
}

static void expect_exit(Daemon *d, int want, int timeout_ms) {
        int st = daemon_wait(d, timeout_ms);
        if (st != want) {
                char *log = daemon_log_text(d);
                cr_assert_fail("expected exit status %d within %d ms, got %d (-1: still running); "
                               "log:\n%s",
                               want, timeout_ms, st, log);
        }
}

static void expect_refused(uint16_t port) {
        int fd = client_try_connect(port);
        int e = errno;
        if (fd >= 0)
                close(fd);
        cr_assert(fd < 0 && e == ECONNREFUSED,
                  "127.0.0.1:%u (the 'listen' of the config) accepted a connection or gave "
                  "an unexpected error (%s): nothing should be bound there",
                  port, fd >= 0 ? "connected" : strerror(e));
}

/* True when the log has a line containing needle and the decimal number n
 * as a whole word. */
static bool log_line_has_number(Daemon *d, const char *needle, long n) {
        char *t = daemon_log_text(d);
        bool found = false;
        char num[24];
        snprintf(num, sizeof num, "%ld", n);
        size_t nl = strlen(num);
        for (char *line = strtok(t, "\n"); line && !found; line = strtok(NULL, "\n")) {
                if (!strstr(line, needle))
                        continue;
                for (char *p = strstr(line, num); p && !found; p = strstr(p + 1, num)) {
                        bool left = p == line || !(p[-1] >= '0' && p[-1] <= '9');
                        bool right = !(p[nl] >= '0' && p[nl] <= '9');
                        found = left && right;
                }
        }
        free(t);
        return found;
}

static void assert_log(Daemon *d, const char *const needles[], int timeout_ms) {
        if (!daemon_log_line_has(d, needles, timeout_ms)) {
                char *log = daemon_log_text(d);
                cr_assert_fail("no log line with \"%s\"%s%s%s; log:\n%s", needles[0],
                               needles[1] ? " and \"" : "", needles[1] ? needles[1] : "",
                               needles[1] ? "\"" : "", log);
        }
}

/* The log has the error line that passed file descriptor fd is not a
 * listening stream socket, naming fd. */
static void assert_not_a_stream_socket(Daemon *d, long fd) {
        const char *err[] = {"error: ", "not a listening stream socket", NULL};
        assert_log(d, err, 0);
        cr_assert(log_line_has_number(d, "not a listening stream socket", fd),
                  "the error line does not name file descriptor %ld", fd);
}

/* ------------------------------------------------------------------------ */
/* 1. Socket activation                                                      */

/* One TCP socket from systemd-socket-activate: the connection that made it
 * exec the daemon is a client like any other; 'listen' of the config is
 * not bound; readiness and stop work the same. */
Test(systemd, activation_serves_the_triggering_connection) {
        Daemon d;
        int reserved;
        uint16_t port = start_activated_notified(&d, false, &reserved);

        /* Nothing has run the daemon yet: no READY=1 before the first
         * connection (checks the set-up: the next connection is the
         * trigger). */
        size_t cur = 0;
        cr_assert(!notify_wait(&cur, "READY=1", 200, NULL),
                  "READY=1 before any connection: the daemon was not started on demand");

        int trigger = client_connect(port);
        assert_notify(&cur, "READY=1", 5000, NULL);
        /* The trigger is accepted without any other connection arriving. */
        assert_notify(&cur, "STATUS=Relaying: 1 clients", STATUS_WAIT_MS, NULL);
        char port_str[16];
        snprintf(port_str, sizeof port_str, ":%u", client_local_port(trigger));
        const char *connected[] = {"connected from", port_str, NULL};
        assert_log(&d, connected, 2000);

        int second = client_connect(port);
        assert_notify(&cur, "STATUS=Relaying: 2 clients", STATUS_WAIT_MS, NULL);
        client_send_str(second, "from the second client\n");
        expect_line(trigger, "from the second client\n");
        client_send_str(trigger, "from the trigger\n");
        expect_line(second, "from the trigger\n");

        /* 'listen' of the config is ignored, with a notice that says so. */
        expect_refused(d.port);
        const char *notice[] = {"using 1 socket passed by systemd", "is ignored", d.conf_path, NULL};
        assert_log(&d, notice, 0);
        cr_assert(!daemon_log_contains(&d, "listening on", 0),
                  "the daemon bound an address of its own besides the passed socket");

        size_t before_stop = cur;
        daemon_signal(&d, SIGTERM);
        assert_notify(&cur, "STOPPING=1", 3000, NULL);
        cr_assert(cur > before_stop);
        cr_assert(client_wait_closed(trigger, 5000));
        cr_assert(client_wait_closed(second, 5000));
        expect_exit(&d, 0, 5000);
        close(trigger);
        close(second);
        close(reserved);
        daemon_stop(&d);
}

/* A TCP and a Unix socket passed at once: both served, relaying across;
 * the Unix socket file belongs to the activator and stays at exit. */
Test(systemd, activation_tcp_and_unix_relay_to_each_other) {
        Daemon d;
        daemon_init(&d);
        char sock[128], conf_sock[128];
        snprintf(sock, sizeof sock, "%s/passed.sock", d.dir);
        snprintf(conf_sock, sizeof conf_sock, "%s/conf.sock", d.dir);
        int reserved;
        uint16_t port = start_activated(&d, false, sock, NULL, ", \"@DIR@/conf.sock\"", &reserved);
        cr_assert(harness_unix_listening(sock));

        int tcp = client_connect(port); /* the trigger */
        int unx = client_connect_unix(sock);
        int fds[] = {tcp, unx};
        clients_sync(fds, 2, false);
        client_send_str(tcp, "tcp to unix\n");
        expect_line(unx, "tcp to unix\n");
        client_send_str(unx, "unix to tcp\n");
        expect_line(tcp, "unix to tcp\n");

        const char *notice[] = {"using 2 sockets passed by systemd", NULL};
        assert_log(&d, notice, 0);
        cr_assert_eq(daemon_log_count(&d, "(passed by systemd)"), 2,
                     "expected one \"serving ... (passed by systemd)\" line per socket");
        expect_refused(d.port);
        cr_assert(access(conf_sock, F_OK) < 0 && errno == ENOENT,
                  "%s (from 'listen') was created although sockets were passed", conf_sock);

        daemon_signal(&d, SIGTERM);
        expect_exit(&d, 0, 5000);
        struct stat st;
        cr_assert(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode),
                  "the daemon removed %s, a socket file it did not create (systemd owns it)", sock);
        close(tcp);
        close(unx);
        close(reserved);
        daemon_stop(&d);
}

/* systemd-socket-activate --datagram passes a UDP socket: fatal (exit 1),
 * a clear error, no READY=1, and STATUS= + ERRNO= for the manager. */
Test(systemd, activation_with_a_datagram_socket_fails) {
        Daemon d;
        int reserved;
        uint16_t port = start_activated_notified(&d, true, &reserved);

        /* Knock until the activator execs the daemon (and it exits). */
        int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert(u >= 0);
        struct sockaddr_in a = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int st = -1;
        for (int64_t end = harness_now_ms() + harness_ms(5000); st < 0 && harness_now_ms() < end;) {
                sendto(u, "knock\n", 6, MSG_NOSIGNAL, (struct sockaddr *)&a, sizeof a);
                st = daemon_wait(&d, 50);
        }
        close(u);
        char *log = daemon_log_text(&d);
        cr_assert_eq(st, 1,
                     "a datagram socket passed by systemd: expected exit 1, got %d "
                     "(-1: still running); log:\n%s",
                     st, log);
        free(log);
        assert_not_a_stream_socket(&d, 3);

        size_t cur = 0;
        NotifyMsg m;
        assert_notify(&cur, "ERRNO=", 2000, &m);
        char v[64];
        cr_assert(line_value(m.text, "ERRNO=", v, sizeof v) && atoi(v) > 0,
                  "ERRNO= is not a positive errno: \"%s\"", m.text);
        cr_assert(has_line(m.text, "STATUS="), "no STATUS= with ERRNO=: \"%s\"", m.text);
        cr_assert_eq(notify_count_lines(0, "READY=1"), 0, "READY=1 sent by a daemon that failed");
        close(reserved);
        daemon_stop(&d);
}

/* Hand-made LISTEN_FDS: a regular file at fd 3; then a good listening
 * socket at fd 3 and a bound but not listening stream socket at fd 4. */
Test(systemd, passed_fds_that_are_not_listening_stream_sockets_are_fatal) {
        Daemon d;
        daemon_init(&d);
        daemon_write_conf(&d, INFO_CONF);

        char file[128];
        snprintf(file, sizeof file, "%s/regular-file", d.dir);
        int f = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        cr_assert(f >= 0);
        const char *env1[] = {"LISTEN_FDS=1", "LISTEN_PID=@SELF@", NULL};
        spawn_daemon(&d, env1, &f, 1);
        expect_exit(&d, 1, 5000);
        close(f);
        assert_not_a_stream_socket(&d, 3);
        cr_assert(!daemon_log_contains(&d, "listening on", 0),
                  "the daemon bound 'listen' although sockets were passed");
        daemon_stop(&d);

        daemon_init(&d);
        daemon_write_conf(&d, INFO_CONF);
        int good = tcp_listener(0);
        int bad = reserve_port(0); /* bound, not listening */
        cr_assert(bad >= 0, "bind 127.0.0.1:0: %s", strerror(errno));
        int fds[] = {good, bad};
        const char *env2[] = {"LISTEN_FDS=2", "LISTEN_PID=@SELF@", NULL};
        spawn_daemon(&d, env2, fds, 2);
        expect_exit(&d, 1, 5000);
        close(good);
        close(bad);
        assert_not_a_stream_socket(&d, 4);
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* 2. sd_notify                                                              */

/* READY=1 once every listener (TCP and Unix) accepts, exactly once, with
 * STATUS=; the first figures follow. No WATCHDOG=1 without WATCHDOG_USEC. */
Test(systemd, ready_once_every_listener_accepts) {
        Daemon d;
        daemon_init(&d);
        const char *notify_env = notify_open(&d);
        char sock[128];
        snprintf(sock, sizeof sock, "%s/eb.sock", d.dir);
        const char *env[] = {notify_env, NULL};
        size_t cur = 0;
        NotifyMsg ready;
        for (int attempt = 0;; attempt++) {
                daemon_write_conf(&d, "listen = [\"127.0.0.1:@PORT@\", \"@DIR@/eb.sock\"];\n"
                                      "log_level = \"info\";\n");
                spawn_daemon(&d, env, NULL, 0);
                int64_t deadline = harness_now_ms() + harness_ms(5000);
                while (!notify_wait(&cur, "READY=1", 0, &ready) && daemon_running(&d) &&
                       harness_now_ms() < deadline)
                        harness_sleep_ms(1);
                if (cur > 0 || daemon_running(&d))
                        break;
                /* Another test took the port between its choice and the bind. */
                cr_assert(d.status == 1 && daemon_log_contains(&d, "in use", 0),
                          "the daemon exited with status %d", d.status);
                attempt_reset(&d, attempt);
                d.port = harness_free_port();
        }
        if (cur == 0) {
                char *dump = notify_dump();
                cr_assert_fail("no READY=1 within 5 s; received:\n%s", dump);
        }
        /* Right now, before anything else: both listen and accept. */
        bool unix_ok = harness_unix_listening(sock);
        int tcp = client_try_connect(d.port);
        int e = errno;
        cr_assert(tcp >= 0, "READY=1 received but 127.0.0.1:%u refuses connections (%s)", d.port,
                  strerror(e));
        cr_assert(unix_ok, "READY=1 received but %s is not listening", sock);
        int unx = client_connect_unix(sock);
        int fds[] = {tcp, unx};
        clients_sync(fds, 2, false);

        cr_assert(has_line(ready.text, "STATUS="), "READY=1 without STATUS=: \"%s\"", ready.text);
        assert_notify(&cur, "STATUS=Relaying: ", STATUS_WAIT_MS, NULL);
        cr_assert_eq(notify_count_lines(0, "READY=1"), 1, "READY=1 sent more than once");
        cr_assert_eq(notify_count_lines(0, "WATCHDOG=1"), 0,
                     "WATCHDOG=1 sent although WATCHDOG_USEC is not set");
        close(tcp);
        close(unx);
        daemon_stop(&d);
}

/* A second listen address that is in use: exit 1, no READY=1 ever, and
 * STATUS= with ERRNO=EADDRINUSE. */
Test(systemd, no_ready_when_a_listener_fails) {
        Daemon d;
        daemon_init(&d);
        const char *notify_env = notify_open(&d);
        uint16_t busy = other_free_port(d.port);
        int occupier = tcp_listener(busy);
        char conf[256];
        snprintf(conf, sizeof conf,
                 "listen = [\"127.0.0.1:@PORT@\", \"127.0.0.1:%u\"];\nlog_level = \"info\";\n", busy);
        daemon_write_conf(&d, conf);
        const char *env[] = {notify_env, NULL};
        spawn_daemon(&d, env, NULL, 0);
        expect_exit(&d, 1, 5000);
        close(occupier);

        size_t cur = 0;
        NotifyMsg m;
        assert_notify(&cur, "ERRNO=", 2000, &m);
        char v[64];
        cr_assert(line_value(m.text, "ERRNO=", v, sizeof v) && atoi(v) == EADDRINUSE,
                  "expected ERRNO=%d (EADDRINUSE): \"%s\"", EADDRINUSE, m.text);
        cr_assert(line_value(m.text, "STATUS=", v, sizeof v) && v[0], "no STATUS= with ERRNO=: \"%s\"",
                  m.text);
        cr_assert(log_line_has_number(&d, "in use", busy),
                  "no error line naming the address in use (port %u)", busy);
        harness_sleep_ms(100);
        char *dump = notify_dump();
        cr_assert_eq(notify_count_lines(0, "READY=1"), 0,
                     "READY=1 although a listener could not be bound:\n%s", dump);
        free(dump);
        daemon_stop(&d);
}

/* A configuration error: exit 78 with STATUS= naming the problem and
 * ERRNO=, no READY=1. */
Test(systemd, config_error_sends_status_and_errno) {
        Daemon d;
        daemon_init(&d);
        const char *notify_env = notify_open(&d);
        daemon_write_conf(&d, BAD_CONF);
        const char *env[] = {notify_env, NULL};
        spawn_daemon(&d, env, NULL, 0);
        expect_exit(&d, 78, 5000);

        size_t cur = 0;
        NotifyMsg m;
        assert_notify(&cur, "ERRNO=", 2000, &m);
        char v[NOTIFY_TEXT];
        cr_assert(line_value(m.text, "ERRNO=", v, sizeof v) && atoi(v) > 0,
                  "ERRNO= is not a positive errno: \"%s\"", m.text);
        cr_assert(line_value(m.text, "STATUS=", v, sizeof v) && strstr(v, "no_such_setting"),
                  "STATUS= does not name the bad setting: \"%s\"", m.text);
        cr_assert_eq(notify_count_lines(0, "READY=1"), 0, "READY=1 with a bad configuration");
        daemon_stop(&d);
}

/* STATUS= follows the clients and the message count (the daemon refreshes
 * it every second; STATUS_WAIT_MS allowed). */
Test(systemd, status_follows_clients_and_messages) {
        Daemon d;
        size_t cur = start_notified(&d, INFO_CONF, NULL);
        assert_notify(&cur,
                      "STATUS=Relaying: 0 clients, 0 messages relayed, 0 dropped, "
                      "0 slow-client disconnects",
                      STATUS_WAIT_MS, NULL);

        int a = client_connect(d.port);
        int b = client_connect(d.port);
        assert_notify(&cur, "STATUS=Relaying: 2 clients, 0 messages relayed", STATUS_WAIT_MS, NULL);
        client_send_str(a, "one\n");
        expect_line(b, "one\n");
        assert_notify(&cur, "STATUS=Relaying: 2 clients, 1 messages relayed", STATUS_WAIT_MS, NULL);
        close(a);
        close(b);
        assert_notify(&cur, "STATUS=Relaying: 0 clients, 1 messages relayed", STATUS_WAIT_MS, NULL);
        /* Sent only when changed: nothing new over a quiet second and a half. */
        size_t n = notify_count();
        harness_sleep_ms(1500);
        char *dump = notify_dump();
        cr_assert_eq(notify_count_lines(n, "STATUS="), 0, "STATUS= repeated although nothing changed:\n%s",
                     dump);
        free(dump);
        daemon_stop(&d);
}

/* SIGTERM: STOPPING=1, then exit 0. */
Test(systemd, sigterm_sends_stopping) {
        Daemon d;
        size_t cur = start_notified(&d, INFO_CONF, NULL);
        cr_assert_eq(notify_count_lines(0, "STOPPING=1"), 0, "STOPPING=1 before any signal");
        daemon_signal(&d, SIGTERM);
        assert_notify(&cur, "STOPPING=1", 3000, NULL);
        expect_exit(&d, 0, 5000);
        daemon_stop(&d);
}

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* SIGHUP: RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, taken at the
 * reload), then READY=1; also when the new file is invalid. */
Test(systemd, sighup_sends_reloading_then_ready) {
        Daemon d;
        size_t cur = start_notified(&d, INFO_CONF, NULL);

        uint64_t t0 = mono_usec();
        daemon_signal(&d, SIGHUP);
        NotifyMsg m;
        assert_notify(&cur, "RELOADING=1", 3000, &m);
        uint64_t t1 = mono_usec();
        char v[64];
        cr_assert(line_value(m.text, "MONOTONIC_USEC=", v, sizeof v),
                  "RELOADING=1 without MONOTONIC_USEC=: \"%s\"", m.text);
        char *end;
        unsigned long long usec = strtoull(v, &end, 10);
        cr_assert(*end == '\0' && v[0], "MONOTONIC_USEC= is not a number: \"%s\"", v);
        cr_assert(usec >= t0 && usec <= t1,
                  "MONOTONIC_USEC=%llu is not CLOCK_MONOTONIC at the reload (between %llu and %llu)", usec,
                  (unsigned long long)t0, (unsigned long long)t1);
        assert_notify(&cur, "READY=1", 3000, NULL);
        const char *reloaded[] = {"reloaded configuration", NULL};
        assert_log(&d, reloaded, 2000);

        /* An invalid file: still RELOADING=1 then READY=1 (else systemd
         * would wait for the end of the reload), and the daemon serves. */
        daemon_write_conf(&d, "listen = [\"127.0.0.1:@PORT@\"];\nmax_clients = \"many\";\n");
        daemon_signal(&d, SIGHUP);
        assert_notify(&cur, "RELOADING=1", 3000, NULL);
        assert_notify(&cur, "READY=1", 3000, NULL);
        int a = client_connect(d.port);
        int b = client_connect(d.port);
        int fds[] = {a, b};
        clients_sync(fds, 2, false);
        cr_assert(daemon_running(&d));
        close(a);
        close(b);
        daemon_stop(&d);
}

/* The watchdog period of watchdog_pings_in_time_under_load (times
 * EB_TEST_SLOW): long next to a hiccup of a shared machine or a daemon under
 * valgrind, so that only a loop that stops petting it misses it. */
#define WATCHDOG_TEST_MS 2000
/* How long the publisher pumps: two and a half periods. */
#define WATCHDOG_LOAD_MS 5000

/* WATCHDOG_USEC (WATCHDOG_PID = the daemon): while a publisher pumps
 * messages to two readers, WATCHDOG=1 keeps coming, never a whole period
 * apart (systemd kills a service that sends none within WATCHDOG_USEC), and
 * at about the documented rate (every second, or every half period if that
 * is shorter). */
Test(systemd, watchdog_pings_in_time_under_load) {
        Daemon d;
        const int64_t period = harness_ms(WATCHDOG_TEST_MS);
        const int64_t interval = period / 2 < 1000 ? period / 2 : 1000;
        char usec[64];
        snprintf(usec, sizeof usec, "WATCHDOG_USEC=%lld", (long long)period * 1000);
        const char *extra[] = {usec, "WATCHDOG_PID=@SELF@", NULL};
        start_notified(&d, "listen = [\"127.0.0.1:@PORT@\"];\nlog_level = \"notice\";\n", extra);

        int r1 = client_connect(d.port);
        int r2 = client_connect(d.port);
        int pub = client_connect(d.port);
        int fds[] = {r1, r2, pub};
        clients_sync(fds, 3, false);

        const size_t msg_len = 200;
        const uint32_t per_round = 20000;
        int64_t t_start = harness_now_ms();
        uint64_t rounds = 0;
        while (harness_now_ms() - t_start < harness_ms(WATCHDOG_LOAD_MS)) {
                SeqReader a, b;
                seq_reader_init(&a, r1, msg_len, true);
                seq_reader_init(&b, r2, msg_len, true);
                SeqReader *rs[] = {&a, &b};
                pump_seq(pub, rs, 2, per_round, msg_len, NULL, NULL, 10000);
                cr_assert(!a.error[0] && !b.error[0], "reader: %s%s", a.error, b.error);
                cr_assert(a.received == per_round && b.received == per_round);
                seq_reader_free(&a);
                seq_reader_free(&b);
                rounds++;
        }
        int64_t t_end = harness_now_ms();
        harness_sleep_ms(250); /* the pings of the window are in */

        /* Gaps between the pings seen in [t_start, t_end], counting from
         * t_start to the first and from the last to t_end. */
        size_t n = notify_count(), pings = 0;
        int64_t prev = t_start, max_gap = 0;
        for (size_t i = 0; i < n; i++) {
                NotifyMsg m = notify_get(i);
                if (!has_line(m.text, "WATCHDOG=1") || m.t_ms < t_start || m.t_ms > t_end)
                        continue;
                pings++;
                if (m.t_ms - prev > max_gap)
                        max_gap = m.t_ms - prev;
                prev = m.t_ms;
        }
        if (t_end - prev > max_gap)
                max_gap = t_end - prev;
        int64_t span = t_end - t_start;
        char *dump = NULL;
        cr_log_info("watchdog: %zu pings in %lld ms of load (%llu x %u messages), max gap %lld ms "
                    "(WATCHDOG_USEC %lld ms)",
                    pings, (long long)span, (unsigned long long)rounds, per_round, (long long)max_gap,
                    (long long)period);
        bool few = (int64_t)pings * interval < span * 6 / 10;
        if (few || max_gap >= period)
                dump = notify_dump();
        cr_assert(max_gap < period,
                  "%lld ms without WATCHDOG=1 during the load: systemd would have killed the service "
                  "(WATCHDOG_USEC is %lld ms):\n%s",
                  (long long)max_gap, (long long)period, dump ? dump : "");
        cr_assert(!few, "only %zu WATCHDOG=1 in %lld ms of load (expected about one per %lld ms):\n%s",
                  pings, (long long)span, (long long)interval, dump ? dump : "");
        free(dump);
        cr_assert(daemon_running(&d));
        close(r1);
        close(r2);
        close(pub);
        daemon_stop(&d);
}

/* WATCHDOG_PID names another process: the watchdog is not for the daemon. */
Test(systemd, watchdog_off_when_watchdog_pid_is_another_process) {
        Daemon d;
        const char *extra[] = {"WATCHDOG_USEC=200000", "WATCHDOG_PID=1", NULL};
        start_notified(&d, INFO_CONF, extra);
        harness_sleep_ms(700);
        cr_assert_eq(notify_count_lines(0, "WATCHDOG=1"), 0,
                     "WATCHDOG=1 sent although WATCHDOG_PID is another process");
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* 3. Logging to the journal stream                                          */

static void stat_path(const char *path, struct stat *st) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
        cr_assert(fstat(fd, st) == 0);
        close(fd);
}

/* Every line of the log, checked: journal (true) means "<N>" first and no
 * "warning: "/"error: " after it; plain means no "<" first. Returns the
 * number of lines. */
static int check_log_format(Daemon *d, bool journal) {
        char *t = daemon_log_text(d);
        size_t len = strlen(t);
        cr_assert(len == 0 || t[len - 1] == '\n', "log does not end with a newline:\n%s", t);
        int lines = 0;
        for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
                lines++;
                bool prefixed = line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>';
                if (journal) {
                        cr_assert(prefixed,
                                  "stderr is the journal stream, but a line has no <N> "
                                  "priority: \"%s\"",
                                  line);
                        cr_assert(strncmp(line + 3, "warning: ", 9) != 0 &&
                                          strncmp(line + 3, "error: ", 7) != 0,
                                  "a journal line repeats its level in words: \"%s\"", line);
                } else {
                        cr_assert(line[0] != '<',
                                  "stderr is not the journal stream, but a line "
                                  "starts with a priority: \"%s\"",
                                  line);
                }
        }
        free(t);
        return lines;
}

/* Waits until 127.0.0.1:d->port listens, sends an oversize message (the
 * warning), then stops the daemon with SIGTERM (exit 0). */
static void run_oversize_and_stop(Daemon *d) {
        daemon_wait_tcp_listening(d, d->port, 5000);
        int c = client_connect(d->port);
        char big[101];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\n';
        client_try_send(c, big, sizeof big, 2000);
        cr_assert(client_wait_closed(c, 3000), "an oversize sender was not disconnected");
        close(c);
        cr_assert(daemon_log_contains(d, "max_message_bytes", 3000), "no oversize warning");
        daemon_signal(d, SIGTERM);
        expect_exit(d, 0, 5000);
}

#define JOURNAL_CONF "listen = [\"127.0.0.1:@PORT@\"];\nlog_level = \"info\";\nmax_message_bytes = 64;\n"

/* "JOURNAL_STREAM=DEV:INO" of st, its device number plus dev_offset. */
static void format_journal_stream(char *js, size_t size, const struct stat *st, unsigned dev_offset) {
        snprintf(js, size, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st->st_dev + dev_offset,
                 (unsigned long long)st->st_ino);
}

/* Starts the daemon (JOURNAL_CONF) with JOURNAL_STREAM naming st, makes it
 * warn (run_oversize_and_stop), and checks the format of every line
 * (check_log_format(d, journal)), of which there are at least 4. */
static void run_oversize_with_stream(Daemon *d, const struct stat *st, bool journal) {
        char js[96];
        format_journal_stream(js, sizeof js, st, 0);
        const char *env[] = {js, NULL};
        start_daemon(d, JOURNAL_CONF, env);
        run_oversize_and_stop(d);
        cr_assert(check_log_format(d, journal) >= 4);
}

/* The oversize warning is in the log, at the start of its line, after
 * prefix. */
static void assert_warning_starts_with(Daemon *d, const char *prefix) {
        const char *warning[] = {prefix, "max_message_bytes", NULL};
        assert_log(d, warning, 0);
        char *t = daemon_log_text(d);
        bool warn_first = false;
        for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
                if (strstr(line, "max_message_bytes") && strncmp(line, prefix, strlen(prefix)) == 0)
                        warn_first = true;
        free(t);
        cr_assert(warn_first, "the oversize warning does not start with \"%s\"", prefix);
}

/* In d, initialised anew: a bad configuration, with JOURNAL_STREAM naming
 * d's log file (its device number plus dev_offset); expects exit 78 and
 * checks the format of every line (check_log_format(d, journal)). */
static void run_bad_config_with_stream(Daemon *d, unsigned dev_offset, bool journal) {
        daemon_init(d);
        daemon_write_conf(d, BAD_CONF);
        struct stat st;
        stat_path(d->log_path, &st);
        char js[96];
        format_journal_stream(js, sizeof js, &st, dev_offset);
        const char *env[] = {js, NULL};
        spawn_daemon(d, env, NULL, 0);
        expect_exit(d, 78, 5000);
        check_log_format(d, journal);
}

/* JOURNAL_STREAM = stderr's dev:ino: every line starts with its syslog
 * priority; notice <5>, info <6>, warning <4>, error <3>. */
Test(systemd, journal_stream_lines_carry_priorities) {
        Daemon d;
        daemon_init(&d);
        struct stat st;
        stat_path(d.log_path, &st);
        run_oversize_with_stream(&d, &st, true);
        const char *notice[] = {"<5>", "listening on", NULL};
        const char *info[] = {"<6>", "connected from", NULL};
        assert_log(&d, notice, 0);
        assert_log(&d, info, 0);
        /* ... and at the start of the line, not just somewhere in it. */
        assert_warning_starts_with(&d, "<4>");
        daemon_stop(&d);

        /* An error: a bad configuration. */
        run_bad_config_with_stream(&d, 0, true);
        const char *error[] = {"<3>", "no_such_setting", NULL};
        assert_log(&d, error, 0);
        daemon_stop(&d);
}

/* JOURNAL_STREAM that does not parse, or whose device number overflows
 * (2^64 + the real one, which a wrapping parser would match): plain lines. */
Test(systemd, journal_stream_malformed_gives_plain_lines) {
        for (int i = 0; i < 4; i++) {
                Daemon d;
                daemon_init(&d);
                daemon_write_conf(&d, BAD_CONF);
                struct stat st;
                stat_path(d.log_path, &st);
                char js[128];
                const char *forms[] = {"JOURNAL_STREAM=garbage", "JOURNAL_STREAM=1:", "JOURNAL_STREAM=:1",
                                       NULL};
                if (forms[i])
                        snprintf(js, sizeof js, "%s", forms[i]);
                else { /* 2^64 = 18446744073 * 10^9 + 709551616 */
                        cr_assert(st.st_dev < 290448384, "st_dev %llu too large for this test",
                                  (unsigned long long)st.st_dev);
                        snprintf(js, sizeof js, "JOURNAL_STREAM=18446744073%09llu:%llu",
                                 709551616ULL + (unsigned long long)st.st_dev,
                                 (unsigned long long)st.st_ino);
                }
                const char *env[] = {js, NULL};
                spawn_daemon(&d, env, NULL, 0);
                expect_exit(&d, 78, 5000);
                char *log = daemon_log_text(&d);
                cr_assert(strncmp(log, "error: ", 7) == 0, "%s: expected a plain \"error: \" line, got:\n%s",
                          js, log);
                free(log);
                daemon_stop(&d);
        }
}

/* JOURNAL_STREAM naming another file (another inode; or the right inode on
 * another device): plain lines, "warning: " and "error: " in words. */
Test(systemd, journal_stream_elsewhere_gives_plain_lines) {
        Daemon d;
        daemon_init(&d);
        char other[128];
        snprintf(other, sizeof other, "%s/other-file", d.dir);
        struct stat st, mine;
        stat_path(other, &st);
        stat_path(d.log_path, &mine);
        cr_assert(st.st_ino != mine.st_ino);
        run_oversize_with_stream(&d, &st, false);
        assert_warning_starts_with(&d, "warning: ");
        daemon_stop(&d);

        /* Right inode, wrong device. */
        run_bad_config_with_stream(&d, 1, false);
        char *log = daemon_log_text(&d);
        cr_assert(strncmp(log, "error: ", 7) == 0 && strstr(log, "no_such_setting"),
                  "expected a plain \"error: \" line naming the setting, got:\n%s", log);
        free(log);
        daemon_stop(&d);
}
