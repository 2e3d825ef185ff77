/* The hub: clients, listeners, the broadcast log, limits, signals, reload
 * and statistics. The only module that decides policy. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

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
} ServerStats;

/* Takes ownership of 'config'. Creates the event loop, the broadcast log,
 * the signalfd (the caller has blocked the signals) and the housekeeping
 * timer; listens on nothing yet. 'config_path' is re-read on SIGHUP;
 * 'must_exist' as for config_load() at start (a reload always needs the
 * file). Returns 0 or -errno, having logged why. */
int server_new(Server **ret, Config *config, const char *config_path, bool must_exist);

/* Serves the sockets systemd passed, or else binds the configured
 * addresses. Returns 0 or -errno, having logged why. */
int server_listen(Server *s);

/* Takes a connected stream socket as a new client (closing it when
 * max_clients is reached). 'peer' is its address as accept() gave it. */
void server_add_connection(Server *s, int fd, const struct sockaddr *peer, socklen_t peer_len);

/* One round: waits up to timeout_ms for events (-1: until one comes), reads
 * and relays, writes, frees what was closed. Returns 0 or -errno. */
int server_run_once(Server *s, int timeout_ms);
/* Reports readiness, then serves until a stop signal; returns 0 after a
 * clean stop or -errno. */
int server_run(Server *s);
/* True once the server has stopped. */
bool server_done(const Server *s);

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
