/* The hub's figures in the Prometheus text exposition format (version
 * 0.0.4), for GET /metrics on a metrics listener. Pure: no I/O, no
 * allocation. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "server.h"

typedef enum MetricsProtocol {
        METRICS_PROTOCOL_LINE,
        METRICS_PROTOCOL_WEBSOCKET,
        METRICS_PROTOCOL_METRICS,
        N_METRICS_PROTOCOLS,
} MetricsProtocol;

/* What one scrape reports: the counters of SIGUSR1's line and the gauges
 * of the moment. */
typedef struct MetricsSnapshot {
        const ServerStats *stats;
        /* Connected clients by their listener's protocol, [0] plain, [1] TLS. */
        uint64_t clients[N_METRICS_PROTOCOLS][2];
        uint64_t tls_handshakes; /* TLS handshakes in progress */
        uint64_t listeners[N_METRICS_PROTOCOLS];
        uint64_t queue_memory;   /* bytes of the broadcast log */
        uint64_t partial_memory; /* bytes of unfinished input */
        uint64_t start_time;     /* seconds since the epoch */
} MetricsSnapshot;

/* The largest body metrics_render() writes: a fixed set of metrics. */
#define METRICS_BODY_MAX 8192

/* Writes the exposition into buf. Returns its length, or -ENOBUFS when it
 * does not fit in 'size' bytes. */
ssize_t metrics_render(const MetricsSnapshot *m, char *buf, size_t size);
