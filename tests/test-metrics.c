/* Unit tests for metrics.c: the exact lines of the exposition, every counter
 * under its own name, every series present at zero, the largest values, a
 * buffer too small at every size (refused, nothing written past it), and
 * the body through the strict format checker (check-prometheus.py). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metrics.h"

#define PYTHON "/usr/bin/python3"
#define GUARD 0xA5

/* --- helpers ---------------------------------------------------------------- */

/* Every counter a distinct value, so a counter exported under another's
 * name shows. */
static const ServerStats distinct_stats = {
        .accepted = 101,
        .messages = 102,
        .bytes = 103,
        .dropped = 104,
        .slow_disconnects = 105,
        .oversize = 106,
        .rejected = 107,
        .partial_disconnects = 108,
        .discarded = 109,
        .tls_failures = 110,
        .http_requests = 111,
        .http_refused = 112,
        .websocket_upgrades = 113,
        .websocket_errors = 114,
        .ping_timeouts = 115,
};

static MetricsSnapshot distinct_snapshot(void) {
        MetricsSnapshot m = {
                .stats = &distinct_stats,
                .tls_handshakes = 201,
                .queue_memory = 202,
                .partial_memory = 203,
                .start_time = 1700000000,
        };
        for (size_t p = 0; p < N_METRICS_PROTOCOLS; p++) {
                m.listeners[p] = 300 + p;
                for (size_t t = 0; t < 2; t++)
                        m.clients[p][t] = 10 * (p + 1) + t;
        }
        return m;
}

static ServerStats max_stats;

/* Every figure UINT64_MAX: the longest body there is. */
static MetricsSnapshot max_snapshot(void) {
        memset(&max_stats, 0xff, sizeof(max_stats));
        MetricsSnapshot m;
        memset(&m, 0xff, sizeof(m));
        m.stats = &max_stats;
        return m;
}

/* Renders m into a fresh NUL-terminated string (free() it); fails the test
 * if it does not fit METRICS_BODY_MAX. */
static char *render(const MetricsSnapshot *m) {
        char *buf = malloc(METRICS_BODY_MAX + 1);
        cr_assert_not_null(buf);
        ssize_t n = metrics_render(m, buf, METRICS_BODY_MAX);
        cr_assert_gt(n, 0, "metrics_render: %zd", n);
        cr_assert_leq(n, METRICS_BODY_MAX);
        buf[n] = '\0';
        return buf;
}

/* Lines of body that are exactly line (without its LF). */
static int count_lines(const char *body, const char *line) {
        size_t len = strlen(line);
        int count = 0;
        for (const char *p = body; *p;) {
                const char *end = strchr(p, '\n');
                cr_assert_not_null(end, "a line without its LF: '%s'", p);
                if ((size_t)(end - p) == len && memcmp(p, line, len) == 0)
                        count++;
                p = end + 1;
        }
        return count;
}

static void expect_line(const char *body, const char *line) {
        cr_assert_eq(count_lines(body, line), 1, "want the line '%s' once in:\n%s", line, body);
}

/* The three lines of an unlabelled family. */
static void expect_family(const char *body, const char *name, const char *type, uint64_t value) {
        char line[256];
        snprintf(line, sizeof line, "# TYPE epoll_broadcaster_%s %s", name, type);
        expect_line(body, line);
        snprintf(line, sizeof line, "epoll_broadcaster_%s %" PRIu64, name, value);
        expect_line(body, line);
        snprintf(line, sizeof line, "# HELP epoll_broadcaster_%s ", name);
        const char *help = strstr(body, line);
        cr_assert(help && (help == body || help[-1] == '\n') && help[strlen(line)] != '\n',
                  "no HELP text for %s", name);
}

static void skip_without_python(void) {
        if (access(PYTHON, X_OK) != 0)
                cr_skip_test(PYTHON " is not there: the format checker cannot run");
}

/* Runs the checker with arg (NULL: none) on input (on its stdin); returns
 * its exit status, its stdout and stderr in out. */
static int run_checker(const char *arg, const char *input, size_t len, char *out, size_t out_size) {
        const char *dir = getenv("EB_TESTS_DIR");
        cr_assert_not_null(dir, "EB_TESTS_DIR is not set (meson sets it)");
        char script[512];
        snprintf(script, sizeof script, "%s/check-prometheus.py", dir);

        int in_pipe[2], out_pipe[2];
        cr_assert_eq(pipe2(in_pipe, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(out_pipe, O_CLOEXEC), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                if (dup2(in_pipe[0], 0) < 0 || dup2(out_pipe[1], 1) < 0 || dup2(out_pipe[1], 2) < 0)
                        _exit(127);
                execl(PYTHON, PYTHON, script, arg, (char *)NULL);
                _exit(127);
        }
        close(in_pipe[0]);
        close(out_pipe[1]);
        /* The checker reads all of its input before it writes anything, so
         * writing it all first cannot deadlock. */
        for (size_t off = 0; off < len;) {
                ssize_t k = write(in_pipe[1], input + off, len - off);
                cr_assert_gt(k, 0, "writing to the checker: %s", strerror(errno));
                off += (size_t)k;
        }
        close(in_pipe[1]);
        /* Read to the end, keeping what fits: a checker blocked on a full
         * pipe would never exit. */
        size_t got = 0;
        for (;;) {
                char chunk[4096];
                ssize_t k = read(out_pipe[0], chunk, sizeof chunk);
                if (k < 0 && errno == EINTR)
                        continue;
                cr_assert_geq(k, 0, "reading the checker's output: %s", strerror(errno));
                if (k == 0)
                        break;
                size_t keep = (size_t)k < out_size - 1 - got ? (size_t)k : out_size - 1 - got;
                memcpy(out + got, chunk, keep);
                got += keep;
        }
        out[got] = '\0';
        close(out_pipe[0]);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "the checker died (status %d)", status);
        return WEXITSTATUS(status);
}

static void expect_checker_accepts(const char *body) {
        char out[4096];
        int rc = run_checker(NULL, body, strlen(body), out, sizeof out);
        cr_assert_eq(rc, 0, "check-prometheus.py refused the body (exit %d):\n%s\nbody:\n%s", rc, out, body);
}

/* --- the lines -------------------------------------------------------------- */

Test(metrics, zero_snapshot_has_every_series) {
        const ServerStats zero = {0};
        MetricsSnapshot m = {.stats = &zero};
        char *body = render(&m);

        expect_line(body, "# HELP epoll_broadcaster_messages_total Messages received for relay.");
        expect_line(body, "# TYPE epoll_broadcaster_messages_total counter");
        expect_line(body, "epoll_broadcaster_messages_total 0");
        /* HELP text escapes only backslash and LF: quotes stay as they are. */
        expect_line(body,
                    "# HELP epoll_broadcaster_dropped_messages_total Messages skipped for slow readers "
                    "(slow_client = \"drop\"), counted once per reader.");
        const char *protocols[] = {"line", "websocket", "metrics"};
        char line[256];
        for (size_t p = 0; p < 3; p++) {
                for (size_t t = 0; t < 2; t++) {
                        snprintf(line, sizeof line,
                                 "epoll_broadcaster_clients{protocol=\"%s\",tls=\"%s\"} 0", protocols[p],
                                 t ? "true" : "false");
                        expect_line(body, line);
                }
                snprintf(line, sizeof line, "epoll_broadcaster_listeners{protocol=\"%s\"} 0", protocols[p]);
                expect_line(body, line);
        }
        expect_line(body, "# TYPE epoll_broadcaster_clients gauge");
        expect_line(body, "# TYPE epoll_broadcaster_listeners gauge");
        cr_assert_eq(body[strlen(body) - 1], '\n');
        free(body);
}

Test(metrics, every_counter_under_its_name) {
        MetricsSnapshot m = distinct_snapshot();
        char *body = render(&m);

        expect_family(body, "connections_accepted_total", "counter", 101);
        expect_family(body, "messages_total", "counter", 102);
        expect_family(body, "received_bytes_total", "counter", 103);
        expect_family(body, "dropped_messages_total", "counter", 104);
        expect_family(body, "slow_disconnects_total", "counter", 105);
        expect_family(body, "oversize_disconnects_total", "counter", 106);
        expect_family(body, "rejected_connections_total", "counter", 107);
        expect_family(body, "partial_disconnects_total", "counter", 108);
        expect_family(body, "discarded_bytes_total", "counter", 109);
        expect_family(body, "tls_handshake_failures_total", "counter", 110);
        expect_family(body, "http_requests_total", "counter", 111);
        expect_family(body, "http_refused_total", "counter", 112);
        expect_family(body, "websocket_upgrades_total", "counter", 113);
        expect_family(body, "websocket_errors_total", "counter", 114);
        expect_family(body, "ping_timeouts_total", "counter", 115);
        expect_family(body, "tls_handshakes", "gauge", 201);
        expect_family(body, "queue_memory_bytes", "gauge", 202);
        expect_family(body, "partial_memory_bytes", "gauge", 203);
        expect_family(body, "start_time_seconds", "gauge", 1700000000);
        free(body);
}

Test(metrics, clients_and_listeners_by_protocol) {
        MetricsSnapshot m = distinct_snapshot();
        char *body = render(&m);

        expect_line(body, "epoll_broadcaster_clients{protocol=\"line\",tls=\"false\"} 10");
        expect_line(body, "epoll_broadcaster_clients{protocol=\"line\",tls=\"true\"} 11");
        expect_line(body, "epoll_broadcaster_clients{protocol=\"websocket\",tls=\"false\"} 20");
        expect_line(body, "epoll_broadcaster_clients{protocol=\"websocket\",tls=\"true\"} 21");
        expect_line(body, "epoll_broadcaster_clients{protocol=\"metrics\",tls=\"false\"} 30");
        expect_line(body, "epoll_broadcaster_clients{protocol=\"metrics\",tls=\"true\"} 31");
        expect_line(body, "epoll_broadcaster_listeners{protocol=\"line\"} 300");
        expect_line(body, "epoll_broadcaster_listeners{protocol=\"websocket\"} 301");
        expect_line(body, "epoll_broadcaster_listeners{protocol=\"metrics\"} 302");
        free(body);
}

/* Exactly the families of the contract, each with HELP and TYPE once: a
 * metric added, renamed or lost shows here. */
Test(metrics, exactly_the_families) {
        MetricsSnapshot m = distinct_snapshot();
        char *body = render(&m);
        int types = 0, helps = 0, samples = 0;
        for (const char *p = body; *p; p = strchr(p, '\n') + 1) {
                if (strncmp(p, "# TYPE epoll_broadcaster_", 25) == 0)
                        types++;
                else if (strncmp(p, "# HELP epoll_broadcaster_", 25) == 0)
                        helps++;
                else if (strncmp(p, "epoll_broadcaster_", 18) == 0)
                        samples++;
                else
                        cr_assert_fail("unexpected line: %.*s", (int)(strchr(p, '\n') - p), p);
        }
        /* 15 counters, clients, listeners, 4 plain gauges. */
        cr_assert_eq(types, 21);
        cr_assert_eq(helps, 21);
        cr_assert_eq(samples, 15 + 6 + 3 + 4);
        free(body);
}

Test(metrics, largest_values) {
        MetricsSnapshot m = max_snapshot();
        char *body = render(&m);

        expect_line(body, "epoll_broadcaster_messages_total 18446744073709551615");
        expect_line(body,
                    "epoll_broadcaster_clients{protocol=\"metrics\",tls=\"true\"} 18446744073709551615");
        expect_line(body, "epoll_broadcaster_start_time_seconds 18446744073709551615");
        free(body);
}

Test(metrics, same_snapshot_same_body) {
        MetricsSnapshot m = distinct_snapshot();
        char *a = render(&m), *b = render(&m);
        cr_assert_str_eq(a, b);
        free(a);
        free(b);
}

/* --- buffer sizes --------------------------------------------------------- */

/* At every size below the body's length: -ENOBUFS and nothing written past
 * size (the guard bytes stay). At the exact length: the body, no NUL after. */
static void check_sizes(const MetricsSnapshot *m) {
        char *want = render(m);
        size_t need = strlen(want);
        char *buf = malloc(need + 16);
        cr_assert_not_null(buf);

        for (size_t size = 0; size <= need; size++) {
                memset(buf, GUARD, need + 16);
                ssize_t n = metrics_render(m, size ? buf : NULL, size);
                if (size < need) {
                        cr_assert_eq(n, -ENOBUFS, "size %zu of %zu: returned %zd", size, need, n);
                } else {
                        cr_assert_eq(n, (ssize_t)need);
                        cr_assert(memcmp(buf, want, need) == 0);
                }
                for (size_t i = size; i < need + 16; i++)
                        cr_assert_eq((unsigned char)buf[i], GUARD, "size %zu: byte %zu written", size, i);
        }
        free(buf);
        free(want);
}

Test(metrics, too_small_at_every_size_zero_snapshot) {
        const ServerStats zero = {0};
        MetricsSnapshot m = {.stats = &zero};
        check_sizes(&m);
}

Test(metrics, too_small_at_every_size_largest_snapshot) {
        MetricsSnapshot m = max_snapshot();
        check_sizes(&m);
}

/* The size a caller allocates from the header is enough for the longest body. */
Test(metrics, largest_body_fits_the_maximum) {
        MetricsSnapshot m = max_snapshot();
        char buf[METRICS_BODY_MAX];
        ssize_t n = metrics_render(&m, buf, sizeof buf);
        cr_assert_gt(n, 0);
        cr_assert_leq(n, METRICS_BODY_MAX);
}

/* --- the format checker ----------------------------------------------------- */

Test(metrics, checker_self_test) {
        skip_without_python();
        char out[8192];
        int rc = run_checker("--self-test", "", 0, out, sizeof out);
        cr_assert_eq(rc, 0, "check-prometheus.py --self-test failed:\n%s", out);
}

Test(metrics, checker_refuses_a_cut_body) {
        skip_without_python();
        MetricsSnapshot m = distinct_snapshot();
        char *body = render(&m);
        char out[4096];
        size_t len = strlen(body);
        /* Cut inside the last sample: no final LF. */
        int rc = run_checker(NULL, body, len - 3, out, sizeof out);
        cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
        cr_assert(strstr(out, "does not end with a line feed"), "%s", out);
        free(body);
}

Test(metrics, checker_accepts_zero_snapshot) {
        skip_without_python();
        const ServerStats zero = {0};
        MetricsSnapshot m = {.stats = &zero};
        char *body = render(&m);
        expect_checker_accepts(body);
        free(body);
}

Test(metrics, checker_accepts_distinct_snapshot) {
        skip_without_python();
        MetricsSnapshot m = distinct_snapshot();
        char *body = render(&m);
        expect_checker_accepts(body);
        free(body);
}

Test(metrics, checker_accepts_largest_snapshot) {
        skip_without_python();
        MetricsSnapshot m = max_snapshot();
        char *body = render(&m);
        expect_checker_accepts(body);
        free(body);
}

Test(metrics, checker_accepts_various_client_counts) {
        skip_without_python();
        static const uint64_t counts[] = {0, 1, 9, 10, 99, 1000, 65536, 4294967296ULL, UINT64_MAX - 1};
        MetricsSnapshot m = distinct_snapshot();
        for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
                for (size_t p = 0; p < N_METRICS_PROTOCOLS; p++)
                        for (size_t t = 0; t < 2; t++)
                                m.clients[p][t] =
                                        counts[(i + p * 2 + t) % (sizeof(counts) / sizeof(counts[0]))];
                char *body = render(&m);
                char line[128];
                snprintf(line, sizeof line,
                         "epoll_broadcaster_clients{protocol=\"line\",tls=\"false\"} %" PRIu64, counts[i]);
                expect_line(body, line);
                expect_checker_accepts(body);
                free(body);
        }
}
