/* Abuse tests (issue 6): what a relay on an open port meets, in bounded
 * amounts, on loopback. After each attack the daemon must still relay
 * between two fresh clients, hold no more descriptors and clients than
 * before, and have given its memory back: RSS within RSS_SLACK_KIB of the
 * baseline taken after start (unless !harness_rss_meaningful(): valgrind,
 * ASan). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(abuse, .fini = harness_cleanup, .timeout = 240);

/* What the daemon may keep above its baseline once an attack is over: the
 * log's spare block, allocator bookkeeping. Small next to what the attacks
 * make it hold (16 MiB of partial lines, megabytes of queued messages, the
 * state of 5,000 clients), so retained buffers do not fit in it. */
#define RSS_SLACK_KIB 2048

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* splitmix64: deterministic, so a failure replays the same bytes. */
static uint64_t rng_next(uint64_t *s) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static size_t rng_between(uint64_t *s, size_t lo, size_t hi) {
        return lo + rng_next(s) % (hi - lo + 1);
}

static int wait_fd_count(Daemon *d, int want, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                int n = daemon_fd_count(d);
                if (n == want || harness_now_ms() >= deadline)
                        return n;
                harness_sleep_ms(20);
        }
}

typedef struct Baseline {
        long rss_kib;
        int fds;
        long long accepted;
} Baseline;

/* After one relay (the first allocates the log's blocks), with no client. */
static void baseline_take(Daemon *d, Baseline *b) {
        daemon_check_relays(d);
        cr_assert_eq(daemon_wait_stat(d, "clients", 0, 5000), 0);
        b->accepted = daemon_stat(d, "accepted");
        b->fds = daemon_fd_count(d);
        b->rss_kib = daemon_rss_kib(d);
        cr_log_info("baseline: RSS %ld KiB, %d descriptors", b->rss_kib, b->fds);
}

/* The test has closed all its clients: none is left in the daemon, nor a
 * descriptor; it relays; its memory is back. */
static void expect_recovered(Daemon *d, const Baseline *b, const char *attack) {
        long long clients = daemon_wait_stat(d, "clients", 0, 10000);
        cr_assert(clients == 0, "after %s: %lld clients left in the daemon", attack, clients);
        int fds = wait_fd_count(d, b->fds, 5000);
        cr_assert(fds == b->fds, "after %s: %d descriptors open, %d before", attack, fds, b->fds);
        daemon_check_relays(d);
        if (!harness_rss_meaningful())
                return;
        long rss = daemon_wait_rss_at_most(d, b->rss_kib + RSS_SLACK_KIB, 3000);
        cr_log_info("after %s: RSS %ld KiB (baseline %ld KiB)", attack, rss, b->rss_kib);
        cr_assert(rss <= b->rss_kib + RSS_SLACK_KIB,
                  "after %s: RSS %ld KiB, baseline %ld KiB + %d KiB allowed: memory not given back", attack,
                  rss, b->rss_kib, RSS_SLACK_KIB);
}

/* close() that sends RST instead of FIN. */
static void close_reset(int fd) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        cr_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
        close(fd);
}

/* Reads and throws away what is there, without blocking. */
static void drain(int fd) {
        char buf[65536];
        while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                ;
}

/* Polls r until its foreign lines reach want, it fails, or timeout_ms
 * passed; true in the first case. */
static bool seq_reader_wait_foreign(SeqReader *r, uint64_t want, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        while (r->n_foreign < want && !r->error[0] && !r->eof && harness_now_ms() < deadline) {
                struct pollfd p = {.fd = r->fd, .events = POLLIN};
                poll(&p, 1, 50);
                while (seq_reader_poll(r, 0) > 0)
                        ;
        }
        cr_assert(r->error[0] == '\0', "%s", r->error);
        return r->n_foreign == want;
}

/* ------------------------------------------------------------------------ */
/* 10,000 connect/close cycles                                               */

typedef enum CycleKind {
        CYCLE_CLOSE,              /* connect, close */
        CYCLE_RESET,              /* connect, RST */
        CYCLE_HALF_CLOSE,         /* shutdown(SHUT_WR), close */
        CYCLE_PARTIAL_HALF_CLOSE, /* a line without LF, shutdown(SHUT_WR), close */
        CYCLE_LINE_CLOSE,         /* a line, close at once */
        N_CYCLE_KINDS,
} CycleKind;

enum { CYCLES = 10000 };

/* The line cycle i leaves for the others, or NULL. */
static const char *cycle_line(unsigned i, char *buf, size_t size) {
        switch ((CycleKind)(i % N_CYCLE_KINDS)) {
        case CYCLE_PARTIAL_HALF_CLOSE:
                snprintf(buf, size, "cycle %05u partial\n", i);
                return buf;
        case CYCLE_LINE_CLOSE:
                snprintf(buf, size, "cycle %05u line\n", i);
                return buf;
        case CYCLE_CLOSE:
        case CYCLE_RESET:
        case CYCLE_HALF_CLOSE:
        case N_CYCLE_KINDS:
                break;
        }
        return NULL;
}

/* Checks off the lines of the cycles: each expected one exactly once. */
typedef struct CycleCheck {
        bool seen[CYCLES];
} CycleCheck;

static bool cycle_check_line(void *arg, const char *line, size_t len) {
        CycleCheck *c = arg;
        unsigned i;
        char want[64];
        if (sscanf(line, "cycle %u ", &i) != 1 || i >= CYCLES || c->seen[i])
                return false;
        const char *w = cycle_line(i, want, sizeof want);
        if (!w || len != strlen(w) || memcmp(line, w, len) != 0)
                return false;
        c->seen[i] = true;
        return true;
}

Test(abuse, ten_thousand_connect_close_cycles) {
        Daemon d;
        Baseline b;
        daemon_start(&d, NULL);
        baseline_take(&d, &b);

        /* One client stays and receives what the cycles leave. */
        int reader = client_connect(d.port);
        int pair[2] = {reader, client_connect(d.port)};
        clients_sync(pair, 2, false);
        close(pair[1]);
        static CycleCheck check;
        memset(&check, 0, sizeof check);
        SeqReader r;
        seq_reader_init_foreign(&r, reader, 16, false, 64, cycle_check_line, &check);

        uint64_t expected = 0;
        char line[64];
        for (unsigned i = 0; i < CYCLES; i++) {
                int fd = client_connect(d.port);
                const char *l = cycle_line(i, line, sizeof line);
                switch ((CycleKind)(i % N_CYCLE_KINDS)) {
                case CYCLE_CLOSE:
                        close(fd);
                        break;
                case CYCLE_RESET:
                        close_reset(fd);
                        break;
                case CYCLE_HALF_CLOSE:
                        cr_assert(shutdown(fd, SHUT_WR) == 0);
                        close(fd);
                        break;
                case CYCLE_PARTIAL_HALF_CLOSE:
                        /* Without its LF: the daemon appends it at EOF. */
                        client_send(fd, l, strlen(l) - 1);
                        cr_assert(shutdown(fd, SHUT_WR) == 0);
                        close(fd);
                        break;
                case CYCLE_LINE_CLOSE:
                        client_send_str(fd, l);
                        close(fd);
                        break;
                case N_CYCLE_KINDS:
                        break;
                }
                expected += l != NULL;
                if (i % 64 == 0)
                        while (seq_reader_poll(&r, 0) > 0)
                                ;
        }
        /* Lines from different connections have no order between them (a
         * partial line is received at its sender's EOF): each exactly once. */
        if (!seq_reader_wait_foreign(&r, expected, 10000)) {
                unsigned missing[N_CYCLE_KINDS] = {0}, first = CYCLES;
                for (unsigned i = 0; i < CYCLES; i++)
                        if (cycle_line(i, line, sizeof line) && !check.seen[i]) {
                                missing[i % N_CYCLE_KINDS]++;
                                first = first < i ? first : i;
                        }
                cr_assert_fail("lines lost: %u partial lines at a half close, %u lines before a close "
                               "(the first of cycle %u)",
                               missing[CYCLE_PARTIAL_HALF_CLOSE], missing[CYCLE_LINE_CLOSE], first);
        }
        cr_assert(r.received == 0 && client_recv_nothing(reader, 100), "more lines than the cycles sent");

        long long accepted = daemon_stat(&d, "accepted");
        cr_assert(accepted == b.accepted + CYCLES + 2, "accepted %lld connections, want %lld", accepted,
                  b.accepted + CYCLES + 2);
        seq_reader_free(&r);
        close(reader);
        expect_recovered(&d, &b, "10,000 connect/close cycles");
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* 5,000 concurrent clients                                                  */

Test(abuse, five_thousand_concurrent_clients) {
        enum { N = 5000 };
        /* The daemon holds N descriptors, and so does this process. */
        unsigned long limit = harness_raise_nofile();
        if (limit < N + 200)
                cr_skip_test("RLIMIT_NOFILE hard limit %lu is below %d", limit, N + 200);
        Daemon d;
        Baseline b;
        daemon_start(&d, NULL);
        baseline_take(&d, &b);

        int *fds = calloc(N, sizeof *fds);
        cr_assert(fds);
        clients_connect(d.port, fds, N);
        clients_sync(fds, N, false);
        cr_assert_eq(daemon_stat(&d, "clients"), N);
        client_send_str(fds[0], "to five thousand\n");
        clients_expect_line(fds + 1, N - 1, "to five thousand\n", 20000);
        cr_assert(client_recv_nothing(fds[0], 100), "the sender got its own message");
        clients_close(fds, N);
        free(fds);
        expect_recovered(&d, &b, "5,000 clients");
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* A client flooding random bytes                                            */

enum {
        FLOOD_MAX = 4096, /* max_message_bytes of the test */
        FLOOD_CONNS = 24, /* connections of the flooder, one after the other */
        FLOOD_MSG_LEN = 200,
        FLOOD_SEQ = 20000, /* well-formed messages relayed meanwhile */
};

typedef struct FloodConn {
        char *bytes; /* what the flooder sends on it */
        size_t len;
        bool cut; /* holds a line over FLOOD_MAX: the daemon cuts it off there */
} FloodConn;

/* A line the daemon must relay: bytes[off, off + len) of connection conn,
 * plus a LF when it is the last line, cut short by the flooder's EOF. */
typedef struct FloodLine {
        unsigned conn;
        size_t off, len;
        bool add_lf;
} FloodLine;

typedef struct Flood {
        FloodConn conn[FLOOD_CONNS];
        FloodLine *lines; /* in the order the daemon must relay them */
        size_t n_lines, cap;
        unsigned n_cut;
} Flood;

/* n random bytes with a LF one time in lf_one_in (never when 0); any other
 * byte value, NUL one time in 8. */
static void flood_random(FloodConn *c, uint64_t *rng, size_t n, unsigned lf_one_in) {
        for (size_t i = 0; i < n; i++) {
                uint64_t v = rng_next(rng);
                char ch = (char)(v & 0xff);
                if (lf_one_in && (v >> 8) % lf_one_in == 0)
                        ch = '\n';
                else if (ch == '\n' || (v >> 40) % 8 == 0)
                        ch = '\0';
                c->bytes[c->len++] = ch;
        }
}

/* A line of exactly len bytes, its LF included. */
static void flood_line_of(FloodConn *c, uint64_t *rng, size_t len) {
        flood_random(c, rng, len - 1, 0);
        c->bytes[c->len++] = '\n';
}

static void flood_expect(Flood *f, unsigned k, size_t off, size_t len, bool add_lf) {
        if (f->n_lines == f->cap) {
                f->cap = f->cap ? 2 * f->cap : 1024;
                f->lines = realloc(f->lines, f->cap * sizeof *f->lines);
                cr_assert(f->lines);
        }
        f->lines[f->n_lines++] = (FloodLine){.conn = k, .off = off, .len = len, .add_lf = add_lf};
}

/* What the daemon relays of connection k: its lines up to the first one
 * over the limit (a line without LF is over it as soon as its LF could not
 * fit), and a last partial line at EOF. */
static void flood_plan_conn(Flood *f, unsigned k) {
        FloodConn *c = &f->conn[k];
        size_t start = 0;
        for (size_t i = 0; i < c->len; i++) {
                if (c->bytes[i] != '\n')
                        continue;
                if (i + 1 - start > FLOOD_MAX) {
                        c->cut = true;
                        return;
                }
                flood_expect(f, k, start, i + 1 - start, false);
                start = i + 1;
        }
        size_t tail = c->len - start;
        if (tail + 1 > FLOOD_MAX)
                c->cut = true;
        else if (tail > 0)
                flood_expect(f, k, start, tail, true);
}

/* Six kinds of connections: short lines (NULs included) ending in a partial
 * line; long lines, some over the limit; no LF at all; lines of exactly the
 * limit then one byte over; a last partial line of exactly the limit with
 * the LF the daemon appends, or one byte over. Garbage follows a line over
 * the limit: the daemon must have stopped reading there. */
static void flood_plan(Flood *f, uint64_t seed) {
        memset(f, 0, sizeof *f);
        uint64_t rng = seed;
        for (unsigned k = 0; k < FLOOD_CONNS; k++) {
                FloodConn *c = &f->conn[k];
                c->bytes = malloc(200 * 1024);
                cr_assert(c->bytes);
                switch (k % 6) {
                case 0:
                        flood_random(c, &rng, rng_between(&rng, 16384, 65536), 40);
                        break;
                case 1:
                        flood_random(c, &rng, rng_between(&rng, 65536, 163840), 1500);
                        break;
                case 2:
                        flood_random(c, &rng, rng_between(&rng, 2 * FLOOD_MAX, 4 * FLOOD_MAX), 0);
                        break;
                case 3:
                        for (int i = 0; i < 3; i++)
                                flood_line_of(c, &rng, FLOOD_MAX);
                        flood_line_of(c, &rng, FLOOD_MAX + 1);
                        flood_random(c, &rng, 2048, 40);
                        break;
                case 4:
                case 5:
                        flood_random(c, &rng, rng_between(&rng, 4096, 8192), 40);
                        flood_line_of(c, &rng, 2);
                        flood_random(c, &rng, k % 6 == 4 ? FLOOD_MAX - 1 : FLOOD_MAX, 0);
                        break;
                }
                flood_plan_conn(f, k);
                f->n_cut += c->cut;
        }
}

static void flood_free(Flood *f) {
        for (unsigned k = 0; k < FLOOD_CONNS; k++)
                free(f->conn[k].bytes);
        free(f->lines);
}

/* Exit statuses of the flooder process. */
enum {
        FLOODER_OK,
        FLOODER_CONNECT = 10, /* could not connect */
        FLOODER_STUCK,        /* 20 s without the daemon taking the bytes or closing */
        FLOODER_CUT_WRONGLY,  /* a connection with no line over the limit was cut */
};

/* Waits ≤ 50 ms for fd; reads and discards what came; false once the
 * daemon closed the connection. */
static bool flooder_poll(int fd, short events) {
        struct pollfd p = {.fd = fd, .events = POLLIN | events};
        (void)poll(&p, 1, 50);
        char buf[65536];
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n > 0)
                        continue;
                return n < 0 && (errno == EAGAIN || errno == EINTR);
        }
}

/* The flooder, in a child process (no criterion calls): sends each
 * connection's bytes while reading what it is relayed (a flooder that does
 * not read would be cut off as a slow reader instead), half-closes a
 * connection the daemon has no reason to cut, and waits for the daemon's
 * close before the next one, so that the relayed lines keep an order. */
static int flooder_run(const Flood *f, uint16_t port) {
        for (unsigned k = 0; k < FLOOD_CONNS; k++) {
                const FloodConn *c = &f->conn[k];
                int fd = client_try_connect(port);
                if (fd < 0)
                        return FLOODER_CONNECT;
                int64_t deadline = harness_now_ms() + harness_ms(20000);
                size_t off = 0;
                bool open = true;
                while (open && off < c->len) {
                        if (harness_now_ms() > deadline)
                                return FLOODER_STUCK;
                        open = flooder_poll(fd, POLLOUT);
                        ssize_t n = send(fd, c->bytes + off, c->len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (n > 0)
                                off += (size_t)n;
                        else if (n < 0 && errno != EAGAIN && errno != EINTR)
                                open = false;
                }
                if (!open && !c->cut)
                        return FLOODER_CUT_WRONGLY;
                if (!c->cut)
                        shutdown(fd, SHUT_WR);
                while (open) {
                        if (harness_now_ms() > deadline)
                                return FLOODER_STUCK;
                        open = flooder_poll(fd, 0);
                }
                close(fd);
        }
        return FLOODER_OK;
}

/* A reader's place in the flood's lines. */
typedef struct FloodCheck {
        const Flood *f;
        size_t next;
} FloodCheck;

static bool flood_check_line(void *arg, const char *line, size_t len) {
        FloodCheck *c = arg;
        if (c->next >= c->f->n_lines)
                return false;
        const FloodLine *e = &c->f->lines[c->next];
        const char *want = c->f->conn[e->conn].bytes + e->off;
        if (len != e->len + e->add_lf || memcmp(line, want, e->len) != 0 || line[len - 1] != '\n')
                return false;
        c->next++;
        return true;
}

typedef struct FloodTick {
        pid_t child;
        int status;
        bool exited;
        SeqReader **readers;
        FloodCheck *checks;
        size_t n_readers;
} FloodTick;

/* Busy until the flooder has exited and every reader has its lines. */
static bool flood_tick(void *arg) {
        FloodTick *t = arg;
        if (!t->exited && waitpid(t->child, &t->status, WNOHANG) == t->child)
                t->exited = true;
        if (!t->exited)
                return true;
        if (!WIFEXITED(t->status) || WEXITSTATUS(t->status) != FLOODER_OK)
                return false;
        for (size_t i = 0; i < t->n_readers; i++)
                if (!t->readers[i]->error[0] && t->checks[i].next < t->checks[i].f->n_lines)
                        return true;
        return false;
}

Test(abuse, random_flood_does_not_disturb_the_others) {
        static Flood f;
        flood_plan(&f, 0x5eed0f100d);
        Daemon d;
        Baseline b;
        /* The pump's sender reads nothing: the flood waits in its queue. */
        daemon_start(&d, "max_message_bytes = 4096;\nmax_queue_bytes = 67108864;");
        baseline_take(&d, &b);

        int c[3];
        clients_connect(d.port, c, 3);
        clients_sync(c, 3, false);
        SeqReader r[2];
        FloodCheck checks[2];
        SeqReader *rs[2] = {&r[0], &r[1]};
        for (int i = 0; i < 2; i++) {
                checks[i] = (FloodCheck){.f = &f};
                seq_reader_init_foreign(&r[i], c[i], FLOOD_MSG_LEN, true, FLOOD_MAX, flood_check_line,
                                        &checks[i]);
        }

        fflush(NULL);
        pid_t child = fork();
        cr_assert(child >= 0);
        if (child == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that timed out takes it along */
                _exit(flooder_run(&f, d.port));
        }
        FloodTick t = {.child = child, .readers = rs, .checks = checks, .n_readers = 2};
        pump_seq_tick(c[2], rs, 2, FLOOD_SEQ, FLOOD_MSG_LEN, NULL, NULL, 60000, flood_tick, &t);
        if (!t.exited) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
        }
        cr_assert(t.exited && WIFEXITED(t.status) && WEXITSTATUS(t.status) == FLOODER_OK,
                  "flooder: status %d (10 connect failed, 11 stuck, 12 cut off without a line over the "
                  "limit)",
                  WIFEXITED(t.status) ? WEXITSTATUS(t.status) : -1);
        for (int i = 0; i < 2; i++) {
                seq_reader_expect_all(&r[i], FLOOD_SEQ, i ? "reader 1" : "reader 0");
                cr_assert(checks[i].next == f.n_lines, "reader %d got %zu of the flood's %zu lines", i,
                          checks[i].next, f.n_lines);
                seq_reader_free(&r[i]);
        }
        cr_log_info("flood: %zu lines relayed, %u connections cut off", f.n_lines, f.n_cut);
        cr_assert_eq(daemon_stat(&d, "oversize"), f.n_cut);
        clients_close(c, 3);
        expect_recovered(&d, &b, "the random flood");
        daemon_stop(&d);
        flood_free(&f);
}

/* ------------------------------------------------------------------------ */
/* Partial lines that stall                                                  */

enum {
        STALLERS = 1000,
        STALL_MAX = 16384,  /* max_message_bytes of the test */
        STALL_SAMPLE = 100, /* one staller in 100 half-closes, the others reset */
};

/* Staller i's line: STALL_MAX - 1 bytes, no LF, which the daemon must hold
 * (one byte more and it would be over the limit once its LF came). */
static void stall_line(char *buf, unsigned i) {
        int n = snprintf(buf, STALL_MAX, "stall %04u ", i);
        for (size_t j = (size_t)n; j < STALL_MAX - 1; j++)
                buf[j] = (char)('A' + (i + j) % 26);
        buf[STALL_MAX - 1] = '\n'; /* the LF the daemon appends at EOF */
}

Test(abuse, stalled_partial_lines_cost_what_the_config_says) {
        Daemon d;
        Baseline b;
        /* The watcher's queue holds every staller's line (16 MB): it is
         * not what this test is about. */
        daemon_start(&d, "max_message_bytes = 16384;\nmax_queue_bytes = 33554432;");
        baseline_take(&d, &b);
        long long bytes0 = daemon_stat(&d, "bytes");

        int watcher = client_connect(d.port);
        int *stall = calloc(STALLERS, sizeof *stall);
        char *line = malloc(STALL_MAX + 1);
        cr_assert(stall && line);
        clients_connect(d.port, stall, STALLERS);
        for (unsigned i = 0; i < STALLERS; i++) {
                stall_line(line, i);
                client_send(stall[i], line, STALL_MAX - 1);
        }
        /* Held once every byte has been read. */
        long long want = bytes0 + (long long)STALLERS * (STALL_MAX - 1);
        cr_assert_eq(daemon_wait_stat(&d, "bytes", want, 10000), want);

        /* docs/protocol.md: each client holds at most one unfinished message, less than
         * max_message_bytes; the daemon's own per-client state on top. */
        if (harness_rss_meaningful()) {
                long grown = daemon_rss_kib(&d) - b.rss_kib;
                long bound = (long)STALLERS * (STALL_MAX + 1024) / 1024 + RSS_SLACK_KIB;
                cr_log_info("%d stalled partial lines of %d bytes: RSS +%ld KiB (bound %ld KiB)", STALLERS,
                            STALL_MAX - 1, grown, bound);
                cr_assert(grown <= bound, "RSS grew by %ld KiB for %d partial lines of %d bytes (bound %ld)",
                          grown, STALLERS, STALL_MAX - 1, bound);
        }

        /* Meanwhile the others relay as usual, in strict order. */
        int c[2];
        clients_connect(d.port, c, 2);
        int all[3] = {watcher, c[0], c[1]};
        clients_sync(all, 3, false);
        SeqReader r[2];
        seq_reader_init(&r[0], c[0], 100, true);
        seq_reader_init(&r[1], watcher, 100, true);
        SeqReader *rs[2] = {&r[0], &r[1]};
        pump_seq(c[1], rs, 2, 500, 100, NULL, NULL, 30000);
        for (int i = 0; i < 2; i++) {
                seq_reader_expect_all(&r[i], 500, "reader");
                seq_reader_free(&r[i]);
        }
        clients_close(c, 2);

        /* Every STALL_SAMPLE-th staller ends its line by a half close: the
         * daemon relays it with the LF appended (exactly max_message_bytes)
         * to everyone, then closes. Not all of them: each line goes to
         * every staller still there, which reads nothing. */
        char *got = malloc(STALL_MAX + 2);
        cr_assert(got);
        for (unsigned i = 0; i < STALLERS; i += STALL_SAMPLE) {
                drain(stall[i]); /* a close with unread data would be a reset */
                cr_assert(shutdown(stall[i], SHUT_WR) == 0);
                stall_line(line, i);
                size_t n = client_recv_line(watcher, got, STALL_MAX + 2, 5000);
                cr_assert(n == STALL_MAX && memcmp(got, line, n) == 0,
                          "staller %u's line arrived as %zu bytes: %.20s", i, n, got);
                cr_assert(client_wait_closed(stall[i], 5000), "staller %u not closed after its EOF", i);
        }
        /* The others reset: docs/protocol.md promises their last lines too (the
         * bytes had arrived). The watcher reads while they go, so it is not
         * cut off for their 16 MB, and gets each exactly once. */
        bool *seen = calloc(STALLERS, sizeof *seen);
        cr_assert(seen);
        unsigned relayed = 0, want_relayed = 0;
        for (unsigned i = 0; i < STALLERS || relayed < want_relayed;) {
                if (i < STALLERS) {
                        if (i % STALL_SAMPLE) {
                                close_reset(stall[i]);
                                want_relayed++;
                        }
                        i++;
                }
                ssize_t n = client_try_recv_line(watcher, got, STALL_MAX + 2, i < STALLERS ? 0 : 5000);
                if (n <= 0) {
                        cr_assert(i < STALLERS, "%u of %u reset stallers' lines arrived", relayed,
                                  want_relayed);
                        continue;
                }
                unsigned k = STALLERS;
                sscanf(got, "stall %u ", &k);
                cr_assert(k < STALLERS && k % STALL_SAMPLE && !seen[k], "an unexpected line: %.20s", got);
                stall_line(line, k);
                cr_assert(n == STALL_MAX && memcmp(got, line, STALL_MAX) == 0, "a broken line: %.20s", got);
                seen[k] = true;
                relayed++;
        }
        free(seen);
        cr_assert_eq(daemon_wait_stat(&d, "clients", 1, 10000), 1);
        cr_assert(client_recv_nothing(watcher, 200), "more lines than the stallers sent");
        for (unsigned i = 0; i < STALLERS; i += STALL_SAMPLE)
                close(stall[i]);
        close(watcher);
        free(got);
        free(line);
        free(stall);
        expect_recovered(&d, &b, "1,000 stalled partial lines");
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* 100 SIGHUPs while messages flow                                           */

enum {
        STORM_BURSTS = 10,
        STORM_PER_BURST = 10,
        STORM_MSG_LEN = 100,
        STORM_PHASE_COUNT = 20000, /* messages pumped around each burst */
        STORM_BAD_BURST = 5,       /* its file is invalid: every reload of it fails */
};

typedef struct Storm {
        Daemon *d;
        const SeqReader *progress;
        unsigned burst;
        bool sent;
        int events; /* reloads (done or failed) logged before the burst */
        int64_t next_look;
} Storm;

static int storm_reload_events(Daemon *d) {
        return daemon_log_count(d, "reloaded configuration") + daemon_log_count(d, "reload failed");
}

/* Burst b's file: a different setting each time (a keepalive change walks
 * every client), one invalid file, and last a message limit that the test
 * can see at work afterwards. Some bursts reload an unchanged file. */
static void storm_write_conf(Storm *s) {
        unsigned b = s->burst;
        char extra[128];
        if (b == STORM_BAD_BURST)
                snprintf(extra, sizeof extra, "max_clients = 0;");
        else if (b == STORM_BURSTS - 1)
                snprintf(extra, sizeof extra, "max_message_bytes = 2000;");
        else if (b % 3 == 1)
                return;
        else if (b % 2)
                snprintf(extra, sizeof extra, "tcp_keepalive = %u;", 30 + b);
        else
                snprintf(extra, sizeof extra, "max_clients = %u;\nshutdown_timeout = %u;", 5000 + b, b);
        daemon_write_settings(s->d, extra);
}

/* A new client sends one message of size bytes (LF included): true when
 * the daemon cuts it off for it. */
static bool oversize_cuts_sender(uint16_t port, size_t size) {
        int c = client_connect(port);
        char *msg = malloc(size);
        cr_assert(msg);
        memset(msg, 'x', size);
        msg[size - 1] = '\n';
        client_try_send(c, msg, size, 2000);
        bool cut = client_wait_closed(c, 5000);
        free(msg);
        close(c);
        return cut;
}

/* One burst of SIGHUPs in the middle of a pump: sent when the readers are
 * half way through; done once the daemon has logged a reload for it. */
static bool storm_tick(void *arg) {
        Storm *s = arg;
        if (!s->sent) {
                if (s->progress->received < STORM_PHASE_COUNT / 2)
                        return true;
                s->events = storm_reload_events(s->d);
                storm_write_conf(s);
                for (int i = 0; i < STORM_PER_BURST; i++)
                        daemon_signal(s->d, SIGHUP);
                s->sent = true;
                return true;
        }
        if (harness_now_ms() < s->next_look)
                return true;
        s->next_look = harness_now_ms() + 2;
        return storm_reload_events(s->d) <= s->events;
}

Test(abuse, sighup_storm_loses_nothing) {
        Daemon d;
        Baseline b;
        daemon_start(&d, NULL);
        baseline_take(&d, &b);
        int c[3];
        clients_connect(d.port, c, 3);
        clients_sync(c, 3, false);
        /* A fresh numbering per burst: the previous pump left nothing. */
        for (unsigned burst = 0; burst < STORM_BURSTS; burst++) {
                SeqReader r[2];
                seq_reader_init(&r[0], c[0], STORM_MSG_LEN, true);
                seq_reader_init(&r[1], c[1], STORM_MSG_LEN, true);
                SeqReader *rs[2] = {&r[0], &r[1]};
                Storm s = {.d = &d, .progress = &r[0], .burst = burst};
                pump_seq_tick(c[2], rs, 2, STORM_PHASE_COUNT, STORM_MSG_LEN, NULL, NULL, 60000, storm_tick,
                              &s);
                seq_reader_expect_all(&r[0], STORM_PHASE_COUNT, "reader 0");
                seq_reader_expect_all(&r[1], STORM_PHASE_COUNT, "reader 1");
                seq_reader_free(&r[0]);
                seq_reader_free(&r[1]);
        }
        int done = daemon_log_count(&d, "reloaded configuration");
        int failed = daemon_log_count(&d, "reload failed");
        cr_log_info("%d SIGHUPs: %d reloads, %d failed", STORM_BURSTS * STORM_PER_BURST, done, failed);
        /* Signals sent before the daemon reads them merge: each burst is
         * one reload or more. */
        cr_assert(done >= STORM_BURSTS - 1 && done + failed <= STORM_BURSTS * STORM_PER_BURST,
                  "%d reloads and %d failures for %d bursts", done, failed, STORM_BURSTS);
        cr_assert(failed >= 1, "the invalid file was not reported");
        clients_close(c, 3);

        /* The last file's limit is the one in force. */
        cr_assert(oversize_cuts_sender(d.port, 3000),
                  "a 3000-byte message passed the last file's limit of 2000");
        cr_assert(daemon_log_contains(&d, "max_message_bytes (2000)", 2000));
        expect_recovered(&d, &b, "the SIGHUP storm");
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* SIGTERM under full load                                                   */

enum {
        LOAD_SENDERS = 4,
        LOAD_READERS = 8, /* the last one reads slowly */
        LOAD_MSG_LEN = 128,
        LOAD_SHUTDOWN_S = 10,
        LOAD_SENDER_BASE = 10000000, /* message number = sender * BASE + index */
};

/* Waits until the daemon is in the stopped state ('T' in /proc/PID/stat):
 * kill(SIGSTOP) returns before the process has stopped. */
static void wait_stopped(Daemon *d) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)d->pid);
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        for (;;) {
                FILE *f = fopen(path, "r");
                cr_assert(f, "%s: %s", path, strerror(errno));
                char state = '?';
                cr_assert(fscanf(f, "%*d (%*[^)]) %c", &state) == 1);
                fclose(f);
                if (state == 'T')
                        return;
                cr_assert(harness_now_ms() < deadline, "the daemon did not stop on SIGSTOP (state %c)",
                          state);
                harness_sleep_ms(1);
        }
}

/* A reader of all senders' messages: per sender, numbers must be 0, 1, 2...
 * (whole messages, none lost or repeated); the order across senders is
 * summed up in a hash that must be the same for every reader (one global
 * order). */
typedef struct LoadReader {
        int fd;
        char buf[LOAD_MSG_LEN];
        size_t buf_len;
        uint64_t next[LOAD_SENDERS];
        uint64_t order_hash;
        uint64_t total;
        bool eof;
        char error[160];
} LoadReader;

static void load_reader_line(LoadReader *r) {
        long n = seq_msg_parse(r->buf, r->buf_len, LOAD_MSG_LEN);
        long s = n / LOAD_SENDER_BASE, i = n % LOAD_SENDER_BASE;
        if (n < 0 || s >= LOAD_SENDERS)
                snprintf(r->error, sizeof r->error, "malformed message after %llu",
                         (unsigned long long)r->total);
        else if ((uint64_t)i != r->next[s])
                snprintf(r->error, sizeof r->error, "sender %ld: message %ld after %llu", s, i,
                         (unsigned long long)r->next[s]);
        else {
                r->next[s]++;
                r->total++;
                r->order_hash = (r->order_hash ^ (uint64_t)n) * 0x100000001b3ULL;
        }
}

/* Reads at most max bytes; records EOF (a reset is an error: the daemon
 * promises a FIN after everything). */
static void load_reader_poll(LoadReader *r, size_t max) {
        char chunk[65536];
        if (max > sizeof chunk)
                max = sizeof chunk;
        ssize_t n = recv(r->fd, chunk, max, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                r->eof = true;
                if (n < 0)
                        snprintf(r->error, sizeof r->error, "%s instead of EOF", strerror(errno));
                else if (r->buf_len)
                        snprintf(r->error, sizeof r->error, "EOF inside a message");
                return;
        }
        for (ssize_t k = 0; k < n && !r->error[0]; k++) {
                r->buf[r->buf_len++] = chunk[k];
                if (chunk[k] == '\n' || r->buf_len == LOAD_MSG_LEN) {
                        load_reader_line(r);
                        r->buf_len = 0;
                }
        }
}

typedef struct LoadSender {
        int fd;
        uint32_t next;
        char batch[64 * LOAD_MSG_LEN];
        size_t off, len;
        bool closed;
} LoadSender;

/* One nonblocking send of the current batch; a new batch when it is out.
 * Senders read too (the others' messages) so that they are not slow
 * readers, and close once the daemon has. */
static void load_sender_step(LoadSender *s, unsigned id) {
        if (s->closed)
                return;
        char buf[65536];
        ssize_t r;
        while ((r = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
                ;
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                close(s->fd);
                s->closed = true;
                return;
        }
        if (s->off == s->len) {
                s->off = s->len = 0;
                for (int k = 0; k < 64; k++, s->next++, s->len += LOAD_MSG_LEN)
                        seq_msg_format(s->batch + s->len, LOAD_MSG_LEN, id * LOAD_SENDER_BASE + s->next);
        }
        ssize_t n = send(s->fd, s->batch + s->off, s->len - s->off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
                s->off += (size_t)n;
}

Test(abuse, sigterm_under_full_load_delivers_what_was_accepted) {
        Daemon d;
        char extra[128];
        snprintf(extra, sizeof extra, "shutdown_timeout = %d;\nmax_queue_bytes = 268435456;",
                 LOAD_SHUTDOWN_S);
        daemon_start(&d, extra);
        int fds[LOAD_READERS + LOAD_SENDERS];
        clients_connect(d.port, fds, LOAD_READERS + LOAD_SENDERS);
        clients_sync(fds, LOAD_READERS + LOAD_SENDERS, false);
        static LoadReader rd[LOAD_READERS];
        static LoadSender sd[LOAD_SENDERS];
        memset(rd, 0, sizeof rd);
        memset(sd, 0, sizeof sd);
        for (int i = 0; i < LOAD_READERS; i++)
                rd[i].fd = fds[i];
        for (int i = 0; i < LOAD_SENDERS; i++)
                sd[i].fd = fds[LOAD_READERS + i];

        long long messages0 = daemon_stat(&d, "messages");
        int64_t start = harness_now_ms(), signalled = 0;
        int64_t deadline = start + harness_ms(60000);
        struct pollfd pf[LOAD_READERS];
        for (;;) {
                cr_assert(harness_now_ms() < deadline, "the readers got no EOF within 60 s");
                bool all_eof = true;
                for (int i = 0; i < LOAD_READERS; i++) {
                        pf[i] = (struct pollfd){.fd = rd[i].eof ? -1 : rd[i].fd, .events = POLLIN};
                        all_eof &= rd[i].eof;
                }
                if (all_eof)
                        break;
                poll(pf, LOAD_READERS, 1);
                for (int i = 0; i < LOAD_READERS; i++)
                        if (!rd[i].eof)
                                load_reader_poll(&rd[i], i == LOAD_READERS - 1 ? 16384 : SIZE_MAX);
                for (unsigned i = 0; i < LOAD_SENDERS; i++)
                        load_sender_step(&sd[i], i);
                /* Stop in the middle of the flow, once it is well under way.
                 * SIGUSR1 and SIGTERM reach the stopped daemon together and
                 * are read in the order of their numbers: the statistics
                 * count exactly the messages read before the stop. */
                if (!signalled && harness_now_ms() - start >= 500 && rd[0].total >= 20000) {
                        daemon_signal(&d, SIGSTOP);
                        wait_stopped(&d);
                        daemon_signal(&d, SIGUSR1);
                        daemon_signal(&d, SIGTERM);
                        daemon_signal(&d, SIGCONT);
                        signalled = harness_now_ms();
                }
        }
        int st = daemon_wait(&d, (LOAD_SHUTDOWN_S + 2) * 1000);
        cr_assert(st == 0, "exit status %d after SIGTERM (want 0 within shutdown_timeout)", st);
        cr_assert(harness_now_ms() - signalled <= harness_ms((LOAD_SHUTDOWN_S + 2) * 1000),
                  "the graceful stop took %lld ms", (long long)(harness_now_ms() - signalled));
        /* Every reader kept reading: all of it went out before the timeout. */
        cr_assert(!daemon_log_contains(&d, "shutdown_timeout reached", 0),
                  "the drain needed the whole shutdown_timeout although every reader kept reading");
        long long accepted = daemon_stat_logged(&d, "messages") - messages0;
        for (int i = 0; i < LOAD_READERS; i++) {
                cr_assert(rd[i].error[0] == '\0', "reader %d: %s", i, rd[i].error);
                /* What the daemon accepted went to everyone: same messages,
                 * same order; contiguous per sender (checked while reading). */
                for (int s = 0; s < LOAD_SENDERS; s++) {
                        cr_assert(rd[i].next[s] > 0, "reader %d got nothing from sender %d", i, s);
                        cr_assert(rd[i].next[s] == rd[0].next[s],
                                  "reader %d got %llu messages of sender %d, reader 0 %llu", i,
                                  (unsigned long long)rd[i].next[s], s, (unsigned long long)rd[0].next[s]);
                }
                cr_assert(rd[i].order_hash == rd[0].order_hash, "reader %d saw another order", i);
                cr_assert(rd[i].total == (uint64_t)accepted,
                          "reader %d got %llu messages, the daemon had read %lld before the stop", i,
                          (unsigned long long)rd[i].total, accepted);
                close(rd[i].fd);
        }
        cr_log_info("graceful stop under load: %llu messages delivered to each reader, stop took %lld ms",
                    (unsigned long long)rd[0].total, (long long)(harness_now_ms() - signalled));
        for (int i = 0; i < LOAD_SENDERS; i++)
                if (!sd[i].closed)
                        close(sd[i].fd);
        daemon_stop(&d);
}

/* The same promise without the luck of timing: a message in the daemon's
 * socket when SIGTERM comes, both seen in one round (the daemon is stopped
 * meanwhile, so one epoll_wait() returns the two, the message first), with
 * every reader caught up. Read before the signal: delivered, then EOF. */
Test(abuse, sigterm_right_after_a_message_still_delivers_it) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "shutdown_timeout = 10;", c, 3, false);
        daemon_signal(&d, SIGSTOP);
        wait_stopped(&d);
        client_send_str(c[2], "last words\n");
        /* In the daemon's socket: its kernel acknowledged every byte (a
         * stopped process's kernel still does), rather than a sleep that a
         * busy machine could outlast. */
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        for (;;) {
                int unacked;
                cr_assert(ioctl(c[2], SIOCOUTQ, &unacked) == 0, "SIOCOUTQ: %s", strerror(errno));
                if (unacked == 0)
                        break;
                cr_assert(harness_now_ms() < deadline, "%d bytes of the message unacknowledged after 5 s",
                          unacked);
                harness_sleep_ms(1);
        }
        daemon_signal(&d, SIGTERM);
        daemon_signal(&d, SIGCONT);
        for (int i = 0; i < 2; i++) {
                char line[64];
                ssize_t n = client_try_recv_line(c[i], line, sizeof line, 5000);
                cr_assert(n > 0, "reader %d: %s instead of the message read before SIGTERM", i,
                          n < 0 ? "EOF" : "nothing");
                cr_assert_str_eq(line, "last words\n");
                cr_assert(client_wait_closed(c[i], 5000), "reader %d: no EOF after the message", i);
        }
        cr_assert_eq(daemon_wait(&d, 12000), 0);
        clients_close(c, 3);
        daemon_stop(&d);
}

/* SIGTERM and SIGINT read in one round: the second stops at once, but the
 * stop is still announced and the listener closed (exit 0). */
Test(abuse, two_stop_signals_in_one_round_stop_at_once) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, "shutdown_timeout = 30;", c, 2, false);
        daemon_signal(&d, SIGSTOP);
        wait_stopped(&d);
        daemon_signal(&d, SIGTERM);
        daemon_signal(&d, SIGINT);
        daemon_signal(&d, SIGCONT);
        cr_assert_eq(daemon_wait(&d, 10000), 0, "not stopped at once with clients still connected");
        cr_assert(daemon_log_contains(&d, "stopping; sending what is queued", 0), "the stop was not begun");
        cr_assert(daemon_log_contains(&d, "again: stopping now", 0), "the second signal was not taken");
        clients_close(c, 2);
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* Out of file descriptors                                                   */

Test(abuse, out_of_descriptors_refuses_then_recovers) {
        enum { NOFILE = 64, CONNS = 150 };
        Daemon d;
        Baseline b;
        /* Soft and hard: the daemon raises its soft limit to the hard one. */
        const DaemonOpts o = {.nofile = NOFILE};
        daemon_start_opts(&d, NULL, &o);
        cr_assert(daemon_log_contains(&d, "file descriptors are allowed", 2000),
                  "no warning that max_clients does not fit in %d descriptors", NOFILE);
        baseline_take(&d, &b);

        int fds[CONNS];
        for (int i = 0; i < CONNS; i++) {
                fds[i] = client_try_connect(d.port);
                cr_assert(fds[i] >= 0, "connection %d not even queued by the kernel: %s", i,
                          strerror(errno));
        }
        /* Every connection ends up served or closed (refused: accepted on
         * the reserve descriptor and closed at once); which ones does not
         * matter. */
        bool closed[CONNS] = {0};
        int n_closed = 0;
        long long clients = 0;
        int64_t deadline = harness_now_ms() + harness_ms(10000);
        for (;;) {
                for (int i = 0; i < CONNS; i++)
                        if (!closed[i] && client_wait_closed(fds[i], 0)) {
                                closed[i] = true;
                                n_closed++;
                        }
                clients = daemon_stat(&d, "clients");
                if (clients + n_closed >= CONNS)
                        break;
                cr_assert(harness_now_ms() < deadline, "%lld served and %d closed of %d connections",
                          clients, n_closed, CONNS);
                harness_sleep_ms(50);
        }
        long long rejected = daemon_stat(&d, "rejected");
        cr_log_info("%d descriptors: %lld clients served, %lld refused", NOFILE, clients, rejected);
        cr_assert(clients + n_closed == CONNS && clients > 0 && rejected > 5,
                  "%lld served, %d closed, %lld refused of %d connections", clients, n_closed, rejected,
                  CONNS);
        /* Valgrind keeps the top descriptors for itself and closes what
         * accept() returns there, unknown to the daemon: only then may more
         * connections be closed than the daemon refused. */
        cr_assert(harness_wrapped() ? rejected <= n_closed : rejected == n_closed,
                  "%lld refused but %d closed", rejected, n_closed);
        int served[CONNS], n_served = 0;
        for (int i = 0; i < CONNS; i++) {
                if (closed[i])
                        close(fds[i]);
                else
                        served[n_served++] = fds[i];
        }
        cr_assert_eq(n_served, clients);

        /* Rate-limited: at most 5 lines per 10 s, then one line with the
         * number suppressed (printed once the 10 s are over). */
        int lines = daemon_log_count(&d, "out of file descriptors");
        cr_assert(lines >= 1 && lines <= 5, "%d warnings for %lld refusals", lines, rejected);
        cr_assert(daemon_log_contains(&d, "similar warnings suppressed", 12000),
                  "no line with the number of suppressed warnings");
        char *log = daemon_log_text(&d);
        const char *num = strstr(log, " similar warnings suppressed");
        while (num > log && num[-1] >= '0' && num[-1] <= '9')
                num--;
        long suppressed = strtol(num, NULL, 10);
        free(log);
        cr_assert(lines + suppressed == rejected, "%d warnings + %ld suppressed for %lld refusals", lines,
                  suppressed, rejected);

        /* Those served all along were never disturbed. */
        clients_sync(served, (size_t)n_served, false);
        /* Descriptors free again (once the daemon has seen the closes):
         * the listener serves new clients. */
        clients_close(served, 10);
        cr_assert_eq(daemon_wait_stat(&d, "clients", n_served - 10, 5000), n_served - 10);
        daemon_check_relays(&d);
        clients_close(served + 10, (size_t)n_served - 10);
        expect_recovered(&d, &b, "running out of descriptors");
        daemon_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* Configuration files that are not                                          */

/* 10 MB of random bytes, or len bytes of random printable text (so that it
 * reaches the parser: no NUL), or random bytes with NULs. */
static char *garbage(size_t len, bool printable, uint64_t seed) {
        char *g = malloc(len);
        cr_assert(g);
        uint64_t rng = seed;
        for (size_t i = 0; i < len; i++) {
                uint64_t v = rng_next(&rng);
                g[i] = printable ? (char)(v % 64 == 0 ? '\n' : ' ' + v % 95) : (char)v;
        }
        return g;
}

/* Root opens any file whatever its mode, so an honest "unreadable" needs a
 * daemon that is not root: as root, d is made to run as nobody, from the
 * harness's copy of the binary in d's directory (the build tree may be where
 * nobody cannot reach it: a clone in a private home). A test run as
 * non-root needs nothing. Skips the test when nobody cannot run even the
 * copy. */
static void run_unprivileged(Daemon *d) {
        if (geteuid() != 0)
                return;
        d->opts.uid = 65534;
        d->opts.gid = 65534;
        char why[512];
        if (!daemon_program_runs(d, why, sizeof why))
                cr_skip_test("an unreadable file needs a daemon that is not root, and %s", why);
}

/* The running daemon's real, effective, saved and file-system user IDs are
 * all uid (from /proc). */
static void expect_runs_as(Daemon *d, uid_t uid) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
        FILE *f = fopen(path, "r");
        cr_assert(f, "%s: %s", path, strerror(errno));
        unsigned ids[4] = {0};
        int n = 0;
        while (fgets(line, sizeof line, f))
                if ((n = sscanf(line, "Uid: %u %u %u %u", &ids[0], &ids[1], &ids[2], &ids[3])) == 4)
                        break;
        fclose(f);
        cr_assert_eq(n, 4, "no Uid line in %s", path);
        for (int i = 0; i < 4; i++)
                cr_assert_eq(ids[i], (unsigned)uid, "the daemon runs with user IDs %u %u %u %u, not %u",
                             ids[0], ids[1], ids[2], ids[3], (unsigned)uid);
}

/* The bad files, made at dir/eb.conf, what the error must say, and whether
 * it needs an unprivileged daemon. */
typedef enum BadConf {
        BAD_DIRECTORY,
        BAD_UNREADABLE,
        BAD_NOT_A_DIRECTORY, /* the path goes through a regular file */
        BAD_FIFO,
        BAD_HUGE_GARBAGE,
        BAD_TEXT_GARBAGE,
        BAD_BINARY_GARBAGE,
        N_BAD_CONF,
} BadConf;

static const char *const bad_conf_error[N_BAD_CONF] = {
        [BAD_DIRECTORY] = "Is a directory",
        [BAD_UNREADABLE] = "Permission denied",
        [BAD_NOT_A_DIRECTORY] = "Not a directory",
        [BAD_FIFO] = "not a regular file",
        [BAD_HUGE_GARBAGE] = "larger than 1048576 bytes",
        [BAD_TEXT_GARBAGE] = "syntax error",
        [BAD_BINARY_GARBAGE] = "contains a NUL byte",
};

/* d->conf_path becomes dir/sub/eb.conf (so that sub can become a file),
 * with valid settings in it. */
static void conf_in_subdir(Daemon *d, const char *extra_settings) {
        char sub[sizeof d->dir + 4];
        snprintf(sub, sizeof sub, "%s/sub", d->dir);
        cr_assert(mkdir(sub, 0755) == 0);
        snprintf(d->conf_path, sizeof d->conf_path, "%s/sub/eb.conf", d->dir);
        daemon_write_settings(d, extra_settings);
}

static void conf_subdir(const Daemon *d, char *buf, size_t size) {
        snprintf(buf, size, "%.*s", (int)(strrchr(d->conf_path, '/') - d->conf_path), d->conf_path);
}

static void write_garbage(Daemon *d, size_t len, bool printable, uint64_t seed) {
        char *g = garbage(len, printable, seed);
        daemon_write_conf_bytes(d, g, len);
        free(g);
}

/* Replaces the valid file at d->conf_path by the bad one of kind k. */
static void make_bad_conf(Daemon *d, BadConf k) {
        char sub[160];
        conf_subdir(d, sub, sizeof sub);
        switch (k) {
        case BAD_DIRECTORY:
                cr_assert(unlink(d->conf_path) == 0 && mkdir(d->conf_path, 0755) == 0);
                break;
        case BAD_UNREADABLE:
                cr_assert(chmod(d->conf_path, 0) == 0);
                break;
        case BAD_NOT_A_DIRECTORY: {
                cr_assert(unlink(d->conf_path) == 0 && rmdir(sub) == 0);
                int fd = open(sub, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                cr_assert(fd >= 0, "%s: %s", sub, strerror(errno));
                close(fd);
                break;
        }
        case BAD_FIFO:
                cr_assert(unlink(d->conf_path) == 0 && mkfifo(d->conf_path, 0644) == 0);
                break;
        case BAD_HUGE_GARBAGE:
                write_garbage(d, 10 * 1000 * 1000, false, 0xbad1);
                break;
        case BAD_TEXT_GARBAGE:
                write_garbage(d, 512 * 1024, true, 0xbad2);
                break;
        case BAD_BINARY_GARBAGE:
                write_garbage(d, 512 * 1024, false, 0xbad3);
                break;
        case N_BAD_CONF:
                break;
        }
}

/* Undoes make_bad_conf: valid settings at d->conf_path again. */
static void restore_conf(Daemon *d, BadConf k, const char *extra_settings) {
        char sub[160];
        conf_subdir(d, sub, sizeof sub);
        if (k == BAD_DIRECTORY)
                cr_assert(rmdir(d->conf_path) == 0);
        if (k == BAD_NOT_A_DIRECTORY)
                cr_assert(unlink(sub) == 0 && mkdir(sub, 0755) == 0);
        daemon_write_settings(d, extra_settings); /* a rename: a new inode, mode 0644 */
}

/* Starts (or tries to) the daemon with -c d->conf_path. */
static void exec_with_conf_path(Daemon *d) {
        char *argv[] = {(char *)"-c", d->conf_path, NULL};
        daemon_exec(d, NULL, argv);
}

/* Starts the daemon with the bad file of kind k (as nobody for an
 * unreadable one, or skips). epoll-broadcaster(8): a configuration error is exit 78 with
 * one error line naming the file; the daemon never got to listen. */
static void expect_bad_conf_at_start(BadConf k) {
        Daemon d;
        daemon_init(&d);
        if (k == BAD_UNREADABLE)
                run_unprivileged(&d);
        conf_in_subdir(&d, NULL);
        make_bad_conf(&d, k);
        exec_with_conf_path(&d);
        int st = daemon_wait(&d, 10000);
        char *log = daemon_log_text(&d);
        cr_assert(st == 78, "%s: exit status %d (want 78); log:\n%s", bad_conf_error[k], st, log);
        const char *needles[] = {"error: ", d.conf_path, bad_conf_error[k], NULL};
        cr_assert(daemon_log_line_has(&d, needles, 0), "no error line with %s and \"%s\"; log:\n%s",
                  d.conf_path, bad_conf_error[k], log);
        free(log);
        daemon_stop(&d);
}

Test(abuse, bad_config_file_at_start_exits_78) {
        for (BadConf k = 0; k < N_BAD_CONF; k++)
                if (k != BAD_UNREADABLE) /* its own test: it may have to skip */
                        expect_bad_conf_at_start(k);
}

Test(abuse, unreadable_config_file_at_start_exits_78) {
        expect_bad_conf_at_start(BAD_UNREADABLE);
}

/* An empty file is valid: every default. */
Test(abuse, empty_config_file_means_defaults) {
        Daemon d;
        daemon_init(&d);
        char *check[] = {(char *)"--check-config", NULL};
        daemon_exec(&d, "", check);
        cr_assert_eq(daemon_wait(&d, 10000), 0);
        cr_assert(daemon_out_contains(&d, "max_message_bytes = 65536"),
                  "--check-config did not print the defaults");
        daemon_stop(&d);
}

/* The default 'listen' of an empty file: loopback port 7878 (so this needs
 * that port free). */
Test(abuse, empty_config_file_listens_on_default_port) {
        if (!harness_port_free(7878))
                cr_skip_test("port 7878 is in use: the daemon cannot be started with the empty file");
        Daemon d;
        daemon_init(&d);
        d.port = 7878;
        daemon_exec(&d, "", NULL);
        daemon_wait_tcp_listening(&d, 7878, 5000);
        cr_assert(daemon_log_contains(&d, "listening on 127.0.0.1:7878", 5000));
        daemon_check_relays(&d);
        daemon_stop(&d);
}

#define RELOAD_SETTINGS "max_message_bytes = 3000;"

/* The running settings are RELOAD_SETTINGS: a 4000-byte message cuts its
 * sender off (the defaults would relay it). */
static void expect_limit_3000(Daemon *d) {
        long long before = daemon_stat(d, "oversize");
        cr_assert(oversize_cuts_sender(d->port, 4000),
                  "a 4000-byte message passed: the running settings were lost");
        /* The warning is rate-limited; the figure is not. */
        cr_assert_eq(daemon_wait_stat(d, "oversize", before + 1, 5000), before + 1);
}

/* Makes the file bad (kind k) and reloads: epoll-broadcaster(8) SIGHUP, an invalid file
 * is reported and the running settings are kept; the daemon goes on
 * relaying. Then valid settings again in the file. */
static void expect_reload_refused(Daemon *d, BadConf k) {
        make_bad_conf(d, k);
        daemon_signal(d, SIGHUP);
        const char *needles[] = {"error: ", "reload failed", bad_conf_error[k], NULL};
        cr_assert(daemon_log_line_has(d, needles, 5000), "no reload error with \"%s\"", bad_conf_error[k]);
        expect_limit_3000(d);
        daemon_check_relays(d);
        restore_conf(d, k, RELOAD_SETTINGS);
}

/* Every bad kind but the unreadable file (its own test: it may have to
 * skip). An empty file is valid: defaults (and a 'listen' that needs a
 * restart). */
Test(abuse, bad_config_file_on_reload_keeps_running_settings) {
        Daemon d;
        Baseline b;
        daemon_init(&d);
        conf_in_subdir(&d, RELOAD_SETTINGS);
        exec_with_conf_path(&d);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        baseline_take(&d, &b);

        for (BadConf k = 0; k < N_BAD_CONF; k++)
                if (k != BAD_UNREADABLE)
                        expect_reload_refused(&d, k);

        daemon_write_conf(&d, "");
        daemon_signal(&d, SIGHUP);
        cr_assert(daemon_log_contains(&d, "reloaded configuration", 5000), "an empty file was refused");
        cr_assert(daemon_log_contains(&d, "restart the service to apply it", 0),
                  "no warning that the default 'listen' needs a restart");
        int c[2];
        clients_connect(d.port, c, 2);
        clients_sync(c, 2, false);
        char msg[4000];
        memset(msg, 'z', sizeof msg);
        msg[sizeof msg - 1] = '\n';
        client_send(c[0], msg, sizeof msg);
        char got[4001];
        cr_assert_eq(client_recv_line(c[1], got, sizeof got, 5000), sizeof msg);
        clients_close(c, 2);
        expect_recovered(&d, &b, "bad configuration files");
        daemon_stop(&d);
}

/* The daemon runs as nobody (or skips): a file it cannot read is refused on
 * reload; restored, it is read again. */
Test(abuse, unreadable_config_file_on_reload_keeps_running_settings) {
        Daemon d;
        Baseline b;
        daemon_init(&d);
        run_unprivileged(&d);
        conf_in_subdir(&d, RELOAD_SETTINGS);
        exec_with_conf_path(&d);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        expect_runs_as(&d, d.opts.uid ? d.opts.uid : geteuid());
        baseline_take(&d, &b);

        expect_reload_refused(&d, BAD_UNREADABLE);

        int before = daemon_log_count(&d, "reloaded configuration");
        daemon_signal(&d, SIGHUP);
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        while (daemon_log_count(&d, "reloaded configuration") == before) {
                cr_assert(harness_now_ms() < deadline, "the restored file was not reloaded within 5 s");
                harness_sleep_ms(20);
        }
        expect_limit_3000(&d);
        expect_recovered(&d, &b, "an unreadable configuration file");
        daemon_stop(&d);
}
