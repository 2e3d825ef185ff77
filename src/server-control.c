/* Server control: what the signals ask for (epoll-broadcaster(8)). SIGTERM/SIGINT begin
 * a graceful stop at the end of their round (a second one stops at once),
 * SIGHUP reloads the configuration, SIGUSR1 logs the statistics; STATUS=
 * keeps the figures current. */
#include "server-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>

#include "log.h"
#include "notify.h"

#define DRAIN_TICK_USEC (USEC_PER_SEC / 10)

/* Clients never written to have nothing queued: publishers linger at
 * once (WebSocket ones after their close frame), handshakes and requests
 * are abandoned; an HTTP response under way is finished. */
static void server_stop_quiet(Server *s) {
        for (ListNode *n = s->quiet_list.next, *next; n != &s->quiet_list; n = next) {
                next = n->next;
                Client *c = container_of(n, Client, link);
                WsConn *w = client_ws(c);
                if (!client_established(c) || (w && w->phase == WS_PHASE_REQUEST))
                        server_close_client(s, c, "stopping");
                else if (w) {
                        (void)server_ws_goodbye(s, c);
                        server_want_output(s, c);
                } else
                        server_linger(s, c);
        }
}

void server_begin_stop(Server *s, const char *signame) {
        s->phase = PHASE_DRAINING;
        notify_stopping();
        server_close_listeners(s);
        server_stop_quiet(s);
        if (s->config->shutdown_timeout == 0) {
                log_notice("%s: stopping now (shutdown_timeout is 0)", signame);
                s->phase = PHASE_DONE;
                return;
        }
        s->drain_deadline = now_usec() + s->config->shutdown_timeout * USEC_PER_SEC;
        log_notice("%s: stopping; sending what is queued to %zu client%s for up to %" PRIu32 " s", signame,
                   s->n_clients, s->n_clients == 1 ? "" : "s", s->config->shutdown_timeout);
        if (server_arm_timer(s, MIN(DRAIN_TICK_USEC, s->tick_usec)) < 0)
                log_warning("cannot re-arm the timer: %m");
        /* Not straight to linger, not even the idle clients: messages read
         * in the round that saw the signal are not written to them yet. One
         * more pass of server_flush() sends what is queued and lingers
         * every client that is then caught up; the others follow as soon as
         * they are. */
        s->log_grew = true;
}

/* STATUS= for systemctl status; sent only when the figures changed. */
void server_update_status(Server *s) {
        char status[sizeof(s->status)];
        (void)snprintf(status, sizeof(status),
                       "Relaying: %zu clients, %" PRIu64 " messages relayed, %" PRIu64 " dropped, %" PRIu64
                       " slow-client disconnects",
                       s->n_clients, s->stats.messages, s->stats.dropped, s->stats.slow_disconnects);
        if (strcmp(status, s->status) == 0)
                return;
        memcpy(s->status, status, sizeof(status));
        notify_status("%s", status);
}

/* A reload needs the file: one that has gone (deleted, or a typo in a
 * move) is refused like an invalid one, instead of silently resetting every
 * setting to the built-in defaults. */
static void server_reload(Server *s) {
        Config *config;
        char err[1024];

        notify_reloading();
        /* New certificates and keys serve new connections; connected
         * clients keep the context they began with. */
        TlsContext *tls = NULL;
        int r = server_load_config(s->config_path, true, &config, &tls, NULL, err, sizeof(err));
        if (r < 0) {
                log_error("reload failed, keeping the running settings: %s", err);
                notify_ready();
                notify_status("Reload failed, running with the previous settings: %s", err);
                s->status[0] = '\0';
                return;
        }
        if (!config_listen_equal(s->config, config)) {
                if (s->socket_activated)
                        log_notice("'listen' changed in %s but is ignored: the sockets come from systemd "
                                   "(epoll-broadcaster.socket)",
                                   s->config_path);
                else
                        log_warning("'listen' changed in %s; restart the service to apply it",
                                    s->config_path);
        }
        bool keepalive_changed = config->tcp_keepalive != s->config->tcp_keepalive;
        bool echo_changed = config->echo != s->config->echo;
        config_free(s->config);
        s->config = config;
        if (tls)
                server_set_tls(s, tls);
        /* A new max_queue_bytes applies from the next message on. */
        s->blocked_check_at = 0;
        log_set_max_priority((int)config->log_level);
        if (keepalive_changed)
                server_client_list_for_each(s, server_tune_keepalive, NULL);
        if (echo_changed)
                server_client_list_for_each(s, server_recount_own, NULL);
        server_client_list_for_each(s, server_resume_input, NULL);
        log_notice("reloaded configuration from %s", s->config_path);
        notify_ready();
        s->status[0] = '\0';
        server_update_status(s);
}

static void server_log_stats(Server *s) {
        log_notice("stats: clients=%zu accepted=%" PRIu64 " messages=%" PRIu64 " bytes=%" PRIu64
                   " dropped=%" PRIu64 " slow_disconnects=%" PRIu64 " oversize=%" PRIu64 " rejected=%" PRIu64
                   " partial_disconnects=%" PRIu64 " discarded=%" PRIu64 " tls_failures=%" PRIu64
                   " http_requests=%" PRIu64 " http_refused=%" PRIu64 " websocket_upgrades=%" PRIu64
                   " websocket_errors=%" PRIu64 " ping_timeouts=%" PRIu64
                   " queue_memory=%zu partial_memory=%" PRIu64,
                   s->n_clients, s->stats.accepted, s->stats.messages, s->stats.bytes, s->stats.dropped,
                   s->stats.slow_disconnects, s->stats.oversize, s->stats.rejected,
                   s->stats.partial_disconnects, s->stats.discarded, s->stats.tls_failures,
                   s->stats.http_requests, s->stats.http_refused, s->stats.websocket_upgrades,
                   s->stats.websocket_errors, s->stats.ping_timeouts, server_queue_memory(s),
                   s->partial_bytes);
}

static void server_on_signal(Source *src, uint32_t events _unused_, void *userdata) {
        Server *s = userdata;
        struct signalfd_siginfo si;

        for (;;) {
                ssize_t n = read(src->fd, &si, sizeof(si));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n != (ssize_t)sizeof(si)) {
                        if (n < 0 && errno != EAGAIN)
                                log_error("cannot read signals: %m");
                        return;
                }
                switch (si.ssi_signo) {
                case SIGTERM:
                case SIGINT:
                        /* The stop begins once the round is over: input that
                         * epoll reported together with the signal, whatever
                         * the order, is read and relayed first. */
                        if (s->phase == PHASE_RUNNING && !s->stop_signal)
                                s->stop_signal = (int)si.ssi_signo;
                        else {
                                /* Both in one round: still announce the stop. */
                                if (s->phase == PHASE_RUNNING)
                                        server_begin_stop(s, strsignal(s->stop_signal));
                                log_notice("%s again: stopping now", strsignal((int)si.ssi_signo));
                                s->phase = PHASE_DONE;
                        }
                        break;
                case SIGHUP:
                        if (s->phase == PHASE_RUNNING && !s->stop_signal)
                                server_reload(s);
                        else
                                log_notice("SIGHUP while stopping: not reloading");
                        break;
                case SIGUSR1:
                        server_log_stats(s);
                        break;
                default:
                        break;
                }
        }
}

int server_add_signals(Server *s) {
        sigset_t mask;
        sigemptyset(&mask);
        int sigs[] = {SERVER_SIGNALS};
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                sigaddset(&mask, sigs[i]);

        int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = loop_add(s->loop, &s->signal_src, fd, server_on_signal);
        if (r < 0)
                safe_close(fd);
        return r;
}
