/* The hub's state, shared by the files that make up the server and by
 * nothing else: server.c (clients, input, limits, output, accepting),
 * server-control.c (signals: stop, reload, statistics) and server-timer.c
 * (the housekeeping tick). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "bcastlog.h"
#include "client.h"
#include "config.h"
#include "listener.h"
#include "loop.h"
#include "ratelimit.h"
#include "tls.h"
#include "server.h"

#define USEC_PER_SEC 1000000ULL
#define READ_BUFFER_SIZE (128 * 1024)

typedef enum Phase {
        PHASE_RUNNING,
        PHASE_DRAINING,
        PHASE_DONE,
} Phase;

/* Each kind of limit warning is rate-limited on its own. */
typedef enum Warning {
        WARN_FULL,
        WARN_SLOW,
        WARN_OVERSIZE,
        WARN_ACCEPT,
        WARN_PARTIAL,
        WARN_TLS,
        WARN_DISCARD,
        WARN_HTTP,
        WARN_WEBSOCKET,
        WARN_ERROR,
        N_WARNINGS,
} Warning;

/* Every client is on exactly one list:
 *   flush_list    writable, something queued
 *   idle_list     writable, caught up (spliced into flush_list in O(1)
 *                 whenever the log grows)
 *   blocked_list  socket full, waiting for an EPOLLOUT edge
 *   linger_list   nothing more to send: stopping (FIN sent), or a write
 *                 failed and what the peer sent before is still being read
 *   quiet_list    never written to (yet): publish-only clients, and TLS
 *                 clients in their handshake; no cursor, so they pin nothing
 *   closing_list  closed this round; freed (and its fd closed) at the end
 * so nothing is ever freed during a traversal. */
/* one per process; fields grouped by role, not size */
/* NOLINTNEXTLINE(clang-analyzer-optin.performance.Padding) */
struct Server {
        Loop *loop;
        Config *config;
        char *config_path;
        bool config_must_exist;
        BcastLog *log;
        Listener *listeners;
        size_t n_listeners;
        bool socket_activated; /* listeners came from systemd, not 'listen' */
        Source signal_src;
        Source timer_src;
        ListNode flush_list, idle_list, blocked_list, linger_list, quiet_list, closing_list;
        TlsContext *tls;   /* for TLS listeners; NULL when none is configured */
        size_t handshakes; /* TLS clients still in their handshake */
        size_t n_clients;
        size_t n_ws;                                /* clients of websocket and metrics listeners */
        uint64_t clients_by[N_LISTEN_PROTOCOLS][2]; /* by protocol, plain / TLS */
        BcastLog *wslog;     /* the framed copy WebSocket readers read; NULL without a websocket listener */
        size_t ws_readers;   /* cursors in it */
        uint64_t start_time; /* seconds since the epoch */
        uint64_t last_id;
        bool log_grew;
        uint64_t blocked_check_at;
        uint64_t round_budget;  /* bytes this round may still append to the log */
        uint64_t partial_bytes; /* unfinished lines held, all clients together */
        Phase phase;
        int stop_signal; /* SIGTERM/SIGINT seen this round: the stop begins at its end */
        uint64_t drain_deadline;
        int reserve_fd;     /* spent to refuse connections at EMFILE */
        size_t free_floor;  /* least free heap seen since the last trim */
        uint64_t tick_usec; /* housekeeping period, shorter under a watchdog */
        bool watchdog;
        char status[256]; /* last STATUS= sent */
        ServerStats stats;
        RateLimit warn_limit[N_WARNINGS];
        char rbuf[READ_BUFFER_SIZE];
};

uint64_t now_usec(void);

/* Logs a warning of 'kind' unless its rate limit refuses it; about client
 * c (may be NULL), whose address is formatted only when the line is
 * written. */
void server_warn(Server *s, Warning kind, const Client *c, const char *fmt, ...) _printf_(4, 5);

/* Appends whole messages of c's with the prefix (may be empty) and an
 * optional LF; 'valid_utf8' when msg is known to be. Returns 0, or a
 * negative code once c has been closed. */
int server_publish(Server *s, Client *c, const char *prefix, size_t prefix_len, const char *msg, size_t len,
                   bool add_lf, bool valid_utf8);
/* Removes c's cursor from the log it reads (if it has one). */
void server_release_cursor(Server *s, Client *c);
/* The input of a subscribe-only client: counted and thrown away. */
void server_discard(Server *s, Client *c, size_t n);
/* c's unfinished input was 'before' bytes and may have changed. */
void server_partial_changed(Server *s, Client *c, size_t before);
void server_check_partial_total(Server *s, Client *c);
/* c may be sent broadcast messages from now on (unless publish-only). */
void server_start_receiving(Server *s, Client *c);
/* c has bytes to send that are not broadcast messages: it is flushed at the
 * end of the round (at the next EPOLLOUT if its socket is full). */
void server_want_output(Server *s, Client *c);

/* Stops all I/O on c at once; its memory and fd go at the end of the round.
 * 'why' may be NULL for an orderly close by the peer. */
void server_close_client(Server *s, Client *c, const char *why);
void server_client_list_for_each(Server *s, void (*fn)(Server *s, Client *c, void *arg), void *arg);
/* A client's TCP keepalive as the configuration says (fn for the above). */
void server_tune_keepalive(Server *s, Client *c, void *arg);
/* Reads c again if it was held back and may now go on. */
void server_resume_input(Server *s, Client *c, void *arg);
/* What c's cursor will step over of its own messages, after echo changed. */
void server_recount_own(Server *s, Client *c, void *arg);
/* Nothing more to send to c at a stop: FIN, then drain until the peer
 * closes. */
void server_linger(Server *s, Client *c);
/* Listeners paused for lack of resources are tried again. */
void server_resume_listeners(Server *s);
void server_close_listeners(Server *s);

/* server-websocket.c */
void server_ws_start(Server *s, Client *c);
/* What c sent (a client of a websocket or metrics listener). Returns 0, or
 * a negative code once c has been closed. */
int server_ws_input(Server *s, Client *c, char *data, size_t n, const char *prefix, size_t prefix_len);
/* At a stop: queues a close frame (1001) for an open WebSocket client;
 * false when c has none to send. */
bool server_ws_goodbye(Server *s, Client *c);
/* c's last bytes (its close frame or HTTP response) are sent. */
void server_ws_finish(Server *s, Client *c);
void server_ws_tick(Server *s, uint32_t now);

/* server-control.c */
int server_add_signals(Server *s);
void server_begin_stop(Server *s, const char *signame);
void server_update_status(Server *s);

/* server-timer.c */
int server_add_timer(Server *s);
int server_arm_timer(Server *s, uint64_t interval_usec);
