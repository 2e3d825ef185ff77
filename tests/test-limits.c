/* End-to-end tests of the bounds of docs/protocol.md and epoll-broadcaster.conf(5): message size, per-client
 * queue (slow readers, both policies), client count, and scale. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

TestSuite(limits, .fini = harness_cleanup, .timeout = 90);

static char *repeat(char ch, size_t n, bool lf) {
        char *b = malloc(n + 2);
        cr_assert(b);
        memset(b, ch, n);
        if (lf)
                b[n++] = '\n';
        b[n] = '\0';
        return b;
}

/* A warning line naming the peer (its 127.0.0.1:port) and the reason. */
static void expect_peer_warning(Daemon *d, int fd, const char *reason) {
        char peer[64];
        snprintf(peer, sizeof peer, "127.0.0.1:%u", client_local_port(fd));
        const char *needles[] = {"warning: ", reason, peer, NULL};
        cr_assert(daemon_log_line_has(d, needles, 3000), "no log line with \"warning: \", \"%s\" and \"%s\"",
                  reason, peer);
}

/* The daemon cut sender off for an oversize message (what: the failure
 * message if it did not), delivered no part of it to reader, and logged a
 * warning naming sender. */
static void expect_oversize_cut_off(Daemon *d, int sender, int reader, const char *what) {
        cr_assert(client_wait_closed(sender, 5000), "%s", what);
        cr_assert(client_recv_nothing(reader, 300), "part of an oversize message was delivered");
        expect_peer_warning(d, sender, "over max_message_bytes");
}

/* docs/protocol.md oversize: never delivered, not even in part; sender disconnected;
 * warning with the peer address; the others carry on. */
Test(limits, oversize_message_disconnects_sender) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "max_message_bytes = 1024;", c, 3, false);
        int a = c[0], b = c[1], e = c[2];

        client_send_str(a, "fine\n");
        client_expect_line(b, "fine\n");
        client_expect_line(e, "fine\n");
        char *big = repeat('x', 2000, true);
        client_try_send(a, big, strlen(big), 5000); /* may be cut off midway */
        free(big);
        expect_oversize_cut_off(&d, a, b, "the sender of an oversize message stayed connected");
        /* The others keep working, and nothing of the big one shows up. */
        client_send_str(e, "after\n");
        client_expect_line(b, "after\n");
        client_send_str(b, "and back\n");
        client_expect_line(e, "and back\n");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* Oversize detected before the LF arrives (a sender that never ends its
 * line must not grow the daemon's buffer), and after earlier good lines in
 * the same stream. */
Test(limits, oversize_without_newline_disconnects) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, "max_message_bytes = 1024;", c, 2, false);
        char *part = repeat('y', 600, false);
        client_send_str(c[0], "good line\n");
        client_try_send(c[0], part, 600, 2000);
        harness_sleep_ms(50);
        client_try_send(c[0], part, 600, 2000); /* 1200 bytes, no LF yet */
        free(part);
        client_expect_line(c[1], "good line\n");
        expect_oversize_cut_off(&d, c[0], c[1],
                                "a sender past max_message_bytes without LF stayed connected");
        clients_close(c, 2);
        daemon_stop(&d);
}

/* Exactly max_message_bytes (LF included) passes; one more byte does not. */
Test(limits, exactly_at_limit_passes) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "max_message_bytes = 1024;", c, 3, false);
        char *ok = repeat('z', 1023, true);
        client_send(c[0], ok, 1024);
        char got[1024];
        client_recv_exact(c[1], got, 1024, 5000);
        cr_assert(memcmp(got, ok, 1024) == 0);
        client_recv_exact(c[2], got, 1024, 5000);
        cr_assert(memcmp(got, ok, 1024) == 0);
        free(ok);
        /* the sender is still connected */
        client_send_str(c[1], "ack\n");
        client_expect_line(c[0], "ack\n");
        client_expect_line(c[2], "ack\n");

        char *over = repeat('w', 1024, true); /* 1025 bytes */
        client_try_send(c[0], over, 1025, 2000);
        free(over);
        cr_assert(client_wait_closed(c[0], 5000), "1025 bytes with max_message_bytes = 1024 passed");
        cr_assert(client_recv_nothing(c[1], 300));
        client_send_str(c[2], "still fine\n");
        client_expect_line(c[1], "still fine\n");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* docs/protocol.md: the LF appended to a last partial line counts towards the limit. */
Test(limits, appended_newline_counts_towards_limit) {
        Daemon d;
        daemon_start(&d, "max_message_bytes = 64;");
        int r = client_connect(d.port);
        int a = client_connect(d.port);
        int ra[2] = {r, a};
        clients_sync(ra, 2, false);
        char *fits = repeat('f', 63, false); /* 63 + LF = 64: delivered */
        client_send(a, fits, 63);
        harness_sleep_ms(50);
        close(a);
        char want[80];
        snprintf(want, sizeof want, "%s\n", fits);
        client_expect_line(r, want);
        free(fits);

        int b = client_connect(d.port);
        int rb[2] = {r, b};
        clients_sync(rb, 2, false);
        char *too = repeat('t', 64, false); /* 64 + LF = 65: never delivered */
        client_try_send(b, too, 64, 2000);
        free(too);
        harness_sleep_ms(50);
        close(b);
        cr_assert(client_recv_nothing(r, 500), "a 65-byte last line passed max_message_bytes = 64");
        cr_assert(daemon_log_contains(&d, "over max_message_bytes", 2000));
        close(r);
        daemon_stop(&d);
}

#define MSG_LEN 1000

/* Enough messages that they cannot all sit in kernel buffers. */
static uint32_t overflow_count(void) {
        return (uint32_t)((harness_kernel_buffering() + 4u * 1024 * 1024) / MSG_LEN);
}

/* docs/protocol.md slow reader, "disconnect": a client that never reads is cut off
 * once over max_queue_bytes; a healthy reader gets every message in order,
 * nobody is slowed, the daemon's memory stays bounded. */
Test(limits, slow_reader_disconnected) {
        Daemon d;
        daemon_start(&d, "max_message_bytes = 4096;\nmax_queue_bytes = 65536;\n"
                         "slow_client = \"disconnect\";");
        SlowTrio t;
        clients_connect_slow_trio(d.port, &t);

        SeqReader h;
        seq_reader_init(&h, t.healthy, MSG_LEN, true);
        SeqReader *rs[] = {&h};
        uint32_t count = overflow_count();
        long max_rss = 0;
        pump_seq(t.sender, rs, 1, count, MSG_LEN, &d, &max_rss, 60000);
        seq_reader_expect_all(&h, count, "healthy reader");
        cr_assert(!h.eof, "healthy reader was disconnected");

        cr_assert(daemon_log_contains(&d, "over max_queue_bytes", 3000),
                  "no \"over max_queue_bytes\" in the log");
        expect_peer_warning(&d, t.slow, "over max_queue_bytes");
        cr_assert(client_wait_closed(t.slow, 10000), "the slow reader was never disconnected");
        /* Under valgrind (or ASan) the RSS is the tool's, not the daemon's. */
        if (harness_rss_meaningful()) {
                cr_assert(max_rss < 64 * 1024, "daemon RSS reached %ld KiB (> 64 MiB)", max_rss);
                cr_assert(daemon_rss_kib(&d) < 64 * 1024);
        }

        /* The rest carries on. */
        client_send_str(t.healthy, "bye\n");
        client_expect_line(t.sender, "bye\n");
        seq_reader_free(&h);
        slow_trio_close(&t);
        daemon_stop(&d);
}

/* docs/protocol.md: max_queue_bytes bounds what waits for a *receiver*.
 * A fast sender with one prompt reader and no slow client at all: nobody may
 * be cut off, nothing lost (a sender's own messages are never queued for it). */
Test(limits, fast_sender_and_prompt_reader_not_cut_off) {
        Daemon d;
        daemon_start(&d, "max_message_bytes = 4096;\nmax_queue_bytes = 65536;");
        int reader = client_connect(d.port);
        int sender = client_connect(d.port);
        int all[2] = {reader, sender};
        clients_sync(all, 2, false);
        SeqReader r;
        seq_reader_init(&r, reader, MSG_LEN, true);
        SeqReader *rs[] = {&r};
        uint32_t count = 4000; /* 4 MB */
        pump_seq(sender, rs, 1, count, MSG_LEN, NULL, NULL, 60000);
        cr_assert(!r.eof, "the prompt reader was disconnected");
        seq_reader_expect_all(&r, count, "prompt reader");
        char *log = daemon_log_text(&d);
        cr_assert(!strstr(log, "over max_queue_bytes"), "queue limit hit with no slow client; log:\n%s",
                  log);
        free(log);
        seq_reader_free(&r);
        close(reader);
        close(sender);
        daemon_stop(&d);
}

/* docs/protocol.md slow reader, "drop": the slow client stays, gets whole messages in
 * order with gaps; a warning is logged; the healthy reader gets everything. */
Test(limits, slow_reader_drop_policy) {
        Daemon d;
        daemon_start(&d, "max_message_bytes = 4096;\nmax_queue_bytes = 65536;\n"
                         "slow_client = \"drop\";");
        SlowTrio t;
        clients_connect_slow_trio(d.port, &t);

        SeqReader h, s;
        seq_reader_init(&h, t.healthy, MSG_LEN, true);
        seq_reader_init(&s, t.slow, MSG_LEN, false);
        SeqReader *rs[] = {&h};
        uint32_t count = overflow_count();
        long max_rss = 0;
        pump_seq(t.sender, rs, 1, count, MSG_LEN, &d, &max_rss, 60000);
        seq_reader_expect_all(&h, count, "healthy reader");
        cr_assert(daemon_log_contains(&d, "over max_queue_bytes", 3000),
                  "no \"over max_queue_bytes\" warning in drop mode");
        if (harness_rss_meaningful())
                cr_assert(max_rss < 64 * 1024, "daemon RSS reached %ld KiB (> 64 MiB)", max_rss);

        /* Now the slow client reads what it was left: until 1 s of quiet. */
        int64_t deadline = harness_now_ms() + 30000;
        int64_t quiet_since = harness_now_ms();
        while (harness_now_ms() - quiet_since < 1000) {
                cr_assert(harness_now_ms() < deadline, "slow reader never drained");
                ssize_t n = seq_reader_poll(&s, 0);
                if (n > 0)
                        quiet_since = harness_now_ms();
                else if (n < 0)
                        break;
                else
                        harness_sleep_ms(5);
        }
        cr_assert(!s.eof, "drop policy disconnected the slow client");
        cr_assert(s.error[0] == '\0', "slow reader: %s", s.error);
        cr_assert(s.buf_len == 0, "slow reader left inside a message");
        cr_assert(s.received > 0, "slow reader got nothing at all");
        cr_assert(s.received < count && s.gaps > 0,
                  "slow reader lost nothing (got %llu of %u): the queue limit never applied",
                  (unsigned long long)s.received, count);

        /* Still connected and served once it keeps up. */
        char msg[MSG_LEN];
        seq_msg_format(msg, MSG_LEN, count);
        client_send(t.sender, msg, MSG_LEN);
        deadline = harness_now_ms() + 5000;
        while (s.last_seq != (long)count || h.last_seq != (long)count) {
                cr_assert(harness_now_ms() < deadline,
                          "message after the drops: slow got last %ld, healthy last %ld (want %u)",
                          s.last_seq, h.last_seq, count);
                cr_assert(seq_reader_poll(&s, 0) >= 0, "slow client closed");
                cr_assert(seq_reader_poll(&h, 0) >= 0, "healthy client closed");
                harness_sleep_ms(2);
        }
        cr_assert(s.error[0] == '\0' && h.error[0] == '\0', "%s%s", s.error, h.error);
        seq_reader_free(&h);
        seq_reader_free(&s);
        slow_trio_close(&t);
        daemon_stop(&d);
}

/* docs/protocol.md full: connection max_clients+1 is accepted and closed at once,
 * with a warning; the others are not disturbed; a freed slot is reusable. */
Test(limits, max_clients_rejects_extra) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "max_clients = 3;", c, 3, false);
        int extra = client_try_connect(d.port);
        cr_assert(extra >= 0, "connection 4 was not even accepted by the kernel: %s", strerror(errno));
        cr_assert(client_wait_closed(extra, 3000), "connection max_clients+1 was not closed");
        close(extra);
        const char *needles[] = {"warning: ", "max_clients", NULL};
        cr_assert(daemon_log_line_has(&d, needles, 2000), "no max_clients warning");

        client_send_str(c[0], "three of us\n");
        client_expect_line(c[1], "three of us\n");
        client_expect_line(c[2], "three of us\n");

        /* A slot freed by a disconnect can be used again. */
        close(c[2]);
        int64_t deadline = harness_now_ms() + 5000;
        int fresh = -1;
        while (fresh < 0) {
                cr_assert(harness_now_ms() < deadline, "no slot freed after a client left");
                int fd = client_connect(d.port);
                if (client_wait_closed(fd, 300)) {
                        close(fd);
                        harness_sleep_ms(50);
                        continue;
                }
                fresh = fd;
        }
        int now[3] = {c[0], c[1], fresh};
        clients_sync(now, 3, false);
        client_send_str(fresh, "newcomer\n");
        client_expect_line(c[0], "newcomer\n");
        client_expect_line(c[1], "newcomer\n");
        close(fresh);
        clients_close(c, 2);
        daemon_stop(&d);
}

/* docs/protocol.md full: a flood of rejected connections gives only a few log lines. */
Test(limits, max_clients_warning_is_rate_limited) {
        enum { FLOOD = 200 };
        Daemon d;
        daemon_start(&d, "max_clients = 1;");
        int first = client_connect(d.port); /* accepted first (FIFO) */
        int fds[FLOOD];
        for (int i = 0; i < FLOOD; i++) {
                fds[i] = client_try_connect(d.port);
                cr_assert(fds[i] >= 0, "flood connection %d: %s", i, strerror(errno));
        }
        int closed = 0;
        for (int i = 0; i < FLOOD; i++) {
                if (client_wait_closed(fds[i], 5000))
                        closed++;
                close(fds[i]);
        }
        cr_assert(closed == FLOOD, "only %d of %d rejected connections were closed", closed, FLOOD);
        cr_assert(client_recv_nothing(first, 200), "the admitted client was disturbed");
        harness_sleep_ms(300);
        int lines = daemon_log_count(&d, "max_clients");
        char *log = daemon_log_text(&d);
        cr_assert(lines >= 1, "no max_clients warning at all; log:\n%s", log);
        cr_assert(lines <= 10, "%d log lines about max_clients for %d rejections (not rate limited)", lines,
                  FLOOD);
        /* Per-connection info lines for rejected peers would be a flood too. */
        int total_lines = 0;
        for (const char *p = log; *p; p++)
                total_lines += *p == '\n';
        cr_assert(total_lines < FLOOD, "%d log lines for %d rejected connections", total_lines, FLOOD);
        free(log);
        cr_assert(daemon_running(&d));
        close(first);
        daemon_stop(&d);
}

/* Scale: 1,000 connected clients all receive one message (the daemon must
 * raise its own RLIMIT_NOFILE soft limit to get there: it is started with a
 * soft limit of 512). */
Test(limits, thousand_clients_all_receive) {
        enum { N = 1000 };
        struct rlimit rl;
        cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < N + 64)
                cr_skip_test("hard RLIMIT_NOFILE %lu is too low", (unsigned long)rl.rlim_max);
        struct rlimit low = {.rlim_cur = 512, .rlim_max = rl.rlim_max};
        cr_assert(setrlimit(RLIMIT_NOFILE, &low) == 0);
        Daemon d;
        daemon_start(&d, NULL); /* inherits soft 512 */
        struct rlimit high = {.rlim_cur = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max,
                              .rlim_max = rl.rlim_max};
        if (high.rlim_cur > 65536)
                high.rlim_cur = 65536;
        cr_assert(setrlimit(RLIMIT_NOFILE, &high) == 0);

        int *fds = calloc(N, sizeof *fds);
        for (int i = 0; i < N; i++)
                fds[i] = client_connect(d.port);
        clients_sync(fds, N, false);
        client_send_str(fds[0], "hello, thousand\n");
        for (int i = 1; i < N; i++) {
                char buf[64];
                size_t n = client_recv_line(fds[i], buf, sizeof buf, 5000);
                cr_assert(n == 16 && memcmp(buf, "hello, thousand\n", 16) == 0, "client %d got \"%.*s\"", i,
                          (int)n, buf);
        }
        cr_assert(client_recv_nothing(fds[0], 100));
        for (int i = 0; i < N; i++)
                close(fds[i]);
        free(fds);
        cr_assert(daemon_running(&d));
        daemon_stop(&d);
}
