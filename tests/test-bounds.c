/* Integration tests of the bounds a hostile or careless client runs into
 * (docs/protocol.md): what one round may allocate, a reset sender's last line, a
 * client's own messages and its queue, the limit and timeout on unfinished
 * lines, the stale-socket probe. (Drop mode's low-water mark is tested on
 * the hub itself, test-hub.c, where the socket buffers are the test's.) Each failed against the daemon
 * before these bounds existed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define UNIX_CONF(extra) "listen = [\"127.0.0.1:@PORT@\", \"@DIR@/eb.sock\"];\nlog_level = \"info\";\n" extra

static void start_with_unix(Daemon *d, const char *conf, char *path, size_t size) {
        daemon_spawn_raw(d, conf, NULL);
        snprintf(path, size, "%s/eb.sock", d->dir);
        daemon_wait_unix_listening(d, path, 5000);
        daemon_wait_tcp_listening(d, d->port, 5000);
}

static void close_reset(int fd) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        cr_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
        close(fd);
}

/* The daemon's peak resident set (VmHWM), in KiB. */
static long peak_rss_kib(const Daemon *d) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
        FILE *f = fopen(path, "r");
        cr_assert(f, "cannot read %s", path);
        long kib = -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        cr_assert(kib > 0, "no VmHWM in %s", path);
        return kib;
}

/* A round appends at most its budget, prefix expansion included: 100
 * clients whose 64 KiB of bare LFs are all read in the same round once
 * used to allocate about 109 MiB at once with prefix "%a ". */
Test(bounds, one_round_of_bare_lfs_with_a_prefix_allocates_little) {
        enum { SENDERS = 100, EACH = 64 * 1024 };
        Daemon d;
        daemon_start(&d, "prefix = \"%a \";");
        int fds[SENDERS], reader = client_connect(d.port);
        clients_connect(d.port, fds, SENDERS);
        int all[SENDERS + 1];
        memcpy(all, fds, sizeof fds);
        all[SENDERS] = reader;
        clients_sync(all, SENDERS + 1, false);
        long before = peak_rss_kib(&d);

        /* Everything is in the daemon's receive queues before it reads a
         * byte, so its first round sees all of it. */
        char *lfs = malloc(EACH);
        cr_assert(lfs);
        memset(lfs, '\n', EACH);
        daemon_signal(&d, SIGSTOP);
        for (int i = 0; i < SENDERS; i++)
                cr_assert(client_try_send(fds[i], lfs, EACH, 5000), "sender %d could not send", i);
        daemon_signal(&d, SIGCONT);
        free(lfs);

        /* What the senders sent reaches the reader prefixed. Nobody reads
         * further: the senders' own messages soon hold them back, and the
         * daemon settles with what the rounds before could append. */
        char line[128];
        size_t n = client_recv_line(reader, line, sizeof line, 10000);
        cr_assert(n > 1 && line[n - 1] == '\n' && strncmp(line, "127.0.0.1:", 10) == 0,
                  "first relayed line: %.*s", (int)n, line);
        harness_sleep_ms(harness_ms(2000));
        clients_close(fds, SENDERS);
        close(reader);
        /* Their closes are resets (unread input): what they had sent is
         * still relayed. Fresh clients only once all of them are gone. */
        cr_assert_eq(daemon_wait_stat(&d, "clients", 0, 60000), 0);
        if (harness_rss_meaningful()) {
                long grown = peak_rss_kib(&d) - before;
                cr_log_info("peak RSS grew by %ld KiB", grown);
                cr_assert(grown < 24 * 1024, "peak RSS grew by %ld KiB (the bound is a few MiB)", grown);
        }
        int fresh[2];
        clients_connect(d.port, fresh, 2);
        clients_sync(fresh, 2, false);
        client_send_str(fresh[1], "fresh\n");
        n = client_recv_line(fresh[0], line, sizeof line, 5000);
        cr_assert(n > 7 && memcmp(line + n - 7, " fresh\n", 7) == 0, "after the flood: %.*s", (int)n, line);
        clients_close(fresh, 2);
        daemon_stop(&d);
}

/* docs/protocol.md: a sender whose connection is reset right after its bytes arrived
 * (it closed with unread input) still has its last line delivered. */
Test(bounds, reset_sender_last_line_is_delivered) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        daemon_signal(&d, SIGSTOP);
        client_send_str(c[1], "complete\nlast words");
        close_reset(c[1]);
        daemon_signal(&d, SIGCONT);
        client_expect_line(c[0], "complete\n");
        client_expect_line(c[0], "last words\n");
        close(c[0]);
        daemon_stop(&d);
}

/* A Unix stream client: the daemon's socket to it buffers at most its send
 * buffer (about 208 KiB), with no autotuning, so the test knows when it is
 * full. */
enum { OWN_LEN = 100, KERNEL_MAX = 512 * 1024 };

/* Fills slow's socket with the sender's messages and leaves some waiting in
 * the daemon (less than the limit): slow is then a blocked reader. */
static uint32_t block_slow_reader(Daemon *d, int healthy, int sender) {
        SeqReader h;
        seq_reader_init(&h, healthy, OWN_LEN, true);
        SeqReader *rs[] = {&h};
        uint32_t count = KERNEL_MAX / OWN_LEN;
        pump_seq(sender, rs, 1, count, OWN_LEN, d, NULL, 30000);
        seq_reader_expect_all(&h, count, "healthy reader");
        seq_reader_free(&h);
        return count;
}

/* Reads everything slow was sent: exactly the sender's count messages. */
static void slow_reads_its_backlog(int slow, uint32_t count) {
        SeqReader s;
        seq_reader_init(&s, slow, OWN_LEN, true);
        int64_t deadline = harness_now_ms() + harness_ms(30000);
        while (s.received < count && !s.eof && s.error[0] == '\0') {
                cr_assert(harness_now_ms() < deadline, "slow reader got %llu of %u",
                          (unsigned long long)s.received, count);
                if (seq_reader_poll(&s, 0) == 0)
                        harness_sleep_ms(2);
        }
        seq_reader_expect_all(&s, count, "the reader that sent");
        seq_reader_free(&s);
}

/* A daemon with a Unix listener, and three clients: slow (on the Unix
 * socket, blocked with the sender's messages), healthy and sender. Returns
 * how many messages slow has to read. */
static uint32_t start_with_a_blocked_reader(Daemon *d, int *slow, int *healthy, int *sender) {
        char path[128];
        start_with_unix(d, UNIX_CONF(""), path, sizeof path);
        *slow = client_connect_unix(path);
        *healthy = client_connect(d->port);
        *sender = client_connect(d->port);
        int all[] = {*slow, *healthy, *sender};
        clients_sync(all, 3, false);
        return block_slow_reader(d, *healthy, *sender);
}

/* docs/protocol.md: a client's own messages (echo off) are never written to it, so
 * they do not count towards its max_queue_bytes. Its waiting queue (at most
 * 512 KiB) plus its own 900 KB is over 1 MiB; what waits for it is not. */
Test(bounds, own_messages_do_not_count_towards_own_queue) {
        Daemon d;
        int slow, healthy, sender;
        uint32_t count = start_with_a_blocked_reader(&d, &slow, &healthy, &sender);
        SeqReader h;
        seq_reader_init(&h, healthy, OWN_LEN, true);
        SeqReader *rs[] = {&h};
        uint32_t own = 900 * 1000 / OWN_LEN;
        pump_seq(slow, rs, 1, own, OWN_LEN, &d, NULL, 30000);
        seq_reader_expect_all(&h, own, "healthy reader of the blocked sender");
        seq_reader_free(&h);
        cr_assert(!daemon_log_contains(&d, "over max_queue_bytes", 200),
                  "the sender was judged by its own lines");

        slow_reads_its_backlog(slow, count);
        close(slow);
        close(healthy);
        close(sender);
        daemon_stop(&d);
}

/* Own sending cannot pin memory without bound either: a client that sends
 * 4 MiB while it does not read is not read itself once its own messages
 * hold more than max_queue_bytes, is never cut off, and everything it sent
 * is delivered once it reads again. */
Test(bounds, own_sending_is_held_back_not_cut_off) {
        enum { OWN = 4 * 1024 * 1024 / OWN_LEN };
        Daemon d;
        int slow, healthy, sender;
        uint32_t count = start_with_a_blocked_reader(&d, &slow, &healthy, &sender);

        /* A child sends (blocking when held back); the test reads. */
        pid_t child = fork();
        cr_assert(child >= 0);
        if (child == 0) {
                char msg[OWN_LEN];
                for (uint32_t i = 0; i < OWN; i++) {
                        seq_msg_format(msg, OWN_LEN, i);
                        for (size_t off = 0; off < OWN_LEN;) {
                                ssize_t w = write(slow, msg + off, OWN_LEN - off);
                                if (w < 0 && errno != EINTR && errno != EAGAIN)
                                        _exit(1);
                                if (w < 0) {
                                        struct pollfd p = {.fd = slow, .events = POLLOUT};
                                        (void)poll(&p, 1, 100);
                                        continue;
                                }
                                off += (size_t)w;
                        }
                }
                _exit(0);
        }
        SeqReader h;
        seq_reader_init(&h, healthy, OWN_LEN, true);
        /* It is held back: the healthy reader stops short of everything. */
        int64_t quiet = harness_now_ms(), deadline = quiet + harness_ms(30000);
        while (harness_now_ms() - quiet < harness_ms(1000)) {
                cr_assert(harness_now_ms() < deadline, "the held-back sender never paused");
                if (seq_reader_poll(&h, 0) > 0)
                        quiet = harness_now_ms();
                else
                        harness_sleep_ms(5);
        }
        cr_assert(h.received < OWN, "all %u own messages went through while it did not read", OWN);
        cr_assert(!daemon_log_contains(&d, "over max_queue_bytes", 0), "the sender was cut off as slow");

        /* It reads: everything it was sent, then its own lines flow again. */
        slow_reads_its_backlog(slow, count);
        while (h.received < OWN && !h.eof && h.error[0] == '\0') {
                cr_assert(harness_now_ms() < deadline, "healthy reader got %llu of %u",
                          (unsigned long long)h.received, OWN);
                if (seq_reader_poll(&h, 0) == 0)
                        harness_sleep_ms(2);
        }
        seq_reader_expect_all(&h, OWN, "healthy reader of the held-back sender");
        seq_reader_free(&h);
        int st;
        cr_assert(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(slow);
        close(healthy);
        close(sender);
        daemon_stop(&d);
}

/* An unfinished line waits partial_timeout for its end, no longer. */
Test(bounds, unfinished_line_times_out) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "partial_timeout = 1;", c, 3, false);
        client_send_str(c[1], "never finished");
        client_send_str(c[2], "slow but ");
        harness_sleep_ms(300);
        client_send_str(c[2], "finished\n");
        client_expect_line(c[0], "slow but finished\n");
        cr_assert(client_wait_closed(c[1], 10000), "a client holding an unfinished line was never closed");
        cr_assert(daemon_log_contains(&d, "older than partial_timeout", 2000));
        cr_assert(client_recv_nothing(c[0], 200), "a timed-out unfinished line was relayed");
        client_send_str(c[2], "still here\n");
        client_expect_line(c[0], "still here\n");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* The unfinished lines of all clients together are bounded: the client
 * whose input takes them past max_partial_bytes is disconnected; the others
 * finish their lines. */
Test(bounds, unfinished_lines_are_bounded_all_together) {
        enum { N = 5 };
        Daemon d;
        int c[N + 1];
        daemon_start_clients(&d, "max_message_bytes = 1024;\nmax_partial_bytes = 4096;", c, N + 1, false);
        char part[1001];
        memset(part, 'p', 1000);
        part[1000] = '\0';
        for (int i = 1; i < N; i++)
                client_send_str(c[i], part);
        harness_sleep_ms(200);
        cr_assert(client_recv_nothing(c[0], 100));
        /* 4 x 1000 held; 1000 more is over 4096. */
        client_send_str(c[N], "whole\n");
        client_send_str(c[N], part);
        client_expect_line(c[0], "whole\n");
        cr_assert(client_wait_closed(c[N], 5000), "the client over max_partial_bytes was not closed");
        cr_assert(daemon_log_contains(&d, "over max_partial_bytes", 2000));
        char want[1002];
        memcpy(want, part, 1000);
        for (int i = 1; i < N; i++) {
                client_send_str(c[i], "\n");
                client_recv_exact(c[0], want, 1001, 5000);
                cr_assert(memcmp(want, part, 1000) == 0 && want[1000] == '\n', "line %d arrived broken", i);
        }
        clients_close(c, N + 1);
        daemon_stop(&d);
}

/* The stale-socket probe at start cannot hang: a listener whose backlog is
 * full is in use (exit 1 at once), not waited for. */
Test(bounds, unix_socket_with_a_full_backlog_is_in_use) {
        Daemon d;
        daemon_init(&d);
        char path[128];
        snprintf(path, sizeof path, "%s/eb.sock", d.dir);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        cr_assert(strlen(path) < sizeof a.sun_path);
        memcpy(a.sun_path, path, strlen(path) + 1);
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 0) == 0);
        int fill[4], n = 0;
        for (; n < 4; n++) {
                fill[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (connect(fill[n], (struct sockaddr *)&a, sizeof a) < 0) {
                        cr_assert(errno == EAGAIN, "filling the backlog: %s", strerror(errno));
                        close(fill[n]);
                        break;
                }
        }
        cr_assert(n < 4, "the backlog never filled");
        daemon_exec(&d, UNIX_CONF(""), NULL);
        int st = daemon_wait(&d, 10000);
        cr_assert(st == 1, "a Unix socket with a full backlog: exit %d (want 1 at once)", st);
        for (int i = 0; i < n; i++)
                close(fill[i]);
        close(l);
        daemon_stop(&d);
}
