/* Unit tests of the hub (server*.c) in-process: clients are socketpairs
 * whose far ends the test holds, and the loop is pumped at timeout 0, so
 * every test sees exactly what one round does. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "server.h"

typedef struct Hub {
        Server *s;
        char dir[64];
        char path[128];
} Hub;

static void hub_write_conf(Hub *h, const char *text) {
        FILE *f = fopen(h->path, "w");
        cr_assert(f);
        fputs(text, f);
        cr_assert(fclose(f) == 0);
}

/* A hub with the settings in 'text' (a config file the test may rewrite
 * and reload with SIGHUP) and no listener. */
static void hub_new(Hub *h, const char *text) {
        snprintf(h->dir, sizeof h->dir, "/tmp/eb-hub-XXXXXX");
        cr_assert(mkdtemp(h->dir));
        snprintf(h->path, sizeof h->path, "%s/eb.conf", h->dir);
        hub_write_conf(h, text);
        /* The hub reads its signals from a signalfd. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        cr_assert(sigprocmask(SIG_BLOCK, &mask, NULL) == 0);
        Config *c;
        char err[256];
        cr_assert_eq(config_load(h->path, true, &c, NULL, err, sizeof err), 0, "%s", err);
        cr_assert_eq(server_new(&h->s, c, h->path, false), 0);
}

static void hub_free(Hub *h) {
        server_free(h->s);
        unlink(h->path);
        rmdir(h->dir);
}

/* A client of a listener with 'role': the hub gets one end of a
 * socketpair, the test the other. */
static int hub_client_role(Hub *h, int sndbuf, int role) {
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        if (sndbuf > 0)
                cr_assert(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
        struct sockaddr peer = {.sa_family = AF_UNIX};
        server_add_connection(h->s, sv[0], &peer, sizeof(sa_family_t), &(ConnSpec){.role = (uint8_t)role});
        return sv[1];
}

static int hub_client(Hub *h, int sndbuf) {
        return hub_client_role(h, sndbuf, LISTEN_ROLE_BOTH);
}

static void pump(Hub *h, int rounds) {
        for (int i = 0; i < rounds; i++)
                cr_assert_eq(server_run_once(h->s, 0), 0);
}

static void put(int fd, const char *s) {
        size_t n = strlen(s);
        cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

/* Everything the hub wrote to fd so far. */
static size_t take(int fd, char *buf, size_t size) {
        size_t got = 0;
        for (;;) {
                ssize_t n = read(fd, buf + got, size - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        buf[got] = '\0';
        return got;
}

Test(hub, relays_to_the_others_in_one_round) {
        Hub h;
        hub_new(&h, "");
        int a = hub_client(&h, 0), b = hub_client(&h, 0), c = hub_client(&h, 0);
        put(a, "one\ntwo\n");
        pump(&h, 1);
        char buf[256];
        cr_assert_eq(take(b, buf, sizeof buf), 8);
        cr_assert_str_eq(buf, "one\ntwo\n");
        take(c, buf, sizeof buf);
        cr_assert_str_eq(buf, "one\ntwo\n");
        cr_assert_eq(take(a, buf, sizeof buf), 0, "the sender got its own lines");
        cr_assert_eq(server_stats(h.s)->messages, 2);
        close(a);
        close(b);
        close(c);
        hub_free(&h);
}

Test(hub, last_line_of_a_closed_sender_gets_its_lf) {
        Hub h;
        hub_new(&h, "");
        int a = hub_client(&h, 0), b = hub_client(&h, 0);
        put(a, "partial");
        pump(&h, 1);
        cr_assert_eq(server_partial_memory(h.s), 7);
        close(a);
        pump(&h, 2);
        char buf[64];
        take(b, buf, sizeof buf);
        cr_assert_str_eq(buf, "partial\n");
        cr_assert_eq(server_clients(h.s), 1);
        cr_assert_eq(server_partial_memory(h.s), 0);
        close(b);
        hub_free(&h);
}

/* One round appends at most its budget, prefix included: 64 KiB of bare
 * LFs with a prefix take several rounds, not one huge allocation. */
Test(hub, a_round_appends_at_most_its_budget) {
        Hub h;
        hub_new(&h, "prefix = \"a prefix that makes each empty line exactly 64 bytes long::: %i\\t\";\n"
                    "max_queue_bytes = 67108864;\n");
        int a = hub_client(&h, 0), b = hub_client(&h, 0);
        static char lfs[64 * 1024];
        memset(lfs, '\n', sizeof lfs);
        cr_assert_eq(write(a, lfs, sizeof lfs), (ssize_t)sizeof lfs);
        pump(&h, 1);
        /* 64 bytes a line: 4 MiB in all, at most 1 MiB a round (plus the
         * blocks' run tables). */
        size_t after_one = server_queue_memory(h.s);
        cr_assert_leq(after_one, (size_t)1200 * 1024, "one round holds %zu bytes", after_one);
        uint64_t lines = server_stats(h.s)->messages;
        cr_assert_lt(lines, sizeof lfs, "every line went in one round");
        static char got[8 << 20];
        size_t total = 0;
        for (int i = 0; i < 64 && server_stats(h.s)->messages < sizeof lfs; i++) {
                pump(&h, 1);
                total += take(b, got, sizeof got);
        }
        for (int i = 0; i < 1000 && total < 64 * sizeof lfs; i++) {
                pump(&h, 1);
                total += take(b, got, sizeof got);
        }
        cr_assert_eq(server_stats(h.s)->messages, sizeof lfs);
        cr_assert_eq(total, 64 * sizeof lfs);
        close(a);
        close(b);
        hub_free(&h);
}

/* Drop mode cuts a slow reader's queue down to half of max_queue_bytes at
 * once: the first drop skips about half a queue of messages, not one. */
Test(hub, drop_mode_drops_down_to_half_the_queue) {
        enum { QUEUE = 8192, LEN = 64 };
        Hub h;
        hub_new(&h, "slow_client = \"drop\";\nmax_queue_bytes = 8192;\nmax_message_bytes = 1024;\n");
        int slow = hub_client(&h, 4096), sender = hub_client(&h, 0);
        char msg[LEN];
        memset(msg, 'm', LEN - 1);
        msg[LEN - 1] = '\n';
        for (int i = 0; i < 100000 && server_stats(h.s)->dropped == 0; i++) {
                cr_assert_eq(write(sender, msg, LEN), LEN);
                pump(&h, 1);
        }
        uint64_t dropped = server_stats(h.s)->dropped;
        cr_assert_gt(dropped, 0, "never over the limit");
        cr_assert_geq(dropped, QUEUE / 2 / LEN - 1, "the first drop skipped %llu messages",
                      (unsigned long long)dropped);
        cr_assert_leq(dropped, QUEUE / 2 / LEN + 1);
        cr_assert_eq(server_clients(h.s), 2);
        close(slow);
        close(sender);
        hub_free(&h);
}

/* A client that sends while its socket is full is not judged by its own
 * messages (echo off), and is not read while they pin more than its queue;
 * once it reads, all it sent goes out. */
Test(hub, own_messages_are_not_a_clients_queue) {
        enum { QUEUE = 4096, LEN = 128, OWN = 10 * QUEUE / LEN };
        Hub h;
        hub_new(&h, "max_queue_bytes = 4096;\nmax_message_bytes = 1024;\n");
        int busy = hub_client(&h, 4096), other = hub_client(&h, 0), reader = hub_client(&h, 0);
        static char buf[1 << 20];
        char msg[LEN];
        memset(msg, 'o', LEN - 1);
        msg[LEN - 1] = '\n';
        /* Fill busy's socket with a few of other's messages: it blocks,
         * short of its limit. */
        for (int i = 0; i < 20; i++) {
                cr_assert_eq(write(other, msg, LEN), LEN);
                pump(&h, 1);
                take(reader, buf, sizeof buf);
        }
        cr_assert_eq(server_clients(h.s), 3, "busy was cut off by the others' messages");
        /* Now busy sends ten times its queue: the hub stops reading it
         * long before, so its socket fills. */
        size_t got = 0;
        int written = 0;
        while (written < OWN && write(busy, msg, LEN) == LEN) {
                written++;
                pump(&h, 1);
                got += take(reader, buf, sizeof buf);
        }
        pump(&h, 4);
        got += take(reader, buf, sizeof buf);
        cr_assert_eq(server_clients(h.s), 3, "busy was cut off by its own messages");
        cr_assert_eq(server_stats(h.s)->slow_disconnects, 0);
        cr_assert_lt(got, (size_t)written * LEN, "busy was read on while it did not read");
        cr_assert_leq(got, (size_t)QUEUE + 1024 * 1024, "its own messages pinned %zu bytes", got);
        /* It reads: the others' messages, then its own flow again. */
        size_t backlog = 0;
        for (int i = 0; i < 10000 && got < (size_t)OWN * LEN; i++) {
                backlog += take(busy, buf, sizeof buf);
                if (written < OWN && write(busy, msg, LEN) == LEN)
                        written++;
                pump(&h, 1);
                got += take(reader, buf, sizeof buf);
        }
        cr_assert_eq(backlog, 20 * LEN);
        cr_assert_eq(got, (size_t)OWN * LEN);
        close(busy);
        close(other);
        close(reader);
        hub_free(&h);
}

/* A removed configuration file is a failed reload, not the defaults. */
Test(hub, reload_of_a_removed_file_keeps_the_running_settings) {
        Hub h;
        hub_new(&h, "echo = true;\n");
        int a = hub_client(&h, 0);
        unlink(h.path);
        cr_assert(kill(getpid(), SIGHUP) == 0);
        pump(&h, 2);
        put(a, "back to me\n");
        pump(&h, 1);
        char buf[64];
        take(a, buf, sizeof buf);
        cr_assert_str_eq(buf, "back to me\n", "echo was reset by reloading a removed file");
        close(a);
        hub_free(&h);
}
