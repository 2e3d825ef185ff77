/* Test harness for the integration tests: starts the real daemon (and ebcat)
 * built by meson, on 127.0.0.1 with a temporary config, and talks to it over
 * sockets. Every wait is bounded; every process started is stopped by PID. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Paths of the built programs; meson passes them as EB_DAEMON and EB_EBCAT. */
const char *harness_daemon_path(void);
const char *harness_ebcat_path(void);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t harness_free_port(void);

typedef struct Daemon {
        pid_t pid;
        uint16_t port;          /* 127.0.0.1:port, the first listen address */
        char dir[64];           /* private temporary directory */
        char conf_path[128];    /* dir/eb.conf */
        char log_path[128];     /* dir/stderr.log: the daemon's stderr */
} Daemon;

/* Writes dir/eb.conf with `listen = ["127.0.0.1:PORT"]; log_level = "info";`
 * followed by extra_settings (libconfig text, may be NULL), starts the daemon
 * with `-c dir/eb.conf` and waits (≤ 5 s) until the port accepts. */
void daemon_start(Daemon *d, const char *extra_settings);
/* Same, but with the config text given whole (the test owns 'listen'); does
 * not wait for a port. Used for config-error and exit-code tests. */
void daemon_spawn_raw(Daemon *d, const char *conf_text, char *const extra_argv[]);
/* Rewrites dir/eb.conf (for SIGHUP tests). */
void daemon_write_conf(Daemon *d, const char *conf_text);
void daemon_signal(Daemon *d, int sig);
/* Waits ≤ timeout_ms for exit; returns the exit status (0..255), 128+signal
 * when killed, or -1 on timeout. */
int daemon_wait(Daemon *d, int timeout_ms);
/* SIGKILL if still running, reap, remove the directory. Safe to call twice. */
void daemon_stop(Daemon *d);
/* True when the daemon's stderr contains needle (waits ≤ timeout_ms). */
bool daemon_log_contains(Daemon *d, const char *needle, int timeout_ms);
/* Resident set size of the daemon in KiB (from /proc). */
long daemon_rss_kib(Daemon *d);

/* A connected client socket (blocking, with SO_RCVTIMEO of 5 s). */
int client_connect(uint16_t port);
/* Sends all of buf. */
void client_send(int fd, const void *buf, size_t len);
void client_send_str(int fd, const char *s);
/* Reads exactly len bytes within timeout_ms; fails the test otherwise. */
void client_recv_exact(int fd, void *buf, size_t len, int timeout_ms);
/* Reads one line (LF included) into buf within timeout_ms; returns its length. */
size_t client_recv_line(int fd, char *buf, size_t size, int timeout_ms);
/* True when nothing at all arrives within wait_ms. */
bool client_recv_nothing(int fd, int wait_ms);
/* True when the peer closes (read returns 0 or ECONNRESET) within timeout_ms,
 * discarding whatever arrives before. */
bool client_wait_closed(int fd, int timeout_ms);
