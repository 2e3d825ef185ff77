/* The hub: clients, listeners, the broadcast log, limits, signals, reload
 * and statistics. The only module that decides policy. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "listener.h"
#include "tls.h"

typedef struct Server Server;

typedef struct ServerStats {
        uint64_t accepted;
        uint64_t messages;
        uint64_t bytes;
        uint64_t dropped;
        uint64_t slow_disconnects;
        uint64_t oversize;
        uint64_t rejected;
        uint64_t partial_disconnects; /* over max_partial_bytes or partial_timeout */
        uint64_t discarded;           /* bytes read from subscribe-only clients and dropped */
        uint64_t tls_failures;        /* handshakes failed or timed out */
        uint64_t http_requests;       /* request heads read on websocket and metrics listeners */
        uint64_t http_refused;        /* answered with an HTTP error (a timeout's 408 included) */
        uint64_t websocket_upgrades;  /* WebSocket connections established */
        uint64_t websocket_errors; /* closed for a protocol error (1002), an LF (1003), bad UTF-8 (1007) */
        uint64_t ping_timeouts;    /* WebSocket clients closed for not answering a ping */
} ServerStats;

/* Takes ownership of 'config'. Creates the event loop, the broadcast log,
 * the signalfd (the caller has blocked the signals) and the housekeeping
 * timer; listens on nothing yet. 'config_path' is re-read on SIGHUP;
 * 'must_exist' as for config_load() at start (a reload always needs the
 * file). Returns 0 or -errno, having logged why. */
int server_new(Server **ret, Config *config, const char *config_path, bool must_exist);

/* Loads the configuration as config_load() does, and builds the TLS
 * context of its 'tls' group when it has one (*ret_tls NULL otherwise): an
 * unusable certificate, key or cipher list is a configuration error too.
 * Returns 0, or -errno with one line in err naming the file, line and
 * setting. */
int server_load_config(const char *path, bool must_exist, Config **ret, TlsContext **ret_tls,
                       bool *ret_used_defaults, char *err, size_t errlen);
/* Takes ownership of the TLS context for TLS listeners (NULL: none). */
void server_set_tls(Server *s, TlsContext *tls);

/* Serves the sockets systemd passed, or else binds the configured
 * addresses. Returns 0 or -errno, having logged why. */
int server_listen(Server *s);

/* Takes a connected stream socket as a new client (closing it when
 * max_clients is reached). 'peer' is its address as accept() gave it;
 * 'spec' is its listener's (it must outlive the client's request phase). */
void server_add_connection(Server *s, int fd, const struct sockaddr *peer, socklen_t peer_len,
                           const ConnSpec *spec);

/* One round: waits up to timeout_ms for events (-1: until one comes), reads
 * and relays, writes, frees what was closed. Returns 0 or -errno. */
int server_run_once(Server *s, int timeout_ms);
/* Reports readiness, then serves until a stop signal; returns 0 after a
 * clean stop or -errno. */
int server_run(Server *s);

const ServerStats *server_stats(const Server *s);
size_t server_clients(const Server *s);
/* Bytes held in blocks of the broadcast log and in unfinished lines. */
size_t server_queue_memory(const Server *s);
size_t server_partial_memory(const Server *s);

Server *server_free(Server *s);
static inline void server_freep(Server **s) {
        server_free(*s);
}
#define _cleanup_server_ _cleanup_(server_freep)

/* The signals the server reads through its signalfd. */
#define SERVER_SIGNALS SIGTERM, SIGINT, SIGHUP, SIGUSR1
