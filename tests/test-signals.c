/* End-to-end tests of epoll-broadcaster(8) signals: graceful stop with draining, second
 * signal, shutdown_timeout, reload (good and bad), statistics, SIGPIPE. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(signals, .fini = harness_cleanup, .timeout = 90);

#define MSG_LEN 1000

static uint32_t backlog_count(size_t extra) {
        return (uint32_t)((harness_kernel_buffering() + extra) / MSG_LEN);
}

/* A daemon with a slow (small SO_RCVBUF, not reading) client, a healthy
 * reader that has received every message (so the daemon has read them all)
 * and the sender. */
typedef struct Backlog {
        SlowTrio t;
        uint32_t count;
} Backlog;

/* daemon_start(d, extra_settings), then the backlog of b. */
static void start_with_backlog(Daemon *d, const char *extra_settings, Backlog *b) {
        daemon_start(d, extra_settings);
        clients_connect_slow_trio(d->port, &b->t);
        SeqReader h;
        seq_reader_init(&h, b->t.healthy, MSG_LEN, true);
        SeqReader *rs[] = {&h};
        b->count = backlog_count(4u * 1024 * 1024);
        pump_seq(b->t.sender, rs, 1, b->count, MSG_LEN, NULL, NULL, 60000);
        seq_reader_expect_all(&h, b->count, "healthy reader");
        seq_reader_free(&h);
        cr_assert(daemon_running(d));
        cr_assert(!daemon_log_contains(d, "over max_queue_bytes", 0),
                  "the slow client hit max_queue_bytes: the test setup is wrong");
}

/* SIGTERM: stop reading, keep writing what was read before the signal to a
 * slow client, then EOF and exit 0. */
Test(signals, sigterm_drains_backlog_then_exits_0) {
        Daemon d;
        Backlog b;
        /* A drain long enough for the slow reader's reading below (both
         * scaled by EB_TEST_SLOW). */
        int drain_s = 30 * harness_slow();
        char settings[128];
        snprintf(settings, sizeof settings, "shutdown_timeout = %d;\nmax_queue_bytes = 268435456;", drain_s);
        start_with_backlog(&d, settings, &b);

        daemon_signal(&d, SIGTERM);
        /* The stop has begun (the daemon logs it when it stops reading and
         * closes its listeners): a sleep instead would race a busy machine. */
        cr_assert(daemon_log_contains(&d, "stopping; sending what is queued", 5000),
                  "no stop logged within 5 s of SIGTERM");
        /* Read after the signal: not relayed (the daemon stopped reading). */
        char late[MSG_LEN];
        seq_msg_format(late, MSG_LEN, b.count);
        client_try_send(b.t.sender, late, MSG_LEN, 1000);

        /* Not accepting any more: a newcomer is refused, or never served
         * and closed when the daemon exits. */
        int newcomer = client_try_connect(d.port);

        /* The slow client now reads, slowly, everything, then EOF. */
        SeqReader s;
        seq_reader_init(&s, b.t.slow, MSG_LEN, true);
        int64_t deadline = harness_now_ms() + harness_ms(25000);
        while (!s.eof) {
                cr_assert(harness_now_ms() < deadline, "slow reader: no EOF after %d ms (got %llu of %u)",
                          harness_ms(25000), (unsigned long long)s.received, b.count);
                if (seq_reader_poll(&s, 32768) == 0)
                        harness_sleep_ms(2);
                else
                        harness_sleep_ms(1);
        }
        cr_assert(s.error[0] == '\0', "slow reader: %s", s.error);
        cr_assert(s.received == b.count,
                  "graceful stop lost messages: slow reader got %llu of %u (last %ld)",
                  (unsigned long long)s.received, b.count, s.last_seq);
        int st = daemon_wait(&d, 5000);
        cr_assert(st == 0, "exit status %d after SIGTERM (want 0)", st);
        cr_assert(client_wait_closed(b.t.healthy, 2000));
        if (newcomer >= 0) {
                cr_assert(!client_recv_nothing(newcomer, 2000),
                          "a connection made during the graceful stop is still open after exit");
                char byte;
                ssize_t n = recv(newcomer, &byte, 1, MSG_DONTWAIT);
                cr_assert(n == 0 || (n < 0 && errno == ECONNRESET),
                          "a connection made during the graceful stop got data");
                close(newcomer);
        }
        seq_reader_free(&s);
        slow_trio_close(&b.t);
        daemon_stop(&d);
}

/* The drain of second_sigterm_stops_at_once: far longer than the test may
 * wait, so a daemon that went on draining cannot pass. */
#define SECOND_SIGTERM_DRAIN_S 120

/* While draining, SIGHUP is refused with a notice (no reload, no exit); a
 * second SIGTERM stops at once (the slow client never reads: without it the
 * drain would last shutdown_timeout), with status 0 (epoll-broadcaster(8)). */
Test(signals, second_sigterm_stops_at_once) {
        Daemon d;
        Backlog b;
        /* Scaled as the harness's waits are, so the wait below stays a
         * quarter of it. */
        int drain_s = SECOND_SIGTERM_DRAIN_S * harness_slow();
        char settings[128];
        snprintf(settings, sizeof settings, "shutdown_timeout = %d;\nmax_queue_bytes = 268435456;", drain_s);
        start_with_backlog(&d, settings, &b);
        daemon_signal(&d, SIGTERM);
        harness_sleep_ms(500);
        cr_assert(daemon_running(&d), "exited at once on the first SIGTERM although a client had a backlog");
        daemon_signal(&d, SIGHUP);
        cr_assert(daemon_log_contains(&d, "SIGHUP while stopping: not reloading", 3000),
                  "no notice for a SIGHUP during the drain");
        cr_assert(!daemon_log_contains(&d, "reloaded configuration", 0), "reloaded while stopping");
        cr_assert(daemon_running(&d), "SIGHUP during the drain ended the daemon");
        /* "At once", next to the drain: within a quarter of
         * shutdown_timeout (daemon_wait scales the wait as drain_s is
         * scaled), a bound only a daemon still draining crosses, however
         * loaded the machine. */
        int64_t t0 = harness_now_ms();
        daemon_signal(&d, SIGTERM);
        int st = daemon_wait(&d, SECOND_SIGTERM_DRAIN_S * 1000 / 4);
        long long elapsed = (long long)(harness_now_ms() - t0);
        cr_assert(st != -1,
                  "still running %lld ms after a second SIGTERM (shutdown_timeout = %d s): it "
                  "went on draining",
                  elapsed, drain_s);
        cr_assert(st == 0, "exit status %d after a second SIGTERM (want 0), %lld ms after it", st, elapsed);
        cr_log_info("second SIGTERM: stopped after %lld ms", elapsed);
        cr_assert(client_wait_closed(b.t.slow, 5000));
        slow_trio_close(&b.t);
        daemon_stop(&d);
}

/* The shutdown_timeout of shutdown_timeout_expires, and how long after the
 * SIGTERM the daemon must still be draining: a third of it, so a stalled
 * test process does not look at it only after the timeout. */
#define EXPIRES_S 3
#define EXPIRES_STILL_RUNNING_MS 1000

/* shutdown_timeout bounds the drain: a client that never reads does not keep
 * the daemon alive past it (the bound: five times shutdown_timeout, scaled
 * like the harness's waits; a daemon that ignores it drains for ever). */
Test(signals, shutdown_timeout_expires) {
        Daemon d;
        Backlog b;
        char settings[128];
        snprintf(settings, sizeof settings, "shutdown_timeout = %d;\nmax_queue_bytes = 268435456;",
                 EXPIRES_S);
        start_with_backlog(&d, settings, &b);
        int64_t t0 = harness_now_ms();
        daemon_signal(&d, SIGTERM);
        harness_sleep_ms(EXPIRES_STILL_RUNNING_MS);
        cr_assert(daemon_running(&d),
                  "exited within %d ms of SIGTERM although a client had megabytes queued "
                  "and shutdown_timeout = %d",
                  EXPIRES_STILL_RUNNING_MS, EXPIRES_S);
        int st = daemon_wait(&d, 5 * EXPIRES_S * 1000);
        int64_t elapsed = harness_now_ms() - t0;
        cr_assert(st != -1, "still running %lld ms after SIGTERM with shutdown_timeout = %d",
                  (long long)elapsed, EXPIRES_S);
        cr_assert(st == 0, "exit status %d when shutdown_timeout expired (want 0)", st);
        cr_assert(daemon_log_contains(&d, "shutdown_timeout reached", 0),
                  "stopped after %lld ms without reaching shutdown_timeout, although a client never read",
                  (long long)elapsed);
        cr_assert(client_wait_closed(b.t.slow, 10000));
        slow_trio_close(&b.t);
        daemon_stop(&d);
}

/* shutdown_timeout = 0 means no drain at all: the daemon stops at once even
 * with megabytes queued for a reader (the drain path would wait for them). */
Test(signals, shutdown_timeout_zero_stops_at_once) {
        Daemon d;
        Backlog b;
        start_with_backlog(&d, "shutdown_timeout = 0;\nmax_queue_bytes = 268435456;", &b);
        daemon_signal(&d, SIGTERM);
        int st = daemon_wait(&d, 2000);
        cr_assert(st != -1, "still running 2 s after SIGTERM with shutdown_timeout = 0");
        cr_assert(st == 0, "exit status %d (want 0)", st);
        cr_assert(daemon_log_contains(&d, "stopping now (shutdown_timeout is 0)", 1000),
                  "no 'stopping now' line: the daemon drained instead");
        cr_assert(client_wait_closed(b.t.slow, 5000));
        slow_trio_close(&b.t);
        daemon_stop(&d);
}

/* An idle daemon stops promptly and cleanly on SIGTERM and on SIGINT, and
 * closes its clients. */
Test(signals, sigterm_and_sigint_when_idle) {
        int sigs[2] = {SIGTERM, SIGINT};
        for (int i = 0; i < 2; i++) {
                Daemon d;
                int c[2];
                daemon_start_clients(&d, NULL, c, 2, false);
                daemon_signal(&d, sigs[i]);
                int st = daemon_wait(&d, 3000);
                cr_assert(st == 0, "signal %d: exit status %d (want 0)", sigs[i], st);
                cr_assert(client_wait_closed(c[0], 2000));
                cr_assert(client_wait_closed(c[1], 2000));
                clients_close(c, 2);
                daemon_stop(&d);
        }
}

/* Rewrites the config with extra_settings, sends SIGHUP and waits (≤ 3 s)
 * for the reload to be logged. */
static void reload_settings(Daemon *d, const char *extra_settings) {
        daemon_write_settings(d, extra_settings);
        daemon_signal(d, SIGHUP);
        cr_assert(daemon_log_contains(d, "reloaded configuration", 3000),
                  "no \"reloaded configuration\" in the log");
}

/* SIGHUP: a new prefix applies to clients already connected; nobody is
 * dropped. */
Test(signals, sighup_applies_new_prefix) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, "prefix = \"old \";", c, 2, false);
        client_send_str(c[0], "one\n");
        client_expect_line(c[1], "old one\n");

        reload_settings(&d, "prefix = \"new \";");
        client_send_str(c[0], "two\n");
        client_expect_line(c[1], "new two\n");
        client_send_str(c[1], "three\n");
        client_expect_line(c[0], "new three\n");
        cr_assert(daemon_running(&d));
        clients_close(c, 2);
        daemon_stop(&d);
}

/* SIGHUP: other settings too (echo, max_message_bytes) without dropping
 * anyone. */
Test(signals, sighup_applies_echo_and_message_limit) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, NULL, c, 3, false);
        reload_settings(&d, "echo = true;\nmax_message_bytes = 32;");
        client_send_str(c[0], "echo me\n");
        client_expect_line(c[0], "echo me\n");
        client_expect_line(c[1], "echo me\n");
        client_expect_line(c[2], "echo me\n");
        client_try_send(c[2], "this line is well over thirty-two bytes long\n", 45, 2000);
        cr_assert(client_wait_closed(c[2], 5000), "the new max_message_bytes did not apply");
        cr_assert(client_recv_nothing(c[1], 200));
        client_send_str(c[1], "short\n");
        client_expect_line(c[0], "short\n");
        client_expect_line(c[1], "short\n");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* epoll-broadcaster.conf(5): a lowered max_clients on reload disconnects nobody; it applies
 * to new connections. */
Test(signals, sighup_lower_max_clients_disconnects_nobody) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "max_clients = 3;", c, 3, false);
        reload_settings(&d, "max_clients = 1;");
        client_send_str(c[2], "all three still here\n");
        client_expect_line(c[0], "all three still here\n");
        client_expect_line(c[1], "all three still here\n");
        int extra = client_connect(d.port);
        cr_assert(client_wait_closed(extra, 3000), "the lowered max_clients did not apply");
        close(extra);
        client_send_str(c[0], "still\n");
        client_expect_line(c[1], "still\n");
        client_expect_line(c[2], "still\n");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* epoll-broadcaster(8): a changed 'listen' is reported as needing a restart; the running
 * listeners and clients stay as they are. */
Test(signals, sighup_changed_listen_needs_restart) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, "prefix = \"old \";", c, 2, false);
        uint16_t other = harness_free_port();
        char conf[256];
        snprintf(conf, sizeof conf,
                 "listen = [\"127.0.0.1:%u\"];\nlog_level = \"info\";\nprefix = \"new \";\n", other);
        daemon_write_conf(&d, conf);
        daemon_signal(&d, SIGHUP);
        cr_assert(daemon_log_contains(&d, "restart", 3000),
                  "a changed listen was not reported as needing a restart");
        /* The other settings still apply, nobody was dropped, the old
         * address still serves. */
        client_send_str(c[0], "a\n");
        client_expect_line(c[1], "new a\n");
        int e = client_connect(d.port);
        int all[3] = {c[0], c[1], e};
        clients_sync(all, 3, false);
        close(e);
        clients_close(c, 2);
        daemon_stop(&d);
}

/* SIGHUP with an invalid file: reported, nothing changes. */
Test(signals, sighup_invalid_file_changes_nothing) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, "prefix = \"old \";", c, 2, false);

        /* A value out of range on line 4. */
        daemon_write_settings(&d, "prefix = \"new \";\nmax_clients = 0;");
        daemon_signal(&d, SIGHUP);
        cr_assert(daemon_log_contains(&d, "reload failed", 3000), "no \"reload failed\" in the log");
        const char *where[] = {"eb.conf:4", "max_clients", NULL};
        cr_assert(daemon_log_line_has(&d, where, 1000),
                  "the reload error does not name eb.conf:4 and max_clients");
        cr_assert(!daemon_log_contains(&d, "reloaded configuration", 0));
        client_send_str(c[0], "x\n");
        client_expect_line(c[1], "old x\n");

        /* A syntax error. */
        daemon_write_conf(&d,
                          "listen = [\"127.0.0.1:@PORT@\"];\nprefix = \"new \"\n this is { not libconfig");
        int before = daemon_log_count(&d, "reload failed");
        daemon_signal(&d, SIGHUP);
        int64_t deadline = harness_now_ms() + harness_ms(3000);
        while (daemon_log_count(&d, "reload failed") == before) {
                cr_assert(harness_now_ms() < deadline, "second bad reload not reported");
                harness_sleep_ms(20);
        }
        client_send_str(c[1], "y\n");
        client_expect_line(c[0], "old y\n");
        cr_assert(daemon_running(&d));

        /* And a good file afterwards still works. */
        reload_settings(&d, "prefix = \"good \";");
        client_send_str(c[0], "z\n");
        client_expect_line(c[1], "good z\n");
        clients_close(c, 2);
        daemon_stop(&d);
}

/* SIGUSR1 logs one line of statistics. */
Test(signals, sigusr1_logs_stats) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        cr_assert(!daemon_log_contains(&d, "stats:", 0));
        daemon_signal(&d, SIGUSR1);
        cr_assert(daemon_log_contains(&d, "stats:", 3000), "no \"stats:\" line after SIGUSR1");
        cr_assert(daemon_log_count(&d, "stats:") == 1, "more than one stats line");
        cr_assert(daemon_running(&d));
        client_send_str(c[0], "after stats\n");
        client_expect_line(c[1], "after stats\n");
        clients_close(c, 2);
        daemon_stop(&d);
}

/* SIGPIPE never kills the process: neither kill -PIPE nor writing to a
 * client that reset its connection. */
Test(signals, sigpipe_does_not_kill) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, NULL, c, 3, false);
        daemon_signal(&d, SIGPIPE);
        harness_sleep_ms(300);
        cr_assert(daemon_running(&d), "killed by SIGPIPE (status %d)", d.status);

        /* c[2] vanishes with a reset; the daemon then writes to it. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c[2], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c[2]);
        char msg[MSG_LEN];
        for (uint32_t i = 0; i < 200; i++) {
                seq_msg_format(msg, MSG_LEN, i);
                client_send(c[0], msg, MSG_LEN);
        }
        SeqReader r;
        seq_reader_init(&r, c[1], MSG_LEN, true);
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        while (r.received < 200 && !r.eof && !r.error[0]) {
                cr_assert(harness_now_ms() < deadline, "got %llu of 200", (unsigned long long)r.received);
                if (seq_reader_poll(&r, 0) == 0)
                        harness_sleep_ms(2);
        }
        seq_reader_expect_all(&r, 200, "reader");
        cr_assert(daemon_running(&d), "died writing to a reset connection (status %d)", d.status);
        seq_reader_free(&r);
        clients_close(c, 2);
        daemon_stop(&d);
}
