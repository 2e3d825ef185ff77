/* Integration tests of metrics listeners with the real daemon, over raw TCP
 * on loopback: GET /metrics answers the Prometheus text format (checked by
 * check-prometheus.py) with the figures of SIGUSR1's statistics line; every
 * other request gets its HTTP error and the connection is closed; a
 * metrics connection gets no broadcast messages, and scrapes do not disturb
 * the line clients. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "http.h"

TestSuite(scrape, .fini = harness_cleanup, .timeout = 120);

#define PYTHON "/usr/bin/python3"
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define GET_METRICS "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

/* --- the daemon ------------------------------------------------------------- */

typedef struct ScrapeSettings {
        unsigned request_timeout;
        const char *extra;
} ScrapeSettings;

static char *scrape_conf(Daemon *d __attribute__((unused)), const uint16_t *port, const void *arg) {
        const ScrapeSettings *t = arg;
        char *conf;
        cr_assert(asprintf(&conf,
                           "listen = ( \"127.0.0.1:@PORT@\", "
                           "{ address = \"127.0.0.1:%u\"; protocol = \"metrics\"; } );\n"
                           "log_level = \"info\";\nrequest_timeout = %u;\n%s\n",
                           port[0], t->request_timeout, t->extra ? t->extra : "") > 0);
        return conf;
}

/* Starts the daemon with a line listener on d->port and a metrics listener
 * on the port returned, both on 127.0.0.1, and 'extra' settings. */
static uint16_t start_daemon(Daemon *d, unsigned request_timeout, const char *extra) {
        uint16_t port;
        ScrapeSettings t = {.request_timeout = request_timeout, .extra = extra};
        daemon_exec_ports(d, &port, 1, 1, scrape_conf, &t);
        return port;
}

/* Waits until the daemon counts n connections (SIGUSR1's clients=). */
static void wait_clients(Daemon *d, long long n) {
        long long got = daemon_wait_stat(d, "clients", n, 5000);
        cr_assert_eq(got, n, "the daemon has %lld connections, expected %lld", got, n);
}

/* --- HTTP over a raw socket ----------------------------------------------- */

/* What the server sent on one connection, up to its close. */
typedef struct Response {
        char *raw; /* NUL-terminated */
        size_t len;
        int status;
        size_t head_len; /* through the empty line */
        const char *body;
        size_t body_len;
} Response;

/* Reads until the server closes, within timeout_ms: every response but a
 * 101 ends the connection. */
static Response read_response(int fd, int timeout_ms) {
        Response r = {0};
        size_t cap = 16384;
        r.raw = malloc(cap);
        cr_assert_not_null(r.raw);
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                int left = (int)(deadline - harness_now_ms());
                cr_assert_gt(left, 0, "the server did not close within %d ms (got %zu bytes: '%.*s')",
                             timeout_ms, r.len, (int)r.len, r.raw);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, left) == 0)
                        continue;
                if (r.len + 1 >= cap) {
                        cap *= 2;
                        r.raw = realloc(r.raw, cap);
                        cr_assert_not_null(r.raw);
                }
                ssize_t n = recv(fd, r.raw + r.len, cap - 1 - r.len, MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                cr_assert_geq(n, 0, "reading the response: %s (after %zu bytes: '%.*s')", strerror(errno),
                              r.len, (int)r.len, r.raw);
                if (n == 0)
                        break;
                r.len += (size_t)n;
        }
        r.raw[r.len] = '\0';
        const char *end = strstr(r.raw, "\r\n\r\n");
        cr_assert_not_null(end, "no end of the response head in '%s'", r.raw);
        r.head_len = (size_t)(end + 4 - r.raw);
        r.body = r.raw + r.head_len;
        r.body_len = r.len - r.head_len;
        cr_assert(sscanf(r.raw, "HTTP/1.1 %3d ", &r.status) == 1, "not an HTTP/1.1 status line: '%s'",
                  r.raw);
        return r;
}

static void response_free(Response *r) {
        free(r->raw);
}

/* Sends the request on a fresh connection and reads the answer. */
static Response exchange(uint16_t port, const char *request, size_t len) {
        int fd = client_connect(port);
        client_send(fd, request, len);
        Response r = read_response(fd, 5000);
        close(fd);
        return r;
}

static Response exchange_str(uint16_t port, const char *request) {
        return exchange(port, request, strlen(request));
}

/* The line of header field 'name' (compared without case), or NULL; fails
 * when it is there twice. */
static const char *find_header(const Response *r, const char *name) {
        size_t name_len = strlen(name);
        const char *found = NULL;
        for (const char *line = strstr(r->raw, "\r\n") + 2; line < r->raw + r->head_len - 2;
             line = strstr(line, "\r\n") + 2) {
                if (strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
                        continue;
                cr_assert_null(found, "header %s twice in:\n%.*s", name, (int)r->head_len, r->raw);
                found = line;
        }
        return found;
}

/* The value of header field 'name', without the blanks around it; fails
 * when it is missing. The result is a static buffer. */
static const char *header(const Response *r, const char *name) {
        static char value[512];
        const char *line = find_header(r, name);
        cr_assert_not_null(line, "no header %s in:\n%.*s", name, (int)r->head_len, r->raw);
        const char *v = line + strlen(name) + 1;
        v += strspn(v, " \t");
        size_t n = strcspn(v, "\r");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
        cr_assert_lt(n, sizeof(value));
        memcpy(value, v, n);
        value[n] = '\0';
        return value;
}

static void expect_content_length(const Response *r) {
        char want[32];
        snprintf(want, sizeof want, "%zu", r->body_len);
        cr_assert_str_eq(header(r, "Content-Length"), want, "Content-Length against a body of %zu bytes",
                         r->body_len);
}

static void expect_connection_close(const Response *r) {
        cr_assert(strcasecmp(header(r, "Connection"), "close") == 0, "Connection: %s",
                  header(r, "Connection"));
}

/* An error answer: its status line, a short text/plain body of the length
 * announced, Connection: close (the close itself read_response saw). */
static void expect_error(const Response *r, const char *status_line, const char *what) {
        size_t n = strlen(status_line);
        cr_assert(strncmp(r->raw, status_line, n) == 0 && strncmp(r->raw + n, "\r\n", 2) == 0,
                  "%s: want '%s', got:\n%s", what, status_line, r->raw);
        cr_assert(strncmp(header(r, "Content-Type"), "text/plain", 10) == 0, "%s: Content-Type %s", what,
                  header(r, "Content-Type"));
        expect_content_length(r);
        cr_assert_gt(r->body_len, 0, "%s: an empty error body", what);
        cr_assert_eq(r->body[r->body_len - 1], '\n', "%s: the body does not end with a LF", what);
        expect_connection_close(r);
}

/* A whole GET /metrics answer; returns the body (NUL-terminated, free() it). */
static char *scrape(uint16_t port) {
        Response r = exchange_str(port, GET_METRICS);
        cr_assert_eq(r.status, 200, "GET /metrics:\n%s", r.raw);
        cr_assert(strncmp(r.raw, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r.raw);
        cr_assert_str_eq(header(&r, "Content-Type"), CONTENT_TYPE);
        expect_content_length(&r);
        expect_connection_close(&r);
        cr_assert(r.body_len > 0 && r.body[r.body_len - 1] == '\n', "body:\n%s", r.body);
        char *body = strdup(r.body);
        cr_assert_not_null(body);
        response_free(&r);
        return body;
}

/* --- the exposition --------------------------------------------------------- */

/* The value of one series ("name" or "name{labels}" as written); fails when
 * it is missing, not an integer, or there twice. */
static unsigned long long sample(const char *body, const char *series) {
        size_t n = strlen(series);
        const char *found = NULL;
        for (const char *line = body; *line; line = strchr(line, '\n') + 1) {
                if (strncmp(line, series, n) == 0 && line[n] == ' ') {
                        cr_assert_null(found, "series %s twice", series);
                        found = line + n + 1;
                }
        }
        cr_assert_not_null(found, "no series %s in:\n%s", series, body);
        char *end;
        errno = 0;
        unsigned long long v = strtoull(found, &end, 10);
        cr_assert(errno == 0 && end != found && *end == '\n', "series %s: value '%.*s'", series,
                  (int)strcspn(found, "\n"), found);
        return v;
}

static unsigned long long metric(const char *body, const char *name) {
        char series[160];
        snprintf(series, sizeof series, "epoll_broadcaster_%s", name);
        return sample(body, series);
}

static unsigned long long clients(const char *body, const char *protocol, bool tls) {
        char series[160];
        snprintf(series, sizeof series, "epoll_broadcaster_clients{protocol=\"%s\",tls=\"%s\"}", protocol,
                 tls ? "true" : "false");
        return sample(body, series);
}

static unsigned long long clients_sum(const char *body) {
        static const char *const protocols[] = {"line", "websocket", "metrics"};
        unsigned long long sum = 0;
        for (size_t p = 0; p < 3; p++)
                sum += clients(body, protocols[p], false) + clients(body, protocols[p], true);
        return sum;
}

static unsigned long long listeners(const char *body, const char *protocol) {
        char series[160];
        snprintf(series, sizeof series, "epoll_broadcaster_listeners{protocol=\"%s\"}", protocol);
        return sample(body, series);
}

/* Each counter and the field of SIGUSR1's statistics line that is the same
 * figure. */
static const struct {
        const char *metric, *stat;
} counter_stats[] = {
        {"connections_accepted_total", "accepted"},
        {"messages_total", "messages"},
        {"received_bytes_total", "bytes"},
        {"dropped_messages_total", "dropped"},
        {"slow_disconnects_total", "slow_disconnects"},
        {"oversize_disconnects_total", "oversize"},
        {"rejected_connections_total", "rejected"},
        {"partial_disconnects_total", "partial_disconnects"},
        {"discarded_bytes_total", "discarded"},
        {"tls_handshake_failures_total", "tls_failures"},
        {"http_requests_total", "http_requests"},
        {"http_refused_total", "http_refused"},
        {"websocket_upgrades_total", "websocket_upgrades"},
        {"websocket_errors_total", "websocket_errors"},
        {"ping_timeouts_total", "ping_timeouts"},
};

/* Runs check-prometheus.py on body; fails with what it says. */
static void expect_valid_exposition(const Daemon *d, const char *body) {
        char path[192], err_path[192], cmd[1024];
        snprintf(path, sizeof path, "%s/metrics.txt", d->dir);
        snprintf(err_path, sizeof err_path, "%s/check.err", d->dir);
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f);
        cr_assert_eq(fputs(body, f) >= 0 && fclose(f) == 0, true);
        snprintf(cmd, sizeof cmd, PYTHON " '%s/check-prometheus.py' '%s' 2>'%s'", getenv("EB_TESTS_DIR"),
                 path, err_path);
        int rc = system(cmd);
        if (rc != 0) {
                char err[4096] = "";
                f = fopen(err_path, "r");
                if (f) {
                        err[fread(err, 1, sizeof err - 1, f)] = '\0';
                        fclose(f);
                }
                cr_assert_fail("check-prometheus.py refused the body (status %d):\n%s\nbody:\n%s", rc, err,
                               body);
        }
}

/* --- GET and HEAD /metrics -------------------------------------------------- */

Test(scrape, get_metrics) {
        if (access(PYTHON, X_OK) != 0 || !getenv("EB_TESTS_DIR"))
                cr_skip_test(PYTHON
                             " or EB_TESTS_DIR (meson sets it) missing: the format checker cannot run");
        Daemon d;
        long long before = (long long)time(NULL);
        uint16_t port = start_daemon(&d, 1, NULL);
        long long after = (long long)time(NULL);

        char *body = scrape(port);
        expect_valid_exposition(&d, body);
        cr_assert_eq(listeners(body, "line"), 1);
        cr_assert_eq(listeners(body, "websocket"), 0);
        cr_assert_eq(listeners(body, "metrics"), 1);
        /* The scraper itself is the one client. */
        cr_assert_eq(clients(body, "metrics", false), 1);
        cr_assert_eq(clients_sum(body), 1);
        cr_assert_eq(metric(body, "messages_total"), 0);
        cr_assert(daemon_log_contains(&d, "(metrics)", 2000),
                  "no 'connected from ... (metrics)' in the log");
        long long start = (long long)metric(body, "start_time_seconds");
        cr_assert(start >= before - 1 && start <= after + 1,
                  "start_time_seconds %lld, started within [%lld, %lld]", start, before, after);
        free(body);
        daemon_stop(&d);
}

Test(scrape, head_has_no_body) {
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        Response r = exchange_str(port, "HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        cr_assert(strncmp(r.raw, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", r.raw);
        cr_assert_str_eq(header(&r, "Content-Type"), CONTENT_TYPE);
        expect_connection_close(&r);
        cr_assert_eq(r.body_len, 0, "HEAD got %zu bytes of body: '%s'", r.body_len, r.body);
        /* The length a GET would have: not checked to the byte, the figures
         * (and so their digits) move between two requests. */
        cr_assert_gt(strtoul(header(&r, "Content-Length"), NULL, 10), 0);
        response_free(&r);
        daemon_stop(&d);
}

/* The query is not part of the path; an Upgrade header makes no difference
 * on a metrics listener. */
Test(scrape, query_and_upgrade_ignored) {
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        Response r = exchange_str(port, "GET /metrics?name=x&y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        cr_assert_eq(r.status, 200, "%s", r.raw);
        cr_assert_str_eq(header(&r, "Content-Type"), CONTENT_TYPE);
        response_free(&r);

        static const char upgrade[] = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n\r\n";
        char request[512];
        snprintf(request, sizeof request, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", upgrade);
        r = exchange_str(port, request);
        cr_assert_eq(r.status, 200, "GET /metrics with Upgrade:\n%s", r.raw);
        cr_assert_str_eq(header(&r, "Content-Type"), CONTENT_TYPE);
        cr_assert(!find_header(&r, "Sec-WebSocket-Accept"), "%s", r.raw);
        expect_connection_close(&r);
        cr_assert_geq(metric(r.body, "http_requests_total"), 2);
        response_free(&r);

        snprintf(request, sizeof request, "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", upgrade);
        r = exchange_str(port, request);
        expect_error(&r, "HTTP/1.1 404 Not Found", "GET /chat with Upgrade");
        response_free(&r);
        daemon_stop(&d);
}

/* A bare LF ends a line as CR LF does. */
Test(scrape, bare_lf_lines) {
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        Response r = exchange_str(port, "GET /metrics HTTP/1.1\nHost: 127.0.0.1\n\n");
        cr_assert_eq(r.status, 200, "%s", r.raw);
        expect_content_length(&r);
        response_free(&r);
        daemon_stop(&d);
}

/* One request per connection: what follows the head is not answered. */
Test(scrape, pipelined_requests_ignored) {
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        Response r =
                exchange_str(port, GET_METRICS "GET /other HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" GET_METRICS);
        cr_assert_eq(r.status, 200, "%s", r.raw);
        expect_content_length(&r);
        cr_assert_null(strstr(r.body, "HTTP/1.1"), "a second answer:\n%s", r.raw);
        response_free(&r);
        char *body = scrape(port);
        cr_assert_eq(metric(body, "http_requests_total"), 2);
        free(body);
        daemon_stop(&d);
}

/* --- the figures ------------------------------------------------------------ */

/* N line clients, M messages: the counters say so, and say what SIGUSR1's
 * statistics line says. */
Test(scrape, counters_match_what_was_done) {
        enum { N = 4, M = 25 };
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);
        int c[N];
        clients_connect(d.port, c, N);
        /* Without clients_sync(): its sync lines would be messages too. */
        wait_clients(&d, N);

        size_t sent_bytes = 0;
        for (int i = 0; i < M; i++) {
                char line[32];
                int n = snprintf(line, sizeof line, "message %d\n", i);
                client_send(c[0], line, (size_t)n);
                sent_bytes += (size_t)n;
        }
        for (int k = 1; k < N; k++)
                for (int i = 0; i < M; i++) {
                        char want[32];
                        snprintf(want, sizeof want, "message %d\n", i);
                        client_expect_line(c[k], want);
                }
        static const char unfinished[] = "unfinished";
        client_send_str(c[0], unfinished);
        long long partial = daemon_wait_stat(&d, "partial_memory", sizeof(unfinished) - 1, 5000);
        cr_assert_eq(partial, sizeof(unfinished) - 1, "partial_memory=%lld", partial);

        char *body = scrape(port);
        cr_assert_eq(metric(body, "messages_total"), M);
        cr_assert_eq(clients(body, "line", false), N);
        cr_assert_eq(clients(body, "metrics", false), 1);
        cr_assert_eq(clients_sum(body), N + 1, "the line clients and the scraper");
        cr_assert_eq(metric(body, "connections_accepted_total"), N + 1);
        cr_assert_eq(metric(body, "http_requests_total"), 1);
        cr_assert_eq(metric(body, "http_refused_total"), 0);
        cr_assert_geq(metric(body, "received_bytes_total"), sent_bytes + sizeof(unfinished) - 1);
        cr_assert_eq(metric(body, "websocket_upgrades_total"), 0);

        /* The scraper is gone once the daemon has read its close. */
        wait_clients(&d, N);
        for (size_t i = 0; i < sizeof(counter_stats) / sizeof(counter_stats[0]); i++) {
                long long stat = daemon_stat_logged(&d, counter_stats[i].stat);
                cr_assert_eq((long long)metric(body, counter_stats[i].metric), stat,
                             "%s is %llu, SIGUSR1's %s=%lld", counter_stats[i].metric,
                             metric(body, counter_stats[i].metric), counter_stats[i].stat, stat);
        }
        cr_assert_eq((long long)metric(body, "queue_memory_bytes"), daemon_stat_logged(&d, "queue_memory"));
        /* The scraper's own head may be held as unfinished input while it
         * is answered; it is gone by the time of SIGUSR1. */
        long long partial_gauge = (long long)metric(body, "partial_memory_bytes");
        cr_assert_eq(daemon_stat_logged(&d, "partial_memory"), partial);
        cr_assert(partial_gauge >= partial && partial_gauge <= partial + (long long)strlen(GET_METRICS),
                  "partial_memory_bytes %lld: the unfinished line is %lld bytes, the request %zu",
                  partial_gauge, partial, strlen(GET_METRICS));
        free(body);

        /* A second scrape is one more connection and request, no message. */
        body = scrape(port);
        cr_assert_eq(metric(body, "connections_accepted_total"), N + 2);
        cr_assert_eq(metric(body, "http_requests_total"), 2);
        cr_assert_eq(metric(body, "messages_total"), M);
        free(body);

        clients_close(c, N);
        daemon_stop(&d);
}

/* --- HTTP errors ------------------------------------------------------------ */

Test(scrape, other_paths_404) {
        static const char *const paths[] = {"/other",    "/",        "/metrics/",
                                            "/metricsx", "/Metrics", "/metrics.txt"};
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                char request[256];
                snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", paths[i]);
                Response r = exchange_str(port, request);
                expect_error(&r, "HTTP/1.1 404 Not Found", paths[i]);
                response_free(&r);
        }
        daemon_stop(&d);
}

Test(scrape, other_methods_405) {
        static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
                char request[256];
                snprintf(request, sizeof request, "%s /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                         methods[i]);
                Response r = exchange_str(port, request);
                expect_error(&r, "HTTP/1.1 405 Method Not Allowed", methods[i]);
                cr_assert_str_eq(header(&r, "Allow"), "GET, HEAD");
                response_free(&r);
        }
        daemon_stop(&d);
}

/* Each malformed request gets 400 (505 for another HTTP version), and all
 * are counted as requests and as refused. */
Test(scrape, malformed_requests) {
        static const struct {
                const char *what, *request, *status_line;
        } cases[] = {
                {"garbage", "hello there\r\n\r\n", "HTTP/1.1 400 Bad Request"},
                {"binary", "\x16\x03\x01\x02\xfc\x01\x7f\x01\xfc\x03\x03\r\n\r\n",
                 "HTTP/1.1 400 Bad Request"},
                {"no Host", "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
                {"two Hosts", "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                 "HTTP/1.1 400 Bad Request"},
                {"absolute form", "GET http://127.0.0.1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                 "HTTP/1.1 400 Bad Request"},
                {"a field without a colon", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nbad field\r\n\r\n",
                 "HTTP/1.1 400 Bad Request"},
                {"obs-fold", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: 1\r\n 2\r\n\r\n",
                 "HTTP/1.1 400 Bad Request"},
                {"a body", "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello",
                 "HTTP/1.1 400 Bad Request"},
                {"HTTP/1.0", "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                 "HTTP/1.1 505 HTTP Version Not Supported"},
        };
        enum { N_CASES = sizeof(cases) / sizeof(cases[0]) };
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        for (size_t i = 0; i < N_CASES; i++) {
                Response r = exchange_str(port, cases[i].request);
                expect_error(&r, cases[i].status_line, cases[i].what);
                response_free(&r);
        }
        char *body = scrape(port);
        cr_assert_eq(metric(body, "http_refused_total"), N_CASES);
        cr_assert_eq(metric(body, "http_requests_total"), N_CASES + 1);
        free(body);
        daemon_stop(&d);
}

/* "GET /metrics" with a padding field that makes the head exactly len bytes. */
static char *padded_head(size_t len) {
        static const char start[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ";
        static const char end[] = "\r\n\r\n";
        size_t pad = len - (sizeof(start) - 1) - (sizeof(end) - 1);
        char *head = malloc(len + 1);
        cr_assert_not_null(head);
        memcpy(head, start, sizeof(start) - 1);
        memset(head + sizeof(start) - 1, 'p', pad);
        memcpy(head + len - (sizeof(end) - 1), end, sizeof(end));
        return head;
}

/* HTTP_HEAD_MAX bytes, the empty line included, is the most a head may be. */
Test(scrape, oversize_head_431) {
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        char *head = padded_head(HTTP_HEAD_MAX);
        Response r = exchange(port, head, HTTP_HEAD_MAX);
        cr_assert_eq(r.status, 200, "a head of exactly %d bytes:\n%.200s", HTTP_HEAD_MAX, r.raw);
        response_free(&r);
        free(head);

        head = padded_head(HTTP_HEAD_MAX + 1);
        r = exchange(port, head, HTTP_HEAD_MAX + 1);
        expect_error(&r, "HTTP/1.1 431 Request Header Fields Too Large",
                     "a head of HTTP_HEAD_MAX + 1 bytes");
        response_free(&r);
        free(head);

        /* A head that never ends: the answer comes while the client still
         * sends, and the server reads what follows rather than reset the
         * connection under its answer. */
        int fd = client_connect(port);
        char chunk[4096];
        memset(chunk, 'x', sizeof chunk);
        client_send_str(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: ");
        for (int i = 0; i < 8; i++)
                cr_assert(client_try_send(fd, chunk, sizeof chunk, 5000), "send %d: the server reset", i);
        r = read_response(fd, 5000);
        expect_error(&r, "HTTP/1.1 431 Request Header Fields Too Large", "an endless head");
        response_free(&r);
        close(fd);
        daemon_stop(&d);
}

/* request_timeout = 1: a head not complete within it gets 408, whether
 * nothing came, part of a head, or a head dribbled a byte at a time (the
 * time runs from the connection, not from the last byte). */
Test(scrape, request_timeout_408) {
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);

        int silent = client_connect(port);
        int partial = client_connect(port);
        client_send_str(partial, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        int dribble = client_connect(port);
        int64_t start = harness_now_ms();

        /* One byte of an endless field every 100 ms until the answer. */
        client_send_str(dribble, "GET /metrics HTTP/1.1\r\nX-Slow: ");
        struct pollfd p = {.fd = dribble, .events = POLLIN};
        while (poll(&p, 1, 100) == 0) {
                cr_assert_lt(harness_now_ms() - start, harness_ms(4000),
                             "no answer to a dribbled head in 4 s");
                client_send(dribble, "z", 1);
        }
        Response r = read_response(dribble, 5000);
        expect_error(&r, "HTTP/1.1 408 Request Timeout", "a dribbled head");
        response_free(&r);

        r = read_response(silent, 4000);
        expect_error(&r, "HTTP/1.1 408 Request Timeout", "nothing sent");
        response_free(&r);
        r = read_response(partial, 4000);
        expect_error(&r, "HTTP/1.1 408 Request Timeout", "part of a head");
        response_free(&r);
        /* request_timeout, +-1 s for the housekeeping tick. */
        cr_assert_leq(harness_now_ms() - start, harness_ms(3500));
        close(silent);
        close(partial);
        close(dribble);

        char *body = scrape(port);
        cr_assert_eq(metric(body, "http_refused_total"), 3);
        free(body);
        daemon_stop(&d);
}

/* A client that goes away before its head is complete was refused
 * nothing: it is not counted as a request. */
Test(scrape, gone_before_head_not_counted) {
        Daemon d;
        uint16_t port = start_daemon(&d, 10, NULL);

        int fd = client_connect(port);
        client_send_str(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        wait_clients(&d, 1);
        close(fd);
        wait_clients(&d, 0);
        cr_assert_eq(daemon_stat_logged(&d, "http_requests"), 0);
        cr_assert_eq(daemon_stat_logged(&d, "http_refused"), 0);

        char *body = scrape(port);
        cr_assert_eq(metric(body, "http_requests_total"), 1);
        cr_assert_eq(metric(body, "http_refused_total"), 0);
        cr_assert_eq(metric(body, "connections_accepted_total"), 2);
        free(body);
        daemon_stop(&d);
}

/* Not before request_timeout either (less the tick's second). */
Test(scrape, request_timeout_not_early) {
        Daemon d;
        uint16_t port = start_daemon(&d, 3, NULL);

        int fd = client_connect(port);
        int64_t start = harness_now_ms();
        client_send_str(fd, "GET /metrics HTTP/1.1\r\n");
        Response r = read_response(fd, 7000);
        int64_t took = harness_now_ms() - start;
        expect_error(&r, "HTTP/1.1 408 Request Timeout", "part of a head");
        cr_assert_geq(took, 1900, "408 after %" PRId64 " ms with request_timeout = 3", took);
        response_free(&r);
        close(fd);
        daemon_stop(&d);
}

/* --- beside the line clients ------------------------------------------------ */

/* A metrics connection is not a subscriber: messages relayed while its
 * request is pending do not reach it, nor come in its answer. */
Test(scrape, no_broadcast_to_metrics_connections) {
        Daemon d;
        uint16_t port = start_daemon(&d, 10, NULL);
        int c[2];
        clients_connect(d.port, c, 2);
        int m = client_connect(port);
        client_send_str(m, "GET /metrics HTTP/1.1\r\n");
        wait_clients(&d, 3);

        client_send_str(c[0], "first\n");
        client_send_str(c[0], "second\n");
        client_expect_line(c[1], "first\n");
        client_expect_line(c[1], "second\n");
        client_expect_nothing(m, 300);

        client_send_str(m, "Host: 127.0.0.1\r\n\r\n");
        Response r = read_response(m, 5000);
        cr_assert_eq(r.status, 200, "%s", r.raw);
        expect_content_length(&r);
        cr_assert_null(strstr(r.raw, "first"), "a message in the metrics answer:\n%s", r.raw);
        cr_assert_eq(metric(r.body, "messages_total"), 2);
        response_free(&r);
        close(m);
        clients_close(c, 2);
        daemon_stop(&d);
}

/* Metrics connections are connections: they count towards max_clients. */
Test(scrape, metrics_connections_count_towards_max_clients) {
        Daemon d;
        uint16_t port = start_daemon(&d, 10, "max_clients = 2;");
        int line = client_connect(d.port);
        int m = client_connect(port);
        client_send_str(m, "GET /metrics HTTP/1.1\r\n");
        wait_clients(&d, 2);

        int refused = client_connect(d.port);
        cr_assert(client_wait_closed(refused, 5000), "a third connection was not refused");
        close(refused);
        cr_assert_eq(daemon_stat(&d, "rejected"), 1);

        client_send_str(m, "Host: 127.0.0.1\r\n\r\n");
        Response r = read_response(m, 5000);
        cr_assert_eq(r.status, 200, "%s", r.raw);
        cr_assert_eq(metric(r.body, "rejected_connections_total"), 1);
        cr_assert_eq(clients_sum(r.body), 2);
        response_free(&r);
        close(m);
        close(line);
        daemon_stop(&d);
}

typedef struct Scraper {
        uint16_t port;
        int done, want;
        unsigned long long last_messages;
} Scraper;

static bool scrape_tick(void *arg) {
        Scraper *s = arg;
        char *body = scrape(s->port);
        unsigned long long messages = metric(body, "messages_total");
        cr_assert_geq(messages, s->last_messages, "messages_total went down");
        s->last_messages = messages;
        free(body);
        return ++s->done < s->want;
}

/* Line clients keep relaying, every message whole and in order, while
 * scrapes come one after the other and a slow request hangs on. */
Test(scrape, scrapes_do_not_disturb_line_clients) {
        enum { COUNT = 10000, LEN = 64 };
        Daemon d;
        uint16_t port = start_daemon(&d, 1, NULL);
        int c[3];
        clients_connect(d.port, c, 3);
        clients_sync(c, 3, false);
        int pending = client_connect(port);
        client_send_str(pending, "GET /metrics HTTP/1.1\r\n");

        SeqReader r0, r1;
        seq_reader_init(&r0, c[0], LEN, true);
        seq_reader_init(&r1, c[1], LEN, true);
        SeqReader *readers[] = {&r0, &r1};
        Scraper s = {.port = port, .want = 40};
        pump_seq_tick(c[2], readers, 2, COUNT, LEN, NULL, NULL, 60000, scrape_tick, &s);
        seq_reader_expect_all(&r0, COUNT, "reader 0");
        seq_reader_expect_all(&r1, COUNT, "reader 1");
        seq_reader_free(&r0);
        seq_reader_free(&r1);

        Response resp = read_response(pending, 5000);
        expect_error(&resp, "HTTP/1.1 408 Request Timeout", "the pending request");
        response_free(&resp);
        close(pending);

        char *body = scrape(port);
        cr_assert_geq(metric(body, "messages_total"), COUNT);
        cr_assert_eq(metric(body, "http_requests_total"), (unsigned long long)s.want + 2);
        free(body);
        clients_close(c, 3);
        daemon_check_relays(&d);
        daemon_stop(&d);
}
