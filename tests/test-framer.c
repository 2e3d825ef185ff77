/* Unit tests for framer.c: a byte stream cut anywhere must come out as the
 * same lines; a line longer than 'max' (LF included) is refused as soon as
 * that is certain; only an unfinished line is ever stored. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"

/* --- helpers ---------------------------------------------------------------- */

typedef struct Line {
        char *p;
        size_t len;
} Line;

typedef struct Lines {
        Line *v;
        size_t n, cap;
} Lines;

static void lines_push(Lines *ls, const char *p, size_t len) {
        if (ls->n == ls->cap) {
                ls->cap = ls->cap ? 2 * ls->cap : 16;
                ls->v = realloc(ls->v, ls->cap * sizeof(*ls->v));
                cr_assert_not_null(ls->v);
        }
        char *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        memcpy(copy, p, len);
        ls->v[ls->n++] = (Line){copy, len};
}

static void lines_free(Lines *ls) {
        for (size_t i = 0; i < ls->n; i++)
                free(ls->v[i].p);
        free(ls->v);
        *ls = (Lines){0};
}

static void expect_lines(const Lines *got, const Line *want, size_t n_want, const char *what) {
        cr_assert_eq(got->n, n_want, "%s: got %zu lines, expected %zu", what, got->n, n_want);
        for (size_t i = 0; i < n_want; i++) {
                cr_assert_eq(got->v[i].len, want[i].len, "%s: line %zu has %zu bytes, expected %zu", what, i,
                             got->v[i].len, want[i].len);
                cr_assert(memcmp(got->v[i].p, want[i].p, want[i].len) == 0, "%s: line %zu differs", what, i);
        }
}

/* Nothing stored: no buffer held, no unfinished bytes. */
static void expect_nothing_stored(const Framer *f) {
        cr_assert_null(f->partial);
        cr_assert_eq(framer_pending(f), 0);
}

/* Feeds one chunk through a scratch buffer that is scribbled over
 * afterwards, as a reused read buffer would be: a line must be taken before
 * the next read, and a stored partial line must not point into the input. */
static int feed(Framer *f, const char *chunk, size_t len, size_t max, Lines *out) {
        char *buf = malloc(len ? len : 1);
        cr_assert_not_null(buf);
        memcpy(buf, chunk, len);
        const char *in = buf;
        size_t in_len = len;
        int r;
        for (;;) {
                const char *line = NULL;
                size_t line_len = 0;
                size_t before = in_len;
                r = framer_next(f, &in, &in_len, max, &line, &line_len);
                if (r < 0)
                        break;
                if (r == 0) {
                        cr_assert_eq(in_len, 0, "0 returned with %zu input bytes left", in_len);
                        cr_assert_eq(in, buf + len, "input pointer not at the end");
                        break;
                }
                cr_assert_eq(r, 1);
                cr_assert_not_null(line);
                cr_assert_gt(line_len, 0);
                cr_assert_eq(line[line_len - 1], '\n', "line does not end with LF");
                cr_assert_null(memchr(line, '\n', line_len - 1), "line holds an inner LF");
                cr_assert_leq(line_len, max, "line of %zu bytes passed max %zu", line_len, max);
                cr_assert_lt(in_len, before, "a line was returned but no input consumed");
                cr_assert_eq(in, buf + (len - in_len), "input pointer and length disagree");
                lines_push(out, line, line_len);
        }
        memset(buf, 0xA5, len);
        free(buf);
        return r;
}

/* A fixed set of messages, NUL and CR bytes and empty lines included. */
static Line *make_messages(size_t *ret_n, size_t *ret_total, size_t max) {
        static const char *const lit[] = {
                "hello\n", "\n", "a\r\n", "\r\n", "x\n", "with space and\ttab\n", "\r\r\r\n", "12345678\n",
        };
        size_t n_lit = sizeof(lit) / sizeof(lit[0]);
        size_t n = n_lit + 4;
        Line *m = calloc(n, sizeof(*m));
        cr_assert_not_null(m);
        size_t i = 0;
        for (; i < n_lit; i++) {
                m[i].len = strlen(lit[i]);
                m[i].p = malloc(m[i].len);
                memcpy(m[i].p, lit[i], m[i].len);
        }
        /* NUL bytes, leading, inner and right before the LF. */
        static const char nul[] = {'\0', 'a', '\0', '\0', 'b', '\0', '\n'};
        m[i].len = sizeof(nul);
        m[i].p = malloc(m[i].len);
        memcpy(m[i].p, nul, m[i].len);
        i++;
        /* A line exactly at the limit, and one a byte short of it. */
        for (size_t k = 0; k < 2; k++, i++) {
                m[i].len = max - k;
                m[i].p = malloc(m[i].len);
                for (size_t j = 0; j + 1 < m[i].len; j++)
                        m[i].p[j] = (char)('A' + (j % 26));
                m[i].p[m[i].len - 1] = '\n';
        }
        /* Every byte value but LF. */
        m[i].len = 256;
        m[i].p = malloc(m[i].len);
        for (size_t j = 0, b = 0; j < 255; b++)
                if (b != '\n')
                        m[i].p[j++] = (char)b;
        m[i].p[255] = '\n';
        i++;
        cr_assert_eq(i, n);

        size_t total = 0;
        for (size_t k = 0; k < n; k++)
                total += m[k].len;
        *ret_n = n;
        *ret_total = total;
        return m;
}

static char *concat(const Line *m, size_t n, size_t total) {
        char *s = malloc(total);
        cr_assert_not_null(s);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
                memcpy(s + off, m[i].p, m[i].len);
                off += m[i].len;
        }
        return s;
}

static void free_messages(Line *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(m[i].p);
        free(m);
}

/* Feeds stream cut at the sorted cut points; the lines must be the messages. */
static void run_cuts(const char *stream, size_t total, const size_t *cuts, size_t n_cuts, size_t max,
                     const Line *want, size_t n_want, const char *what) {
        Framer f = FRAMER_INIT;
        Lines got = {0};
        size_t from = 0;
        for (size_t i = 0; i <= n_cuts; i++) {
                size_t to = i < n_cuts ? cuts[i] : total;
                int r = feed(&f, stream + from, to - from, max, &got);
                cr_assert_eq(r, 0, "%s: chunk [%zu,%zu) returned %d", what, from, to, r);
                from = to;
        }
        expect_lines(&got, want, n_want, what);
        cr_assert_eq(framer_pending(&f), 0, "%s: bytes left pending", what);
        const char *l;
        size_t ll;
        cr_assert_eq(framer_finish(&f, max, &l, &ll), 0, "%s: finish found a line", what);
        framer_reset(&f);
        cr_assert_null(f.partial);
        lines_free(&got);
}

/* --- stream splitting -------------------------------------------------------- */

#define MAX 300

Test(framer, whole_stream_in_one_chunk) {
        size_t n, total;
        Line *m = make_messages(&n, &total, MAX);
        char *s = concat(m, n, total);
        run_cuts(s, total, NULL, 0, MAX, m, n, "one chunk");
        free(s);
        free_messages(m, n);
}

Test(framer, every_single_cut_point) {
        size_t n, total;
        Line *m = make_messages(&n, &total, MAX);
        char *s = concat(m, n, total);
        for (size_t c = 0; c <= total; c++) {
                char what[64];
                snprintf(what, sizeof(what), "cut at %zu", c);
                run_cuts(s, total, &c, 1, MAX, m, n, what);
        }
        free(s);
        free_messages(m, n);
}

Test(framer, every_pair_of_cut_points) {
        /* The short messages only (the long ones add nothing but time). */
        size_t n, total;
        Line *m = make_messages(&n, &total, MAX);
        size_t n_short = 9, total_short = 0;
        for (size_t i = 0; i < n_short; i++)
                total_short += m[i].len;
        char *s = concat(m, n_short, total_short);
        for (size_t a = 0; a <= total_short; a++)
                for (size_t b = a; b <= total_short; b++) {
                        size_t cuts[2] = {a, b};
                        run_cuts(s, total_short, cuts, 2, MAX, m, n_short, "pair of cuts");
                }
        free(s);
        free_messages(m, n);
}

Test(framer, one_byte_at_a_time) {
        size_t n, total;
        Line *m = make_messages(&n, &total, MAX);
        char *s = concat(m, n, total);
        size_t *cuts = malloc(total * sizeof(*cuts));
        for (size_t i = 0; i < total; i++)
                cuts[i] = i;
        run_cuts(s, total, cuts, total, MAX, m, n, "bytewise");
        free(cuts);
        free(s);
        free_messages(m, n);
}

/* xorshift64*: a fixed seed, the same cuts on every run. */
static uint64_t rng_state;
static uint64_t rnd(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
}

Test(framer, random_cut_points) {
        size_t n, total;
        Line *m = make_messages(&n, &total, MAX);
        /* The message set three times over, in a shuffled order. */
        size_t n3 = 3 * n;
        Line *m3 = malloc(n3 * sizeof(*m3));
        for (size_t i = 0; i < n3; i++)
                m3[i] = m[i % n];
        rng_state = 0x9E3779B97F4A7C15ULL;
        for (size_t i = n3 - 1; i > 0; i--) {
                size_t j = rnd() % (i + 1);
                Line t = m3[i];
                m3[i] = m3[j];
                m3[j] = t;
        }
        char *s = concat(m3, n3, 3 * total);
        size_t *cuts = malloc(3 * total * sizeof(*cuts));
        for (int round = 0; round < 500; round++) {
                /* Cut density varies from few large chunks to many small ones. */
                size_t every = 1 + rnd() % 100, nc = 0;
                for (size_t pos = 1; pos < 3 * total; pos++)
                        if (rnd() % every == 0)
                                cuts[nc++] = pos;
                run_cuts(s, 3 * total, cuts, nc, MAX, m3, n3, "random cuts");
        }
        free(cuts);
        free(s);
        free(m3);
        free_messages(m, n);
}

Test(framer, complete_line_is_handed_out_without_copy) {
        Framer f = FRAMER_INIT;
        const char buf[] = "one\ntwo\n";
        const char *in = buf, *line;
        size_t in_len = sizeof(buf) - 1, len;

        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert_eq(line, buf, "a line wholly in the input must point into it");
        cr_assert_eq(len, 4);
        cr_assert_eq(in, buf + 4);
        cr_assert_eq(in_len, 4);
        cr_assert_null(f.partial, "nothing unfinished, yet a buffer is held");

        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert_eq(line, buf + 4);
        cr_assert_eq(len, 4);
        cr_assert_eq(in_len, 0);

        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        expect_nothing_stored(&f);
}

Test(framer, empty_input_returns_zero_and_touches_nothing) {
        Framer f = FRAMER_INIT;
        const char buf[] = "x";
        const char *in = buf, *line = (const char *)&f;
        size_t in_len = 0, len = 12345;

        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_eq(in, buf);
        cr_assert_eq(in_len, 0);
        cr_assert_eq(line, (const char *)&f, "*ret_line written on return 0");
        cr_assert_eq(len, 12345, "*ret_len written on return 0");
        cr_assert_null(f.partial);
}

Test(framer, nul_and_cr_pass_through) {
        static const char msg[] = {'\r', '\0', 'a', '\r', '\0', '\r', '\n'};
        /* In one piece (zero-copy path) and in two (stored partial path). */
        for (size_t cut = 0; cut < sizeof(msg); cut++) {
                Framer f = FRAMER_INIT;
                Lines got = {0};
                cr_assert_eq(feed(&f, msg, cut, MAX, &got), 0);
                cr_assert_eq(feed(&f, msg + cut, sizeof(msg) - cut, MAX, &got), 0);
                Line want = {(char *)msg, sizeof(msg)};
                expect_lines(&got, &want, 1, "NUL/CR");
                lines_free(&got);
                framer_reset(&f);
        }
}

/* --- size limit -------------------------------------------------------------- */

static char *filled_line(size_t len) {
        char *p = malloc(len);
        memset(p, 'z', len);
        p[len - 1] = '\n';
        return p;
}

Test(framer, exactly_at_limit_accepted_at_every_cut) {
        const size_t max = 10;
        char *msg = filled_line(max); /* 9 bytes + LF: exactly max */
        Line want = {msg, max};
        for (size_t c = 0; c <= max; c++)
                run_cuts(msg, max, &c, 1, max, &want, 1, "at limit");
        size_t cuts[10];
        for (size_t i = 0; i < max; i++)
                cuts[i] = i;
        run_cuts(msg, max, cuts, max, max, &want, 1, "at limit, bytewise");
        free(msg);
}

Test(framer, limit_plus_one_rejected_with_lf_in_same_chunk) {
        const size_t max = 10;
        char *msg = filled_line(max + 1);
        Framer f = FRAMER_INIT;
        const char *in = msg, *line = NULL;
        size_t in_len = max + 1, len = 0;

        cr_assert_eq(framer_next(&f, &in, &in_len, max, &line, &len), -EMSGSIZE);
        cr_assert_null(line, "no line may be handed out");
        cr_assert_null(f.partial, "the framer must be reset after -EMSGSIZE");
        cr_assert_eq(framer_pending(&f), 0);
        free(msg);
}

Test(framer, limit_plus_one_rejected_when_lf_completes_stored_part) {
        /* max bytes stored would already be refused (see the next test), so
         * store max-1 bytes and deliver "x\n": the LF arrives with the chunk. */
        const size_t max = 10;
        for (size_t stored = 1; stored < max; stored++) {
                Framer f = FRAMER_INIT;
                Lines got = {0};
                char head[16], tail[16];
                memset(head, 'h', stored);
                size_t tail_len = max + 1 - stored;
                memset(tail, 't', tail_len);
                tail[tail_len - 1] = '\n';
                cr_assert_eq(feed(&f, head, stored, max, &got), 0);
                cr_assert_eq(framer_pending(&f), stored);
                cr_assert_eq(feed(&f, tail, tail_len, max, &got), -EMSGSIZE,
                             "stored %zu + %zu with LF should be refused", stored, tail_len);
                cr_assert_eq(got.n, 0);
                expect_nothing_stored(&f);
                lines_free(&got);
        }
}

Test(framer, too_long_detected_before_lf_arrives) {
        const size_t max = 10;
        /* max bytes without a LF can never become a valid line: refused at
         * once, whatever the chunking. */
        char body[10];
        memset(body, 'q', sizeof(body));
        {
                Framer f = FRAMER_INIT;
                Lines got = {0};
                cr_assert_eq(feed(&f, body, max, max, &got), -EMSGSIZE);
                cr_assert_null(f.partial);
                lines_free(&got);
        }
        /* Byte by byte: accepted up to max-1 bytes, refused at the max-th. */
        {
                Framer f = FRAMER_INIT;
                Lines got = {0};
                for (size_t i = 0; i < max - 1; i++) {
                        cr_assert_eq(feed(&f, body, 1, max, &got), 0, "byte %zu refused", i);
                        cr_assert_eq(framer_pending(&f), i + 1);
                }
                cr_assert_eq(feed(&f, body, 1, max, &got), -EMSGSIZE);
                expect_nothing_stored(&f);
                cr_assert_eq(got.n, 0);
                lines_free(&got);
        }
        /* A good line followed by a too long start in the same chunk: the
         * good line comes out first, then the error. */
        {
                Framer f = FRAMER_INIT;
                Lines got = {0};
                char chunk[32] = "ok\n";
                memset(chunk + 3, 'q', max);
                cr_assert_eq(feed(&f, chunk, 3 + max, max, &got), -EMSGSIZE);
                Line want = {(char *)"ok\n", 3};
                expect_lines(&got, &want, 1, "good line before bad");
                cr_assert_null(f.partial);
                lines_free(&got);
        }
}

Test(framer, usable_after_emsgsize_reset) {
        const size_t max = 8;
        Framer f = FRAMER_INIT;
        Lines got = {0};
        cr_assert_eq(feed(&f, "abcdefghij", 10, max, &got), -EMSGSIZE);
        cr_assert_eq(feed(&f, "new\n", 4, max, &got), 0);
        Line want = {(char *)"new\n", 4};
        expect_lines(&got, &want, 1, "after reset");
        lines_free(&got);
        framer_reset(&f);
}

/* --- end of stream ----------------------------------------------------------- */

Test(framer, finish_with_nothing_pending) {
        Framer f = FRAMER_INIT;
        const char *line = (const char *)&f;
        size_t len = 777;
        cr_assert_eq(framer_finish(&f, MAX, &line, &len), 0);
        cr_assert_eq(line, (const char *)&f);
        cr_assert_eq(len, 777);

        /* Complete lines only: nothing left at the end either. */
        Lines got = {0};
        cr_assert_eq(feed(&f, "a\nb\n", 4, MAX, &got), 0);
        cr_assert_eq(framer_finish(&f, MAX, &line, &len), 0);
        lines_free(&got);
        framer_reset(&f);
}

Test(framer, finish_after_line_from_stored_part_returns_nothing) {
        /* The last line was completed from stored bytes (so it lives in the
         * framer's buffer): it must not come out a second time at EOF. */
        Framer f = FRAMER_INIT;
        Lines got = {0};
        cr_assert_eq(feed(&f, "ab", 2, MAX, &got), 0);
        cr_assert_eq(feed(&f, "c\n", 2, MAX, &got), 0);
        cr_assert_eq(got.n, 1);
        const char *line;
        size_t len;
        cr_assert_eq(framer_finish(&f, MAX, &line, &len), 0);
        cr_assert_null(f.partial);
        lines_free(&got);
}

Test(framer, finish_right_after_line_from_stored_part) {
        /* EOF noticed right after framer_next() handed out a line completed
         * in the framer's buffer, with no call in between. */
        Framer f = FRAMER_INIT;
        const char *in = "ab", *line;
        size_t in_len = 2, len;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        in = "c\n";
        in_len = 2;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert_eq(len, 4);
        const char *l2 = NULL;
        size_t len2 = 0;
        int r = framer_finish(&f, MAX, &l2, &len2);
        bool freed = f.partial == NULL;
        framer_reset(&f);
        cr_assert_eq(r, 0, "the line handed out came back at EOF (%d, %zu bytes)", r, len2);
        cr_assert(freed, "buffer still held after finish");
}

Test(framer, finish_twice_returns_line_once) {
        Framer f = FRAMER_INIT;
        const char *in = "last", *line = NULL;
        size_t in_len = 4, len = 0;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_eq(framer_finish(&f, MAX, &line, &len), 1);
        cr_assert_eq(len, 4);
        cr_assert(memcmp(line, "last", 4) == 0);
        int r = framer_finish(&f, MAX, &line, &len);
        bool freed = f.partial == NULL;
        framer_reset(&f);
        cr_assert_eq(r, 0, "a second finish returned the line again");
        cr_assert(freed);
}

Test(framer, finish_returns_unterminated_line) {
        static const char tail[] = {'l', 'a', '\0', 's', '\r', 't'};
        Framer f = FRAMER_INIT;
        Lines got = {0};
        cr_assert_eq(feed(&f, "first\nla", 8, MAX, &got), 0);
        cr_assert_eq(feed(&f, tail + 2, sizeof(tail) - 2, MAX, &got), 0);
        cr_assert_eq(got.n, 1);

        const char *line = NULL;
        size_t len = 0;
        cr_assert_eq(framer_finish(&f, MAX, &line, &len), 1);
        cr_assert_eq(len, sizeof(tail));
        cr_assert(memcmp(line, tail, len) == 0);
        framer_reset(&f);
        expect_nothing_stored(&f);
        lines_free(&got);
}

Test(framer, finish_fits_once_lf_added) {
        /* max-1 bytes pending: with the LF appended it is exactly max. */
        const size_t max = 10;
        char body[9];
        memset(body, 'f', sizeof(body));
        Framer f = FRAMER_INIT;
        Lines got = {0};
        cr_assert_eq(feed(&f, body, sizeof(body), max, &got), 0);
        const char *line;
        size_t len;
        cr_assert_eq(framer_finish(&f, max, &line, &len), 1);
        cr_assert_eq(len, max - 1);
        cr_assert(memcmp(line, body, len) == 0);
        framer_reset(&f);
        lines_free(&got);
}

Test(framer, finish_does_not_fit_once_lf_added) {
        /* Stored under a larger limit (a reload may lower it): 9 bytes + LF
         * do not fit in 9. */
        char body[9];
        memset(body, 'f', sizeof(body));
        Framer f = FRAMER_INIT;
        Lines got = {0};
        cr_assert_eq(feed(&f, body, sizeof(body), 100, &got), 0);
        const char *line = NULL;
        size_t len = 0;
        cr_assert_eq(framer_finish(&f, 9, &line, &len), -EMSGSIZE);
        cr_assert_null(line, "*ret_line written on failure");
        cr_assert_eq(len, 0, "*ret_len written on failure");
        cr_assert_eq(framer_finish(&f, 10, &line, &len), 1);
        cr_assert_eq(len, 9);
        framer_reset(&f);
        lines_free(&got);
}

/* --- memory -------------------------------------------------------------------- */

Test(framer, stored_line_survives_input_reuse) {
        Framer f = FRAMER_INIT;
        char buf[8];
        const char *in, *line;
        size_t in_len, len;

        memcpy(buf, "par", 3);
        in = buf;
        in_len = 3;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_not_null(f.partial);
        cr_assert_eq(framer_pending(&f), 3);
        memset(buf, '#', sizeof(buf)); /* the read buffer is reused */

        memcpy(buf, "tial\nX", 6);
        in = buf;
        in_len = 6;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert_eq(len, 8);
        cr_assert(memcmp(line, "partial\n", 8) == 0);
        cr_assert_eq(in, buf + 5);
        cr_assert_eq(in_len, 1);
        framer_reset(&f);
}

Test(framer, buffer_released_after_line_taken) {
        Framer f = FRAMER_INIT;
        const char *in, *line;
        size_t in_len, len;

        in = "ab";
        in_len = 2;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_not_null(f.partial);

        in = "c\n";
        in_len = 2;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert_eq(line, f.partial, "a line completed from stored bytes lives in the framer");
        cr_assert(memcmp(line, "abc\n", 4) == 0);

        /* The next call, even with no input, gives the buffer back. */
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_null(f.partial, "buffer still held after the line was consumed");
        cr_assert_eq(f.cap, 0);
        cr_assert_eq(framer_pending(&f), 0);

        /* Same when the next call brings a complete line of its own. */
        in = "d";
        in_len = 1;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        in = "e\nf\n";
        in_len = 4;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert(memcmp(line, "de\n", 3) == 0);
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 1);
        cr_assert(memcmp(line, "f\n", 2) == 0);
        cr_assert_null(f.partial, "buffer still held while handing out an input line");
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_null(f.partial);
}

Test(framer, reset_releases_buffer) {
        Framer f = FRAMER_INIT;
        const char *in = "unfinished", *line;
        size_t in_len = 10, len;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_not_null(f.partial);
        framer_reset(&f);
        cr_assert_null(f.partial);
        cr_assert_eq(f.len, 0);
        cr_assert_eq(f.cap, 0);
        cr_assert_eq(f.handed_out, 0);
        framer_reset(&f); /* twice is harmless */
        cr_assert_null(f.partial);
}

Test(framer, pending_counts_only_unfinished_bytes) {
        /* framer_pending() is "bytes of an unfinished line currently held".
         * Once a line completed from stored bytes has been handed out, no
         * unfinished line is held. */
        Framer f = FRAMER_INIT;
        const char *in, *line;
        size_t in_len, len;

        in = "abc";
        in_len = 3;
        cr_assert_eq(framer_next(&f, &in, &in_len, MAX, &line, &len), 0);
        cr_assert_eq(framer_pending(&f), 3);
        in = "d\n";
        in_len = 2;
        int r = framer_next(&f, &in, &in_len, MAX, &line, &len);
        size_t pending = framer_pending(&f);
        framer_reset(&f);
        cr_assert_eq(r, 1);
        cr_assert_eq(pending, 0, "framer_pending() is %zu right after a complete line was handed out",
                     pending);
}
