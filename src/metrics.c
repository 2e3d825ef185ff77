/* The Prometheus text exposition format (0.0.4) of a MetricsSnapshot.
 *
 * Pure: no I/O, no allocation, no logging. Every family has its HELP and
 * TYPE lines before its samples, and the samples of a family are together,
 * as the format requires. The body is built in the caller's buffer and
 * reported only when whole: a scraper must never see a cut exposition,
 * which would parse as a valid one with metrics missing. */

#include "metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

#define METRIC_PREFIX "epoll_broadcaster_"

/* The characters each context escapes with a backslash (the format: HELP
 * text escapes backslash and line feed, label values the double quote too). */
#define HELP_SPECIAL "\\\n"
#define LABEL_VALUE_SPECIAL "\\\"\n"

typedef struct Metric {
        const char *name; /* after METRIC_PREFIX */
        const char *help;
        size_t offset; /* of its uint64_t */
} Metric;

/* In the order of SIGUSR1's stats line, which names the same figures. */
static const Metric counters[] = {
        {"connections_accepted_total", "Connections accepted, on every listener.",
         offsetof(ServerStats, accepted)},
        {"messages_total", "Messages received for relay.", offsetof(ServerStats, messages)},
        {"received_bytes_total", "Bytes received from clients.", offsetof(ServerStats, bytes)},
        {"dropped_messages_total",
         "Messages skipped for slow readers (slow_client = \"drop\"), counted once per reader.",
         offsetof(ServerStats, dropped)},
        {"slow_disconnects_total", "Readers disconnected for going over max_queue_bytes.",
         offsetof(ServerStats, slow_disconnects)},
        {"oversize_disconnects_total", "Senders disconnected for a message over max_message_bytes.",
         offsetof(ServerStats, oversize)},
        {"rejected_connections_total", "Connections refused for max_clients or a lack of file descriptors.",
         offsetof(ServerStats, rejected)},
        {"partial_disconnects_total", "Clients disconnected for partial_timeout or max_partial_bytes.",
         offsetof(ServerStats, partial_disconnects)},
        {"discarded_bytes_total", "Bytes read from subscribe-only clients and discarded.",
         offsetof(ServerStats, discarded)},
        {"tls_handshake_failures_total", "TLS handshakes that failed or timed out.",
         offsetof(ServerStats, tls_failures)},
        {"http_requests_total", "HTTP request heads read on websocket and metrics listeners.",
         offsetof(ServerStats, http_requests)},
        {"http_refused_total", "HTTP requests answered with an error or timed out.",
         offsetof(ServerStats, http_refused)},
        {"websocket_upgrades_total", "WebSocket connections established.",
         offsetof(ServerStats, websocket_upgrades)},
        {"websocket_errors_total",
         "WebSocket connections closed for a protocol error, invalid UTF-8 or a line feed in a message.",
         offsetof(ServerStats, websocket_errors)},
        {"ping_timeouts_total", "WebSocket clients disconnected for not answering a ping.",
         offsetof(ServerStats, ping_timeouts)},
};
/* A ServerStats field added without its metric would go unexported. */
_Static_assert(ARRAY_SIZE(counters) == sizeof(ServerStats) / sizeof(uint64_t),
               "every ServerStats counter is exported");

static const Metric gauges[] = {
        {"tls_handshakes", "TLS handshakes in progress.", offsetof(MetricsSnapshot, tls_handshakes)},
        {"queue_memory_bytes", "Bytes held by the broadcast log.", offsetof(MetricsSnapshot, queue_memory)},
        {"partial_memory_bytes", "Bytes held in unfinished input.",
         offsetof(MetricsSnapshot, partial_memory)},
        {"start_time_seconds", "Start time of the daemon in seconds since the Unix epoch.",
         offsetof(MetricsSnapshot, start_time)},
};

static const char *const protocol_names[N_METRICS_PROTOCOLS] = {
        [METRICS_PROTOCOL_LINE] = "line",
        [METRICS_PROTOCOL_WEBSOCKET] = "websocket",
        [METRICS_PROTOCOL_METRICS] = "metrics",
};
static const char *const tls_names[2] = {"false", "true"};

typedef struct Label {
        const char *name, *value;
} Label;

/* The body so far; once something did not fit, nothing more is written. */
typedef struct Out {
        char *buf;
        size_t size, len;
        bool full;
} Out;

static void put(Out *o, const char *s, size_t n) {
        if (o->full || n > o->size - o->len) {
                o->full = true;
                return;
        }
        memcpy(o->buf + o->len, s, n);
        o->len += n;
}

static void put_str(Out *o, const char *s) {
        put(o, s, strlen(s));
}

static void put_escaped(Out *o, const char *s, const char *special) {
        for (; *s; s++) {
                if (!strchr(special, *s)) {
                        put(o, s, 1);
                        continue;
                }
                put(o, "\\", 1);
                put(o, *s == '\n' ? "n" : s, 1);
        }
}

static void put_u64(Out *o, uint64_t v) {
        char digits[20]; /* UINT64_MAX has 20 */
        size_t i = sizeof(digits);

        do {
                digits[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        put(o, digits + i, sizeof(digits) - i);
}

static void put_family(Out *o, const char *name, const char *help, const char *type) {
        put_str(o, "# HELP " METRIC_PREFIX);
        put_str(o, name);
        put_str(o, " ");
        put_escaped(o, help, HELP_SPECIAL);
        put_str(o, "\n# TYPE " METRIC_PREFIX);
        put_str(o, name);
        put_str(o, " ");
        put_str(o, type);
        put_str(o, "\n");
}

static void put_sample(Out *o, const char *name, const Label *labels, size_t n_labels, uint64_t value) {
        put_str(o, METRIC_PREFIX);
        put_str(o, name);
        for (size_t i = 0; i < n_labels; i++) {
                put_str(o, i == 0 ? "{" : ",");
                put_str(o, labels[i].name);
                put_str(o, "=\"");
                put_escaped(o, labels[i].value, LABEL_VALUE_SPECIAL);
                put_str(o, "\"");
        }
        if (n_labels > 0)
                put_str(o, "}");
        put_str(o, " ");
        put_u64(o, value);
        put_str(o, "\n");
}

/* Families of one unlabelled sample each, read at their offset in base. */
static void put_scalars(Out *o, const Metric *metrics, size_t n, const char *type, const void *base) {
        for (size_t i = 0; i < n; i++) {
                uint64_t v;
                memcpy(&v, (const char *)base + metrics[i].offset, sizeof(v));
                put_family(o, metrics[i].name, metrics[i].help, type);
                put_sample(o, metrics[i].name, NULL, 0, v);
        }
}

ssize_t metrics_render(const MetricsSnapshot *m, char *buf, size_t size) {
        Out o = {.buf = buf, .size = size};

        put_scalars(&o, counters, ARRAY_SIZE(counters), "counter", m->stats);

        /* Every series is written, zero or not: a series that appears only
         * once it is non-zero breaks rate() and absent() in queries. */
        put_family(&o, "clients", "Connected clients, by the protocol of their listener and TLS.", "gauge");
        for (size_t p = 0; p < N_METRICS_PROTOCOLS; p++)
                for (size_t t = 0; t < ARRAY_SIZE(tls_names); t++)
                        put_sample(&o, "clients",
                                   (const Label[]){{"protocol", protocol_names[p]}, {"tls", tls_names[t]}},
                                   2, m->clients[p][t]);

        put_family(&o, "listeners", "Listening sockets, by protocol.", "gauge");
        for (size_t p = 0; p < N_METRICS_PROTOCOLS; p++)
                put_sample(&o, "listeners", &(const Label){"protocol", protocol_names[p]}, 1,
                           m->listeners[p]);

        put_scalars(&o, gauges, ARRAY_SIZE(gauges), "gauge", m);

        return o.full ? -ENOBUFS : (ssize_t)o.len;
}
