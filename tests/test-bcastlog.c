/* Unit tests for bcastlog.c, the shared broadcast log: what a reader gets
 * through fill/advance, however its writes are cut, must be exactly the
 * messages of everyone else (or everyone, with echo) in the global order;
 * drops skip whole messages only; memory follows the slowest cursor. The
 * last test drives random operations against a plain reference model. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "bcastlog.h"

#define BLK ((size_t)BCASTLOG_BLOCK_SIZE)

/* --- helpers ---------------------------------------------------------------- */

/* xorshift64*: fixed seeds, the same run every time. */
static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
}
/* Uniform in [lo, hi]. */
static size_t rnd_range(size_t lo, size_t hi) {
        return lo + (size_t)(rnd() % (hi - lo + 1));
}

typedef struct Buf {
        char *p;
        size_t len, cap;
} Buf;

static void buf_put(Buf *b, const void *p, size_t n) {
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n)
                        cap *= 2;
                b->p = realloc(b->p, cap);
                cr_assert_not_null(b->p);
                b->cap = cap;
        }
        if (n)
                memcpy(b->p + b->len, p, n);
        b->len += n;
}

static void buf_free(Buf *b) {
        free(b->p);
        *b = (Buf){0};
}

/* The drop of slow_client = "drop" as the server calls it: own bytes ahead
 * of the cursor do not count towards the limit. Returns the messages
 * skipped. */
static int drop(BcastLog *log, LogCursor *c, uint64_t skip, uint64_t limit, char **ret_rest,
                size_t *ret_rest_len) {
        uint64_t own = skip == BCASTLOG_NO_SENDER ? 0 : bcastlog_skip_ahead(log, c, skip);
        LogDrop d;
        cr_assert_eq(bcastlog_cursor_drop(log, c, skip, own, limit, &d), 0);
        cr_assert_leq(d.skipped, own, "stepped over %llu own bytes of %llu", (unsigned long long)d.skipped,
                      (unsigned long long)own);
        cr_assert_eq(bcastlog_skip_ahead(log, c, skip), own - d.skipped, "own bytes ahead miscounted");
        *ret_rest = d.rest;
        *ret_rest_len = d.rest_len;
        return (int)d.messages;
}

/* A message of len bytes: random bytes, NUL and CR included, never LF,
 * then a LF. */
static char *make_msg(size_t len) {
        cr_assert_gt(len, 0);
        char *p = malloc(len);
        cr_assert_not_null(p);
        for (size_t i = 0; i + 1 < len; i++) {
                char c = (char)rnd();
                p[i] = c == '\n' ? '\0' : c;
        }
        p[len - 1] = '\n';
        return p;
}

static void append(BcastLog *log, uint64_t sender, const void *p, size_t n) {
        struct iovec iov = {.iov_base = (void *)(uintptr_t)p, .iov_len = n};
        cr_assert_eq(bcastlog_append(log, sender, &iov, 1), 0);
}

static void expect_same(const Buf *got, const Buf *want, const char *what) {
        size_t n = got->len < want->len ? got->len : want->len, i = 0;
        while (i < n && got->p[i] == want->p[i])
                i++;
        cr_assert(i == n && got->len == want->len,
                  "%s: streams differ at byte %zu (got %zu bytes, expected %zu)", what, i, got->len,
                  want->len);
}

/* Checks what bcastlog_fill() documents about its result. */
static void check_fill(const struct iovec *iov, size_t n, size_t bytes, size_t max_iov, size_t max_bytes) {
        cr_assert_leq(n, max_iov, "fill gave %zu entries, max_iov %zu", n, max_iov);
        cr_assert_leq(bytes, max_bytes, "fill gave %zu bytes, max_bytes %zu", bytes, max_bytes);
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
                cr_assert_gt(iov[i].iov_len, 0, "empty iovec entry %zu", i);
                if (i > 0)
                        cr_assert_neq((char *)iov[i - 1].iov_base + iov[i - 1].iov_len,
                                      (char *)iov[i].iov_base, "adjacent spans %zu/%zu not merged", i - 1,
                                      i);
                sum += iov[i].iov_len;
        }
        cr_assert_eq(sum, bytes, "iovec lengths sum to %zu, *ret_bytes is %zu", sum, bytes);
        cr_assert_eq(n == 0, bytes == 0);
}

/* Copies the first k bytes of iov[0..n) to out. */
static void gather(const struct iovec *iov, size_t n, size_t k, Buf *out) {
        for (size_t i = 0; i < n && k > 0; i++) {
                size_t t = iov[i].iov_len < k ? iov[i].iov_len : k;
                buf_put(out, iov[i].iov_base, t);
                k -= t;
        }
}

enum { STEP_ALL, STEP_ONE, STEP_RANDOM };

/* One write: fill, "send" some of it, advance. Returns the bytes offered. */
static size_t write_once(BcastLog *log, LogCursor *c, uint64_t skip, size_t max_iov, size_t max_bytes,
                         int step, Buf *out) {
        struct iovec iov[64];
        cr_assert_leq(max_iov, 64);
        size_t bytes = 7777;
        size_t n = bcastlog_fill(log, c, skip, iov, max_iov, max_bytes, &bytes);
        check_fill(iov, n, bytes, max_iov, max_bytes);
        if (bytes == 0) {
                bcastlog_advance(log, c, skip, 0);
                return 0;
        }
        size_t k = step == STEP_ALL ? bytes : step == STEP_ONE ? 1 : rnd_range(1, bytes);
        uint64_t before = bcastlog_backlog(log, c);
        gather(iov, n, k, out);
        bcastlog_advance(log, c, skip, k);
        cr_assert_leq(bcastlog_backlog(log, c) + k, before, "backlog shrank by less than sent");
        return bytes;
}

/* Writes until the cursor has nothing left to send. */
static void drain(BcastLog *log, LogCursor *c, uint64_t skip, size_t max_iov, size_t max_bytes, int step,
                  Buf *out) {
        for (size_t guard = 0;; guard++) {
                cr_assert_lt(guard, 50000000, "drain does not terminate");
                if (write_once(log, c, skip, max_iov, max_bytes, step, out) == 0)
                        break;
        }
        cr_assert_eq(bcastlog_backlog(log, c), 0, "nothing to send, yet a backlog of %llu",
                     (unsigned long long)bcastlog_backlog(log, c));
}

static BcastLog *new_log(void) {
        BcastLog *log = NULL;
        cr_assert_eq(bcastlog_new(&log), 0);
        cr_assert_not_null(log);
        return log;
}

/* --- basics ------------------------------------------------------------------ */

Test(bcastlog, empty_log) {
        BcastLog *log = new_log();
        cr_assert_eq(bcastlog_end(log), 0);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);

        LogCursor c;
        bcastlog_cursor_init(log, &c);
        cr_assert_eq(bcastlog_backlog(log, &c), 0);
        struct iovec iov[4];
        size_t bytes = 99;
        cr_assert_eq(bcastlog_fill(log, &c, BCASTLOG_NO_SENDER, iov, 4, SIZE_MAX, &bytes), 0);
        cr_assert_eq(bytes, 0);
        bcastlog_advance(log, &c, BCASTLOG_NO_SENDER, 0);
        cr_assert_eq(bcastlog_backlog(log, &c), 0);
        bcastlog_cursor_release(log, &c);
        bcastlog_cursor_release(log, &c); /* twice is harmless */
        cr_assert_null(bcastlog_free(log));
        cr_assert_null(bcastlog_free(NULL));
}

Test(bcastlog, cursor_sees_only_later_appends) {
        BcastLog *log = new_log();
        append(log, 1, "old\n", 4);
        append(log, 2, "older\n", 6);
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        cr_assert_eq(bcastlog_backlog(log, &c), 0);
        cr_assert_eq(bcastlog_end(log), 10);

        append(log, 1, "new\n", 4);
        Buf got = {0}, want = {0};
        buf_put(&want, "new\n", 4);
        drain(log, &c, 3, 8, SIZE_MAX, STEP_ALL, &got);
        expect_same(&got, &want, "later only");
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
        buf_free(&got);
        buf_free(&want);
}

Test(bcastlog, empty_append_is_a_no_op) {
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        struct iovec iov[2] = {{.iov_base = (void *)"", .iov_len = 0}, {.iov_base = NULL, .iov_len = 0}};
        cr_assert_eq(bcastlog_append(log, 1, iov, 2), 0);
        cr_assert_eq(bcastlog_append(log, 1, iov, 0), 0);
        cr_assert_eq(bcastlog_end(log), 0);
        cr_assert_eq(bcastlog_backlog(log, &c), 0);
        size_t bytes;
        cr_assert_eq(bcastlog_fill(log, &c, 2, iov, 2, SIZE_MAX, &bytes), 0);
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
}

Test(bcastlog, append_concatenates_iovec_parts_across_blocks) {
        /* prefix + payload + LF, as the server appends them, straddling the
         * end of the first block. */
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        Buf want = {0}, got = {0};
        for (int i = 0; i < 40; i++) {
                char prefix[32];
                int pl = snprintf(prefix, sizeof(prefix), "[%d] ", i);
                size_t len = rnd_range(100, 1500);
                char *m = make_msg(len);
                struct iovec iov[3] = {
                        {.iov_base = prefix, .iov_len = (size_t)pl},
                        {.iov_base = m, .iov_len = len - 1},
                        {.iov_base = (void *)"\n", .iov_len = 1},
                };
                cr_assert_eq(bcastlog_append(log, 1 + (uint64_t)(i % 3), iov, 3), 0);
                buf_put(&want, prefix, (size_t)pl);
                buf_put(&want, m, len);
                free(m);
        }
        cr_assert_eq(bcastlog_end(log), want.len);
        cr_assert_eq(bcastlog_backlog(log, &c), want.len);
        drain(log, &c, BCASTLOG_NO_SENDER, 16, SIZE_MAX, STEP_ALL, &got);
        expect_same(&got, &want, "iovec append");
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
        buf_free(&want);
        buf_free(&got);
}

Test(bcastlog, append_sizes_around_block_multiples) {
        /* Every size near one, two and three blocks, after a short message
         * of another sender or of the same one (which the new bytes then
         * extend): the bytes must come out unchanged. */
        for (size_t k = 1; k <= 3; k++)
                for (size_t len = k * BLK - 300; len <= k * BLK + 40; len += 3)
                        for (uint64_t first = 1; first <= 2; first++) {
                                BcastLog *log = new_log();
                                LogCursor c;
                                bcastlog_cursor_init(log, &c);
                                char *m = make_msg(len);
                                append(log, first, "hi\n", 3);
                                append(log, 2, m, len);
                                append(log, 1, "bye\n", 4);
                                cr_assert_eq(bcastlog_end(log), len + 7);
                                Buf got = {0};
                                drain(log, &c, 3, 8, SIZE_MAX, STEP_ALL, &got);
                                cr_assert_eq(got.len, len + 7);
                                cr_assert(memcmp(got.p + 3, m, len) == 0, "size %zu: bytes differ", len);
                                cr_assert(memcmp(got.p + 3 + len, "bye\n", 4) == 0);
                                free(m);
                                buf_free(&got);
                                bcastlog_cursor_release(log, &c);
                                bcastlog_free(log);
                        }
}

/* --- delivery ------------------------------------------------------------------ */

Test(bcastlog, single_sender_many_readers_get_identical_bytes) {
        enum { READERS = 16 };
        static const size_t caps[] = {1, 7, 100, 4096, 65536, SIZE_MAX};
        BcastLog *log = new_log();
        LogCursor c[READERS];
        Buf got[READERS] = {{0}}, want = {0};
        for (int r = 0; r < READERS; r++)
                bcastlog_cursor_init(log, &c[r]);

        for (int round = 0; round < 20; round++) {
                for (int i = 0; i < 25; i++) {
                        size_t len = rnd() % 10 == 0 ? rnd_range(16000, 40000) : rnd_range(1, 3000);
                        char *m = make_msg(len);
                        append(log, 1, m, len);
                        buf_put(&want, m, len);
                        free(m);
                }
                /* Each reader writes a little, its own way. */
                for (int r = 0; r < READERS; r++)
                        for (int w = 0; w < r % 5; w++)
                                write_once(log, &c[r], 100 + (uint64_t)r, 1 + (size_t)r % 4, caps[r % 6],
                                           r % 3, &got[r]);
        }
        for (int r = 0; r < READERS; r++) {
                cr_assert_eq(bcastlog_backlog(log, &c[r]), want.len - got[r].len,
                             "reader %d: backlog is not end - what it was sent", r);
                drain(log, &c[r], 100 + (uint64_t)r, 1 + (size_t)r % 4,
                      caps[r % 6] < 4096 ? 4096 : caps[r % 6], r % 3 == STEP_ONE ? STEP_RANDOM : r % 3,
                      &got[r]);
                expect_same(&got[r], &want, "single sender");
        }
        for (int r = 0; r < READERS; r++) {
                bcastlog_cursor_release(log, &c[r]);
                buf_free(&got[r]);
        }
        bcastlog_free(log);
        buf_free(&want);
}

Test(bcastlog, readers_skip_own_runs_in_global_order) {
        /* Three clients (ids 1..3) send and read, skipping their own runs;
         * client 4 has echo on and never sends; sender 9 has no cursor. */
        enum { N = 4 };
        BcastLog *log = new_log();
        LogCursor c[N];
        uint64_t skip[N] = {1, 2, 3, BCASTLOG_NO_SENDER};
        Buf got[N] = {{0}}, want[N] = {{0}};
        for (int r = 0; r < N; r++)
                bcastlog_cursor_init(log, &c[r]);

        for (int i = 0; i < 600; i++) {
                static const uint64_t senders[] = {1, 2, 3, 9};
                uint64_t s = senders[rnd() % 4];
                /* Bursts from one sender make runs of several messages. */
                int burst = rnd() % 4 == 0 ? (int)rnd_range(2, 6) : 1;
                for (int b = 0; b < burst; b++) {
                        size_t len = rnd() % 20 == 0 ? rnd_range(10000, 50000) : rnd_range(1, 500);
                        char *m = make_msg(len);
                        append(log, s, m, len);
                        for (int r = 0; r < N; r++)
                                if (skip[r] != s)
                                        buf_put(&want[r], m, len);
                        free(m);
                }
                int r = (int)(rnd() % N);
                write_once(log, &c[r], skip[r], rnd_range(1, 8), rnd_range(1, 30000), STEP_RANDOM, &got[r]);
        }
        for (int r = 0; r < N; r++) {
                drain(log, &c[r], skip[r], 8, SIZE_MAX, STEP_RANDOM, &got[r]);
                expect_same(&got[r], &want[r], skip[r] == BCASTLOG_NO_SENDER ? "echo" : "skip own");
                bcastlog_cursor_release(log, &c[r]);
                buf_free(&got[r]);
                buf_free(&want[r]);
        }
        bcastlog_free(log);
}

Test(bcastlog, one_byte_at_a_time_across_messages_and_blocks) {
        /* Message sizes chosen so that boundaries fall just before, at and
         * just after block ends; the reader's own messages sit in between. */
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        Buf got = {0}, want = {0};
        for (int i = 0; i < 60; i++) {
                uint64_t s = i % 3 == 2 ? 7 : 1 + (uint64_t)(i % 2);
                size_t len = i % 5 == 0 ? rnd_range(BLK - 200, BLK + 200) : rnd_range(1, 900);
                char *m = make_msg(len);
                append(log, s, m, len);
                if (s != 7)
                        buf_put(&want, m, len);
                free(m);
        }
        drain(log, &c, 7, 1, 1, STEP_ONE, &got);
        expect_same(&got, &want, "one byte per fill");
        buf_free(&got);
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
        buf_free(&want);
}

Test(bcastlog, partial_advances_reassemble_exact_stream) {
        static const size_t sizes[] = {1,    2,     3,     17,    1000,  4095, 4096,
                                       4097, 16000, 16383, 16384, 16385, 30000};
        for (int mode = 0; mode < 3; mode++) {
                BcastLog *log = new_log();
                LogCursor c;
                bcastlog_cursor_init(log, &c);
                Buf got = {0}, want = {0};
                for (size_t i = 0; i < 3 * sizeof(sizes) / sizeof(sizes[0]); i++) {
                        size_t len = sizes[(i * 7) % (sizeof(sizes) / sizeof(sizes[0]))];
                        uint64_t s = 1 + i % 2;
                        char *m = make_msg(len);
                        append(log, s, m, len);
                        buf_put(&want, m, len);
                        free(m);
                        if (i % 4 == 3)
                                write_once(log, &c, 5, 3, 5000, STEP_RANDOM, &got);
                }
                static const size_t max_bytes[] = {SIZE_MAX, 4096, 3};
                drain(log, &c, 5, 4, max_bytes[mode],
                      mode == 0   ? STEP_RANDOM
                      : mode == 1 ? STEP_ONE
                                  : STEP_ALL,
                      &got);
                expect_same(&got, &want, "partial advances");
                bcastlog_cursor_release(log, &c);
                bcastlog_free(log);
                buf_free(&got);
                buf_free(&want);
        }
}

Test(bcastlog, messages_larger_than_a_block) {
        /* 100 KB messages from sender 1 between small ones from sender 2:
         * reader 2 gets only the big ones, reader 3 everything. */
        BcastLog *log = new_log();
        LogCursor r2, r3;
        bcastlog_cursor_init(log, &r2);
        bcastlog_cursor_init(log, &r3);
        Buf got2 = {0}, got3 = {0}, want2 = {0}, want3 = {0};
        for (int i = 0; i < 12; i++) {
                size_t len = i % 2 == 0 ? 100 * 1000 + (size_t)i : rnd_range(1, 50);
                uint64_t s = i % 2 == 0 ? 1 : 2;
                char *m = make_msg(len);
                append(log, s, m, len);
                if (s != 2)
                        buf_put(&want2, m, len);
                buf_put(&want3, m, len);
                free(m);
        }
        cr_assert_geq(bcastlog_memory(log), want3.len, "memory %zu smaller than the data %zu",
                      bcastlog_memory(log), want3.len);
        cr_assert_eq(bcastlog_backlog(log, &r2), want3.len);

        drain(log, &r2, 2, 3, 70000, STEP_RANDOM, &got2);
        expect_same(&got2, &want2, "big messages, own skipped");
        drain(log, &r3, 3, 64, SIZE_MAX, STEP_ALL, &got3);
        expect_same(&got3, &want3, "big messages, all");
        cr_assert_leq(bcastlog_memory(log), 2 * BLK, "memory %zu after every cursor reached the end",
                      bcastlog_memory(log));
        bcastlog_cursor_release(log, &r2);
        bcastlog_cursor_release(log, &r3);
        bcastlog_free(log);
        buf_free(&got2);
        buf_free(&got3);
        buf_free(&want2);
        buf_free(&want3);
}

Test(bcastlog, fill_caps_and_merging) {
        /* s0 r0 s1 r1 ...: for reader 2 (skip 2) every s-message is a
         * separate span; for reader 3 the whole block is one span. */
        BcastLog *log = new_log();
        LogCursor c2, c3;
        bcastlog_cursor_init(log, &c2);
        bcastlog_cursor_init(log, &c3);
        for (int i = 0; i < 10; i++) {
                char m[8];
                snprintf(m, sizeof(m), "s%d\n", i);
                append(log, 1, m, 3);
                snprintf(m, sizeof(m), "r%d\n", i);
                append(log, 2, m, 3);
        }
        struct iovec iov[16];
        size_t bytes, n;

        n = bcastlog_fill(log, &c2, 2, iov, 3, SIZE_MAX, &bytes);
        check_fill(iov, n, bytes, 3, SIZE_MAX);
        cr_assert_eq(n, 3);
        cr_assert_eq(bytes, 9);
        for (size_t i = 0; i < 3; i++) {
                char m[8];
                snprintf(m, sizeof(m), "s%zu\n", i);
                cr_assert_eq(iov[i].iov_len, 3);
                cr_assert(memcmp(iov[i].iov_base, m, 3) == 0, "entry %zu is not %s", i, m);
        }

        n = bcastlog_fill(log, &c2, 2, iov, 16, SIZE_MAX, &bytes);
        cr_assert_eq(n, 10);
        cr_assert_eq(bytes, 30);

        n = bcastlog_fill(log, &c2, 2, iov, 16, 4, &bytes);
        cr_assert_eq(n, 2);
        cr_assert_eq(bytes, 4);
        cr_assert_eq(iov[1].iov_len, 1);
        cr_assert(memcmp(iov[1].iov_base, "s", 1) == 0);

        n = bcastlog_fill(log, &c2, 2, iov, 16, 0, &bytes);
        cr_assert_eq(n, 0);
        cr_assert_eq(bytes, 0);
        n = bcastlog_fill(log, &c2, 2, iov, 0, SIZE_MAX, &bytes);
        cr_assert_eq(n, 0);
        cr_assert_eq(bytes, 0);

        /* Reader 3: contiguous runs of senders 1 and 2 merge into one entry. */
        n = bcastlog_fill(log, &c3, 3, iov, 1, SIZE_MAX, &bytes);
        cr_assert_eq(n, 1);
        cr_assert_eq(bytes, 60);
        cr_assert(memcmp(iov[0].iov_base, "s0\nr0\ns1\n", 9) == 0);

        /* Filling does not move the cursor. */
        cr_assert_eq(bcastlog_backlog(log, &c2), 60);
        n = bcastlog_fill(log, &c2, 2, iov, 3, SIZE_MAX, &bytes);
        cr_assert_eq(bytes, 9);
        cr_assert(memcmp(iov[0].iov_base, "s0\n", 3) == 0);

        /* After sending 4 bytes ("s0\ns"), the next fill resumes mid-message. */
        bcastlog_advance(log, &c2, 2, 4);
        n = bcastlog_fill(log, &c2, 2, iov, 2, SIZE_MAX, &bytes);
        cr_assert_eq(n, 2);
        cr_assert_eq(iov[0].iov_len, 2);
        cr_assert(memcmp(iov[0].iov_base, "1\n", 2) == 0);
        cr_assert(memcmp(iov[1].iov_base, "s2\n", 3) == 0);

        bcastlog_cursor_release(log, &c2);
        bcastlog_cursor_release(log, &c3);
        bcastlog_free(log);
}

Test(bcastlog, fill_caps_across_block_boundary) {
        /* One message spanning two blocks is two spans in memory: two
         * entries, or one when max_iov is 1 (only the first part). */
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        size_t len = BLK + 1000;
        char *m = make_msg(len);
        append(log, 1, m, len);
        struct iovec iov[4];
        size_t bytes;
        size_t n = bcastlog_fill(log, &c, 2, iov, 4, SIZE_MAX, &bytes);
        check_fill(iov, n, bytes, 4, SIZE_MAX);
        cr_assert_eq(n, 2);
        cr_assert_eq(bytes, len);
        cr_assert(memcmp(iov[0].iov_base, m, iov[0].iov_len) == 0);
        cr_assert(memcmp(iov[1].iov_base, m + iov[0].iov_len, iov[1].iov_len) == 0);
        size_t first = iov[0].iov_len;
        n = bcastlog_fill(log, &c, 2, iov, 1, SIZE_MAX, &bytes);
        cr_assert_eq(n, 1);
        cr_assert_eq(bytes, first);
        free(m);
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
}

Test(bcastlog, backlog_arithmetic) {
        BcastLog *log = new_log();
        LogCursor c, d;
        bcastlog_cursor_init(log, &c); /* client 2 */
        append(log, 1, "012345678\n", 10);
        cr_assert_eq(bcastlog_backlog(log, &c), 10);
        append(log, 2, "abcd\n", 5);
        cr_assert_eq(bcastlog_backlog(log, &c), 15, "own bytes count in the backlog");
        cr_assert_eq(bcastlog_end(log), 15);

        bcastlog_cursor_init(log, &d);
        cr_assert_eq(bcastlog_backlog(log, &d), 0);

        struct iovec iov[4];
        size_t bytes;
        bcastlog_fill(log, &c, 2, iov, 4, SIZE_MAX, &bytes);
        cr_assert_eq(bytes, 10);
        bcastlog_advance(log, &c, 2, 4);
        cr_assert_eq(bcastlog_backlog(log, &c), 11);
        /* The rest of the message, then the own run that follows is passed too. */
        bcastlog_advance(log, &c, 2, 6);
        cr_assert_eq(bcastlog_backlog(log, &c), 0);

        char *big = make_msg(50000);
        append(log, 3, big, 50000);
        cr_assert_eq(bcastlog_end(log), 50015);
        cr_assert_eq(bcastlog_backlog(log, &c), 50000);
        cr_assert_eq(bcastlog_backlog(log, &d), 50000);
        bcastlog_advance(log, &d, 2, 20000);
        cr_assert_eq(bcastlog_backlog(log, &d), 30000);
        bcastlog_advance(log, &d, 2, 30000);
        cr_assert_eq(bcastlog_backlog(log, &d), 0);
        free(big);
        bcastlog_cursor_release(log, &c);
        bcastlog_cursor_release(log, &d);
        bcastlog_free(log);
}

Test(bcastlog, advance_zero_steps_over_own_runs_and_frees_blocks) {
        /* A lone sender's own messages pin blocks until its cursor steps over
         * them, which advance(…, 0) does. */
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        size_t total = 0;
        for (int i = 0; i < 20; i++) {
                size_t len = rnd_range(5000, 15000);
                char *m = make_msg(len);
                append(log, 4, m, len);
                total += len;
                free(m);
        }
        cr_assert_eq(bcastlog_backlog(log, &c), total);
        cr_assert_gt(bcastlog_memory(log), total);
        struct iovec iov[4];
        size_t bytes;
        cr_assert_eq(bcastlog_fill(log, &c, 4, iov, 4, SIZE_MAX, &bytes), 0);
        cr_assert_eq(bytes, 0);
        bcastlog_advance(log, &c, 4, 0);
        cr_assert_eq(bcastlog_backlog(log, &c), 0);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
}

Test(bcastlog, echo_switched_off_mid_message_sends_rest_of_it) {
        /* Client 1 had echo on and was sent part of its own message; echo is
         * then switched off (reload): the message is finished, whole, and
         * the client's later own messages are skipped. */
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        size_t big_len = BLK + 5000;
        char *big = make_msg(big_len);
        append(log, 1, "hello world\n", 12);
        append(log, 1, "own2\n", 5);
        append(log, 2, "other\n", 6);
        append(log, 1, big, big_len);
        append(log, 2, "tail\n", 5);

        Buf got = {0};
        write_once(log, &c, BCASTLOG_NO_SENDER, 4, 3, STEP_ALL, &got); /* "hel" */
        drain(log, &c, 1, 4, SIZE_MAX, STEP_ONE, &got);
        const char want1[] = "hello world\nother\ntail\n";
        cr_assert_eq(got.len, sizeof(want1) - 1, "got %zu bytes", got.len);
        cr_assert(memcmp(got.p, want1, got.len) == 0, "got \"%.*s\"", (int)got.len, got.p);

        /* Now mid-way through a message spanning blocks. */
        buf_free(&got);
        append(log, 1, big, big_len);
        append(log, 1, "own3\n", 5);
        append(log, 2, "last\n", 5);
        write_once(log, &c, BCASTLOG_NO_SENDER, 1, 7000, STEP_ALL, &got);
        drain(log, &c, 1, 4, 1000, STEP_RANDOM, &got);
        Buf want = {0};
        buf_put(&want, big, big_len);
        buf_put(&want, "last\n", 5);
        expect_same(&got, &want, "echo off mid-message across blocks");

        free(big);
        buf_free(&got);
        buf_free(&want);
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
}

/* --- slow readers ------------------------------------------------------------ */

Test(bcastlog, stalled_reader_backlog_exact_and_memory_freed_on_release) {
        /* What the server's slow-reader check relies on: a stalled reader's
         * backlog is exactly what was appended since, it alone keeps the
         * blocks, and releasing it gives them back. */
        BcastLog *log = new_log();
        LogCursor slow, fast;
        bcastlog_cursor_init(log, &slow);
        bcastlog_cursor_init(log, &fast);
        Buf sink = {0};
        uint64_t appended = 0;
        while (appended <= 10 * BLK) {
                size_t len = rnd_range(100, 3000);
                char *m = make_msg(len);
                append(log, 1, m, len);
                appended += len;
                free(m);
                drain(log, &fast, 2, 8, SIZE_MAX, STEP_ALL, &sink);
                cr_assert_eq(bcastlog_backlog(log, &slow), appended);
                cr_assert_eq(bcastlog_backlog(log, &fast), 0);
        }
        cr_assert_geq(bcastlog_memory(log), appended);
        /* A new, up-to-date reader has no backlog and changes nothing. */
        LogCursor late;
        bcastlog_cursor_init(log, &late);
        cr_assert_eq(bcastlog_backlog(log, &late), 0);
        cr_assert_eq(bcastlog_backlog(log, &slow), appended);

        bcastlog_cursor_release(log, &slow);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK, "memory %zu after the stalled reader left",
                      bcastlog_memory(log));
        bcastlog_cursor_release(log, &fast);
        bcastlog_cursor_release(log, &late);
        bcastlog_free(log);
        buf_free(&sink);
}

Test(bcastlog, memory_stays_small_while_readers_keep_up) {
        BcastLog *log = new_log();
        LogCursor c[3];
        for (int r = 0; r < 3; r++)
                bcastlog_cursor_init(log, &c[r]);
        Buf sink = {0};
        for (int i = 0; i < 300; i++) {
                size_t len = rnd_range(1, 900);
                char *m = make_msg(len);
                append(log, 1 + (uint64_t)(i % 4), m, len);
                free(m);
                for (int r = 0; r < 3; r++)
                        drain(log, &c[r], 1 + (uint64_t)r, 8, SIZE_MAX, STEP_ALL, &sink);
                cr_assert_leq(bcastlog_memory(log), 2 * BLK,
                              "step %d: %zu bytes held, yet all readers are at the end", i,
                              bcastlog_memory(log));
        }
        /* Without any cursor, nothing is kept. */
        for (int r = 0; r < 3; r++)
                bcastlog_cursor_release(log, &c[r]);
        for (int i = 0; i < 20; i++) {
                char *m = make_msg(10000);
                append(log, 1, m, 10000);
                free(m);
                cr_assert_leq(bcastlog_memory(log), 2 * BLK);
        }
        bcastlog_free(log);
        buf_free(&sink);
}

/* A stream of 100 messages of 100 bytes each, sender 1 or (own) 9. */
static void fill_hundred(BcastLog *log, char *msgs[100], uint64_t own_every) {
        for (int i = 0; i < 100; i++) {
                msgs[i] = make_msg(100);
                msgs[i][0] = (char)('A' + i % 26);
                uint64_t s = own_every && i % own_every == 0 ? 9 : 1;
                append(log, s, msgs[i], 100);
        }
}

static void free_hundred(char *msgs[100]) {
        for (int i = 0; i < 100; i++)
                free(msgs[i]);
}

Test(bcastlog, drop_lands_on_first_boundary_within_limit) {
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        char *msgs[100];
        fill_hundred(log, msgs, 0);

        char *rest = (char *)&c;
        size_t rest_len = 1234;
        /* end 10000, limit 950: the first boundary with at most 950 bytes
         * after it is 9100 (900 left); messages 0..90 are dropped. */
        int r = drop(log, &c, 9, 950, &rest, &rest_len);
        cr_assert_eq(r, 91, "dropped %d", r);
        cr_assert_null(rest);
        cr_assert_eq(rest_len, 0);
        cr_assert_eq(bcastlog_backlog(log, &c), 900);

        Buf got = {0}, want = {0};
        for (int i = 91; i < 100; i++)
                buf_put(&want, msgs[i], 100);
        drain(log, &c, 9, 8, SIZE_MAX, STEP_ALL, &got);
        expect_same(&got, &want, "after drop");

        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
        free_hundred(msgs);
        buf_free(&got);
        buf_free(&want);
}

Test(bcastlog, drop_at_exact_boundary_and_limit_zero) {
        BcastLog *log = new_log();
        LogCursor c, d;
        bcastlog_cursor_init(log, &c);
        bcastlog_cursor_init(log, &d);
        char *msgs[100];
        fill_hundred(log, msgs, 0);
        char *rest;
        size_t rest_len;

        /* limit 1000 is exactly 10 messages: land at 9000, drop 90. */
        cr_assert_eq(drop(log, &c, 9, 1000, &rest, &rest_len), 90);
        cr_assert_eq(bcastlog_backlog(log, &c), 1000);
        cr_assert_null(rest);

        /* limit 0: everything goes. */
        cr_assert_eq(drop(log, &d, 9, 0, &rest, &rest_len), 100);
        cr_assert_eq(bcastlog_backlog(log, &d), 0);
        struct iovec iov[2];
        size_t bytes;
        cr_assert_eq(bcastlog_fill(log, &d, 9, iov, 2, SIZE_MAX, &bytes), 0);

        /* Within the limit already: nothing is dropped. */
        cr_assert_eq(drop(log, &c, 9, 1000, &rest, &rest_len), 0);
        cr_assert_eq(bcastlog_backlog(log, &c), 1000);
        cr_assert_eq(drop(log, &c, 9, 5000, &rest, &rest_len), 0);
        cr_assert_eq(bcastlog_backlog(log, &c), 1000);

        /* Later messages still arrive after a drop. */
        append(log, 1, "after\n", 6);
        Buf got = {0};
        drain(log, &d, 9, 2, SIZE_MAX, STEP_ALL, &got);
        cr_assert_eq(got.len, 6);
        cr_assert(memcmp(got.p, "after\n", 6) == 0);

        bcastlog_cursor_release(log, &c);
        bcastlog_cursor_release(log, &d);
        bcastlog_free(log);
        free_hundred(msgs);
        buf_free(&got);
}

Test(bcastlog, drop_at_exact_boundary_between_senders) {
        /* The boundary with exactly 'limit' bytes after it is also the end
         * of a run (the sender changes there): land on it, not one later. */
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        char *msgs[100];
        for (int i = 0; i < 100; i++) {
                msgs[i] = make_msg(100);
                append(log, 1 + (uint64_t)(i % 2), msgs[i], 100);
        }
        char *rest;
        size_t rest_len;
        cr_assert_eq(drop(log, &c, 9, 1000, &rest, &rest_len), 90);
        cr_assert_eq(bcastlog_backlog(log, &c), 1000);
        Buf got = {0}, want = {0};
        drain(log, &c, 9, 8, SIZE_MAX, STEP_ALL, &got);
        for (int i = 90; i < 100; i++)
                buf_put(&want, msgs[i], 100);
        expect_same(&got, &want, "exact boundary");
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
        free_hundred(msgs);
        buf_free(&got);
        buf_free(&want);
}

Test(bcastlog, drop_counts_only_messages_the_reader_would_get) {
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        char *msgs[100];
        fill_hundred(log, msgs, 3); /* 0, 3, 6, ... are the reader's own */
        char *rest;
        size_t rest_len;
        /* Own messages do not wait for the reader: with 950 bytes allowed it
         * keeps 9 of the others' (86, 88, 89, ..., 98), so it lands at 8600;
         * of the 66 others' messages 57 are dropped. */
        int r = drop(log, &c, 9, 950, &rest, &rest_len);
        cr_assert_eq(r, 57, "dropped %d", r);
        cr_assert_null(rest);
        cr_assert_eq(bcastlog_backlog(log, &c), 1400);

        Buf got = {0}, want = {0};
        for (int i = 86; i < 100; i++)
                if (i % 3 != 0)
                        buf_put(&want, msgs[i], 100);
        drain(log, &c, 9, 8, SIZE_MAX, STEP_RANDOM, &got);
        expect_same(&got, &want, "after drop with own messages");

        /* The same log read with echo on counts the own ones too. */
        LogCursor e;
        bcastlog_cursor_init(log, &e);
        free_hundred(msgs);
        fill_hundred(log, msgs, 3);
        cr_assert_eq(drop(log, &e, BCASTLOG_NO_SENDER, 950, &rest, &rest_len), 91);

        bcastlog_cursor_release(log, &c);
        bcastlog_cursor_release(log, &e);
        bcastlog_free(log);
        free_hundred(msgs);
        buf_free(&got);
        buf_free(&want);
}

Test(bcastlog, drop_returns_rest_of_partly_sent_message) {
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        char *msgs[100];
        fill_hundred(log, msgs, 0);
        /* 3 messages and 37 bytes sent. */
        bcastlog_advance(log, &c, 9, 337);

        char *rest = NULL;
        size_t rest_len = 0;
        int r = drop(log, &c, 9, 950, &rest, &rest_len);
        /* Message 3 is finished from the copy; 4..90 (87) are dropped. */
        cr_assert_eq(r, 87, "dropped %d", r);
        cr_assert_not_null(rest);
        cr_assert_eq(rest_len, 63);
        cr_assert(memcmp(rest, msgs[3] + 37, 63) == 0, "rest is not the unsent part of message 3");
        free(rest);
        cr_assert_eq(bcastlog_backlog(log, &c), 900);

        /* A drop within the limit still hands out the rest of a partly sent
         * message (and skips nothing): rest + later stream = the exact
         * remainder. */
        bcastlog_advance(log, &c, 9, 150);
        Buf got = {0}, want = {0};
        cr_assert_eq(drop(log, &c, 9, 100000, &rest, &rest_len), 0);
        if (rest)
                buf_put(&got, rest, rest_len);
        free(rest);
        drain(log, &c, 9, 8, SIZE_MAX, STEP_ALL, &got);
        buf_put(&want, msgs[92] + 50, 50);
        for (int i = 93; i < 100; i++)
                buf_put(&want, msgs[i], 100);
        expect_same(&got, &want, "rest then stream");

        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
        free_hundred(msgs);
        buf_free(&got);
        buf_free(&want);
}

Test(bcastlog, drop_rest_of_message_spanning_blocks) {
        BcastLog *log = new_log();
        LogCursor c;
        bcastlog_cursor_init(log, &c);
        size_t big_len = 100 * 1000;
        char *big = make_msg(big_len);
        append(log, 1, "x\n", 2);
        append(log, 2, big, big_len);
        for (int i = 0; i < 30; i++)
                append(log, 3, "small message\n", 14);
        Buf sent = {0};
        write_once(log, &c, 5, 4, 5002, STEP_ALL, &sent); /* "x\n" + 5000 bytes */
        cr_assert_eq(sent.len, 5002);
        cr_assert_gt(bcastlog_memory(log), 6 * BLK);

        char *rest = NULL;
        size_t rest_len = 0;
        int r = drop(log, &c, 5, 200, &rest, &rest_len);
        cr_assert_eq(rest_len, big_len - 5000);
        cr_assert(memcmp(rest, big + 5000, rest_len) == 0);
        free(rest);
        /* 420 bytes of small messages, limit 200: land at 14 left of them. */
        cr_assert_eq(r, 16, "dropped %d", r);
        cr_assert_eq(bcastlog_backlog(log, &c), 14 * 14);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);

        free(big);
        buf_free(&sent);
        bcastlog_cursor_release(log, &c);
        bcastlog_free(log);
}

/* --- memory ------------------------------------------------------------------ */

Test(bcastlog, memory_follows_slowest_cursor) {
        BcastLog *log = new_log();
        LogCursor c[4];
        for (int r = 0; r < 4; r++)
                bcastlog_cursor_init(log, &c[r]);
        Buf sink = {0};
        for (int i = 0; i < 200; i++) {
                size_t len = rnd_range(1, 5000);
                char *m = make_msg(len);
                append(log, 1 + (uint64_t)(i % 5), m, len);
                free(m);
        }
        size_t full = bcastlog_memory(log);
        cr_assert_geq(full, bcastlog_end(log));

        /* Three readers catch up; the fourth keeps everything alive. */
        for (int r = 0; r < 3; r++)
                drain(log, &c[r], 1 + (uint64_t)r, 8, SIZE_MAX, STEP_ALL, &sink);
        cr_assert_geq(bcastlog_memory(log), bcastlog_backlog(log, &c[3]));
        /* The last one catches up half-way: memory shrinks accordingly. */
        uint64_t half = bcastlog_backlog(log, &c[3]) / 2;
        while (bcastlog_backlog(log, &c[3]) > half)
                write_once(log, &c[3], 4, 8, 1000, STEP_ALL, &sink);
        cr_assert_lt(bcastlog_memory(log), full * 2 / 3, "memory %zu of %zu after half was sent",
                     bcastlog_memory(log), full);
        drain(log, &c[3], 4, 8, SIZE_MAX, STEP_ALL, &sink);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);

        /* Appends with everyone caught up stay small. */
        for (int i = 0; i < 100; i++) {
                size_t len = rnd_range(1, 20000);
                char *m = make_msg(len);
                append(log, 1, m, len);
                free(m);
                for (int r = 0; r < 4; r++)
                        drain(log, &c[r], 1 + (uint64_t)r, 8, SIZE_MAX, STEP_ALL, &sink);
                cr_assert_leq(bcastlog_memory(log), 2 * BLK);
        }

        /* A laggard released: its blocks go. */
        for (int i = 0; i < 50; i++) {
                char *m = make_msg(5000);
                append(log, 1, m, 5000);
                free(m);
        }
        cr_assert_gt(bcastlog_memory(log), 10 * BLK);
        for (int r = 0; r < 4; r++)
                bcastlog_cursor_release(log, &c[r]);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);
        bcastlog_free(log);
        buf_free(&sink);
}

/* --- randomized model test ------------------------------------------------------ */

typedef struct Msg {
        uint64_t sender;
        uint64_t pos; /* global position of its first byte */
        size_t len;
        char *data;
} Msg;

typedef struct Reader {
        bool active;
        uint64_t id, skip;
        LogCursor c;
        size_t idx, off;    /* next byte to send: msgs[idx].data[off] */
        uint64_t remaining; /* bytes it has yet to be sent */
} Reader;

typedef struct Model {
        Msg *msgs;
        size_t n, cap;
        uint64_t end;
} Model;

static void model_add(Model *m, uint64_t sender, char *data, size_t len) {
        if (m->n == m->cap) {
                m->cap = m->cap ? 2 * m->cap : 256;
                m->msgs = realloc(m->msgs, m->cap * sizeof(*m->msgs));
                cr_assert_not_null(m->msgs);
        }
        m->msgs[m->n++] = (Msg){.sender = sender, .pos = m->end, .len = len, .data = data};
        m->end += len;
}

/* Mirrors "rest on the next byte to send": own messages not yet begun are
 * passed. */
static void model_settle(const Model *m, Reader *r) {
        if (r->idx < m->n && r->off == m->msgs[r->idx].len) {
                r->idx++;
                r->off = 0;
        }
        while (r->off == 0 && r->idx < m->n && m->msgs[r->idx].sender == r->skip)
                r->idx++;
}

static uint64_t model_pos(const Model *m, const Reader *r) {
        return r->idx < m->n ? m->msgs[r->idx].pos + r->off : m->end;
}

/* Checks that iov holds the next 'bytes' of what r must be sent. */
static void model_check_offer(const Model *m, const Reader *r, const struct iovec *iov, size_t n,
                              size_t bytes, uint64_t step) {
        size_t idx = r->idx, off = r->off, done = 0;
        for (size_t i = 0; i < n; i++) {
                const char *p = iov[i].iov_base;
                size_t left = iov[i].iov_len;
                while (left > 0) {
                        while (idx < m->n &&
                               (off == m->msgs[idx].len || (off == 0 && m->msgs[idx].sender == r->skip))) {
                                idx++;
                                off = 0;
                        }
                        cr_assert_lt(idx, m->n, "step %llu: reader %llu offered more than it has",
                                     (unsigned long long)step, (unsigned long long)r->id);
                        const Msg *g = &m->msgs[idx];
                        size_t k = g->len - off < left ? g->len - off : left;
                        cr_assert(memcmp(p, g->data + off, k) == 0,
                                  "step %llu: reader %llu offered wrong bytes at %zu (message %zu +%zu)",
                                  (unsigned long long)step, (unsigned long long)r->id, done, idx, off);
                        p += k;
                        left -= k;
                        off += k;
                        done += k;
                }
        }
        cr_assert_eq(done, bytes);
}

static void model_advance(const Model *m, Reader *r, size_t k) {
        r->remaining -= k;
        while (k > 0) {
                model_settle(m, r);
                cr_assert_lt(r->idx, m->n, "model: advanced past the end");
                const Msg *g = &m->msgs[r->idx];
                size_t t = g->len - r->off < k ? g->len - r->off : k;
                r->off += t;
                k -= t;
        }
        model_settle(m, r);
}

static uint64_t model_remaining(const Model *m, const Reader *r) {
        uint64_t sum = 0;
        for (size_t i = r->idx; i < m->n; i++)
                if (m->msgs[i].sender != r->skip || (i == r->idx && r->off > 0))
                        sum += m->msgs[i].len - (i == r->idx ? r->off : 0);
        return sum;
}

enum { MAX_READERS = 8, MODEL_STEPS = 3000 };

static size_t random_msg_len(void) {
        uint64_t d = rnd() % 100;
        if (d < 60)
                return rnd_range(1, 64);
        if (d < 85)
                return rnd_range(65, 2000);
        if (d < 96)
                return rnd_range(2001, 20000);
        return rnd_range(20001, 100000);
}

static void check_memory_bound(const BcastLog *log, const Model *m, const Reader *rd, uint64_t step) {
        uint64_t minpos = m->end;
        bool any = false;
        for (int i = 0; i < MAX_READERS; i++)
                if (rd[i].active) {
                        uint64_t p = model_pos(m, &rd[i]);
                        if (p < minpos)
                                minpos = p;
                        any = true;
                }
        size_t mem = bcastlog_memory(log);
        if (!any) {
                cr_assert_leq(mem, 2 * BLK, "step %llu: %zu bytes held with no cursor",
                              (unsigned long long)step, mem);
                return;
        }
        /* Blocks from the one holding the slowest cursor to the tail, plus a
         * spare: each full block holds at least its area minus run entries
         * (16 bytes per message piece) and a little slack. */
        uint64_t retained = m->end - minpos, pieces = 0;
        for (size_t i = m->n; i > 0 && m->msgs[i - 1].pos + m->msgs[i - 1].len > minpos; i--)
                pieces++;
        uint64_t bound = BLK * (3 + (retained + 16 * pieces) / (BLK - 128));
        cr_assert_leq(mem, bound, "step %llu: %zu bytes held for %llu retained", (unsigned long long)step,
                      mem, (unsigned long long)retained);
}

static void model_run(uint64_t seed) {
        rng_state = seed;
        BcastLog *log = new_log();
        Model m = {0};
        Reader rd[MAX_READERS] = {{0}};
        uint64_t next_id = 100;
        uint64_t stats[5] = {0};

        for (uint64_t step = 0; step < MODEL_STEPS; step++) {
                uint64_t op = rnd() % 100;
                Reader *r = &rd[rnd() % MAX_READERS];
                if (op < 35) {
                        /* Append 1..4 whole messages from one sender in one call,
                         * in up to 3 iovec parts each. */
                        uint64_t sender = r->active && rnd() % 10 < 7 ? r->id : 1 + rnd() % 3;
                        size_t n_msgs = rnd() % 5 == 0 ? rnd_range(2, 4) : 1, n_iov = 0;
                        struct iovec iov[12];
                        for (size_t i = 0; i < n_msgs; i++) {
                                size_t len = random_msg_len();
                                char *d = make_msg(len);
                                model_add(&m, sender, d, len);
                                size_t a = rnd_range(0, len), b = rnd_range(a, len);
                                iov[n_iov++] = (struct iovec){.iov_base = d, .iov_len = a};
                                iov[n_iov++] = (struct iovec){.iov_base = d + a, .iov_len = b - a};
                                iov[n_iov++] = (struct iovec){.iov_base = d + b, .iov_len = len - b};
                                for (int k = 0; k < MAX_READERS; k++)
                                        if (rd[k].active && rd[k].skip != sender)
                                                rd[k].remaining += len;
                        }
                        cr_assert_eq(bcastlog_append(log, sender, iov, n_iov), 0);
                        cr_assert_eq(bcastlog_end(log), m.end);
                        stats[0]++;
                } else if (op < 78) {
                        if (!r->active)
                                continue;
                        static const size_t iov_caps[] = {1, 2, 3, 8, 64};
                        size_t max_iov = iov_caps[rnd() % 5];
                        uint64_t d = rnd() % 4;
                        size_t max_bytes = d == 0   ? 1
                                           : d == 1 ? rnd_range(1, 100)
                                           : d == 2 ? rnd_range(1, 20000)
                                                    : rnd_range(1, 200000);
                        struct iovec iov[64];
                        size_t bytes = 0;
                        size_t n = bcastlog_fill(log, &r->c, r->skip, iov, max_iov, max_bytes, &bytes);
                        check_fill(iov, n, bytes, max_iov, max_bytes);
                        model_check_offer(&m, r, iov, n, bytes, step);
                        uint64_t want = r->remaining < max_bytes ? r->remaining : max_bytes;
                        if (bytes < want)
                                cr_assert_eq(n, max_iov,
                                             "step %llu: %zu of %llu bytes offered in %zu entries",
                                             (unsigned long long)step, bytes, (unsigned long long)want, n);
                        uint64_t w = rnd() % 4;
                        size_t k = bytes == 0 || w == 0 ? 0 : w == 1 ? bytes : rnd_range(1, bytes);
                        uint64_t own = bcastlog_skip_ahead(log, &r->c, r->skip);
                        uint64_t passed = bcastlog_advance(log, &r->c, r->skip, k);
                        cr_assert_eq(bcastlog_skip_ahead(log, &r->c, r->skip), own - passed,
                                     "step %llu: advance stepped over %llu own bytes, not what it said",
                                     (unsigned long long)step, (unsigned long long)passed);
                        model_advance(&m, r, k);
                        stats[1]++;
                } else if (op < 84) {
                        if (r->active)
                                continue;
                        *r = (Reader){.active = true, .id = next_id++, .idx = m.n};
                        r->skip = rnd() % 5 == 0 ? BCASTLOG_NO_SENDER : r->id;
                        bcastlog_cursor_init(log, &r->c);
                        stats[2]++;
                } else if (op < 89) {
                        if (!r->active)
                                continue;
                        bcastlog_cursor_release(log, &r->c);
                        r->active = false;
                        stats[3]++;
                } else {
                        if (!r->active)
                                continue;
                        uint64_t backlog = bcastlog_backlog(log, &r->c);
                        uint64_t d = rnd() % 4;
                        uint64_t limit = d == 0   ? 0
                                         : d == 1 ? rnd() % (backlog + 1)
                                         : d == 2 ? rnd() % (2 * BLK)
                                                  : backlog + 10;
                        /* Often exactly at a message boundary ahead. */
                        if (rnd() % 3 == 0 && r->idx + 1 < m.n)
                                limit = m.end - m.msgs[rnd_range(r->idx + 1, m.n - 1)].pos;
                        /* The model's drop. */
                        Buf want_rest = {0};
                        if (r->off > 0) {
                                const Msg *g = &m.msgs[r->idx];
                                buf_put(&want_rest, g->data + r->off, g->len - r->off);
                                r->idx++;
                                r->off = 0;
                        }
                        /* Whole messages go, oldest first, until at most
                         * 'limit' bytes of others' messages wait. */
                        uint64_t waiting = 0;
                        for (size_t j = r->idx; j < m.n; j++)
                                if (m.msgs[j].sender != r->skip)
                                        waiting += m.msgs[j].len;
                        int want_dropped = 0;
                        while (r->idx < m.n && waiting > limit) {
                                if (m.msgs[r->idx].sender != r->skip) {
                                        want_dropped++;
                                        waiting -= m.msgs[r->idx].len;
                                }
                                r->idx++;
                        }
                        model_settle(&m, r);
                        r->remaining = model_remaining(&m, r);

                        char *rest = NULL;
                        size_t rest_len = 0;
                        int got = drop(log, &r->c, r->skip, limit, &rest, &rest_len);
                        cr_assert_eq(got, want_dropped, "step %llu: dropped %d, expected %d",
                                     (unsigned long long)step, got, want_dropped);
                        cr_assert_eq(rest_len, want_rest.len, "step %llu: rest of %zu bytes, expected %zu",
                                     (unsigned long long)step, rest_len, want_rest.len);
                        cr_assert_eq(rest == NULL, want_rest.len == 0);
                        if (rest_len)
                                cr_assert(memcmp(rest, want_rest.p, rest_len) == 0, "step %llu: wrong rest",
                                          (unsigned long long)step);
                        free(rest);
                        buf_free(&want_rest);
                        uint64_t own =
                                r->skip == BCASTLOG_NO_SENDER ? 0 : bcastlog_skip_ahead(log, &r->c, r->skip);
                        cr_assert_leq(bcastlog_backlog(log, &r->c) - own, limit);
                        stats[4]++;
                }

                for (int i = 0; i < MAX_READERS; i++)
                        if (rd[i].active)
                                cr_assert_eq(bcastlog_backlog(log, &rd[i].c), m.end - model_pos(&m, &rd[i]),
                                             "step %llu: reader %llu backlog %llu, model %llu",
                                             (unsigned long long)step, (unsigned long long)rd[i].id,
                                             (unsigned long long)bcastlog_backlog(log, &rd[i].c),
                                             (unsigned long long)(m.end - model_pos(&m, &rd[i])));
                check_memory_bound(log, &m, rd, step);
        }

        /* Everyone still connected gets the rest of its stream. */
        for (int i = 0; i < MAX_READERS; i++) {
                Reader *r = &rd[i];
                if (!r->active)
                        continue;
                for (;;) {
                        struct iovec iov[64];
                        size_t bytes;
                        size_t n = bcastlog_fill(log, &r->c, r->skip, iov, 64, SIZE_MAX, &bytes);
                        model_check_offer(&m, r, iov, n, bytes, MODEL_STEPS);
                        bcastlog_advance(log, &r->c, r->skip, bytes);
                        model_advance(&m, r, bytes);
                        if (bytes == 0)
                                break;
                }
                cr_assert_eq(r->remaining, 0);
                cr_assert_eq(bcastlog_backlog(log, &r->c), 0);
        }
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);
        for (int i = 0; i < MAX_READERS; i++)
                if (rd[i].active)
                        bcastlog_cursor_release(log, &rd[i].c);
        cr_assert_leq(bcastlog_memory(log), 2 * BLK);
        /* The run must have exercised every operation. */
        for (int i = 0; i < 5; i++)
                cr_assert_gt(stats[i], 10, "operation %d ran only %llu times", i,
                             (unsigned long long)stats[i]);

        bcastlog_free(log);
        for (size_t i = 0; i < m.n; i++)
                free(m.msgs[i].data);
        free(m.msgs);
}

Test(bcastlog, random_model_seed_1) {
        model_run(0x1234567887654321ULL);
}
Test(bcastlog, random_model_seed_2) {
        model_run(0xDEADBEEFCAFEF00DULL);
}
Test(bcastlog, random_model_seed_3) {
        model_run(42);
}
