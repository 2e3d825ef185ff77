/* The hub: clients, listeners, the broadcast log, limits, signals, reload
 * and statistics. The only module that decides policy. */
#pragma once

#include <stdbool.h>

#include "config.h"

typedef struct Server Server;

/* Takes ownership of 'config'. Binds the configured addresses, creates the
 * signalfd (the caller has blocked the signals) and the housekeeping timer.
 * 'config_path' is re-read on SIGHUP; 'must_exist' as for config_load().
 * Returns 0 or -errno, having logged why. */
int server_new(Server **ret, Config *config, const char *config_path, bool must_exist);

/* Serves until a stop signal; returns 0 after a clean stop or -errno. */
int server_run(Server *s);

Server *server_free(Server *s);
static inline void server_freep(Server **s) {
        server_free(*s);
}
#define _cleanup_server_ _cleanup_(server_freep)

/* The signals the server reads through its signalfd. */
#define SERVER_SIGNALS SIGTERM, SIGINT, SIGHUP, SIGUSR1
