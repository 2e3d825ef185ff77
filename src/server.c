/* Server: owns the clients, the listeners, the broadcast log, the signalfd
 * and the housekeeping timer, and decides every policy of SPEC §2 and §4.
 *
 * A round: the loop dispatches ready sources (accept, read → frame →
 * append), then server_flush() gives every client with something queued one
 * sendmsg(), then clients closed during the round are freed. Every client is
 * on exactly one list:
 *   flush_list    writable, something queued
 *   idle_list     writable, caught up (spliced into flush_list in O(1)
 *                 whenever the log grows)
 *   blocked_list  socket full, waiting for an EPOLLOUT edge
 *   linger_list   stopping: everything sent, FIN sent, waiting for the peer
 *   closing_list  closed this round; freed (and its fd closed) at the end
 * so nothing is ever freed during a traversal. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "bcastlog.h"
#include "client.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "prefix.h"
#include "ratelimit.h"

#define USEC_PER_SEC 1000000ULL
#define READ_BUFFER_SIZE (128 * 1024)
#define READ_BUDGET 1               /* reads per client per round: bounds what a round adds */
#define ACCEPT_BUDGET 256           /* accepts per listener per round */
#define WRITE_FAILED_MAX_READS 1024 /* 128 MiB: far above any socket receive buffer */
#define TICK_USEC USEC_PER_SEC
#define DRAIN_TICK_USEC (USEC_PER_SEC / 10)
#define WARN_INTERVAL_USEC (10 * USEC_PER_SEC)
#define WARN_BURST 5
#define TRIM_STEP ((size_t)1024 * 1024) /* newly free heap bytes worth a malloc_trim() */

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
        N_WARNINGS,
} Warning;

typedef struct Stats {
        uint64_t accepted;
        uint64_t messages;
        uint64_t bytes;
        uint64_t dropped;
        uint64_t slow_disconnects;
        uint64_t oversize;
        uint64_t rejected;
} Stats;

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
        ListNode flush_list, idle_list, blocked_list, linger_list, closing_list;
        size_t n_clients;
        uint64_t last_id;
        bool log_grew;
        uint64_t blocked_check_at;
        Phase phase;
        int stop_signal; /* SIGTERM/SIGINT seen this round: the stop begins at its end */
        uint64_t drain_deadline;
        int reserve_fd;     /* spent to refuse connections at EMFILE */
        size_t free_floor;  /* least free heap seen since the last trim */
        uint64_t tick_usec; /* housekeeping period, shorter under a watchdog */
        bool watchdog;
        char status[256]; /* last STATUS= sent */
        Stats stats;
        RateLimit warn_limit[N_WARNINGS];
        char rbuf[READ_BUFFER_SIZE];
};

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static void server_warn(Server *s, Warning kind, const char *fmt, ...) _printf_(3, 4);
static void server_warn(Server *s, Warning kind, const char *fmt, ...) {
        uint32_t suppressed;
        bool below = ratelimit_below(&s->warn_limit[kind], now_usec(), &suppressed);
        if (suppressed > 0)
                log_warning("%" PRIu32 " similar warnings suppressed", suppressed);
        if (!below)
                return;
        va_list ap;
        va_start(ap, fmt);
        log_fullv(LOG_WARNING, fmt, ap);
        va_end(ap);
}

static uint64_t server_skip(const Server *s, const Client *c) {
        return s->config->echo ? BCASTLOG_NO_SENDER : c->id;
}

/* --- closing --------------------------------------------------------------- */

/* Stops all I/O on c at once; its memory and fd go at the end of the round.
 * 'why' may be NULL for an orderly close by the peer. */
static void server_close_client(Server *s, Client *c, const char *why) {
        if (c->phase == CLIENT_CLOSING)
                return;
        char peer[ADDR_STR_MAX];
        client_peer(c, peer, sizeof(peer));
        log_set_client(c->id, peer);
        log_info("client %" PRIu64 " (%s) disconnected%s%s", c->id, peer, why ? ": " : "", why ? why : "");
        log_set_client(0, NULL);
        c->phase = CLIENT_CLOSING;
        loop_remove(s->loop, &c->src);
        /* Release the cursor now, so blocks it pinned can go this round. */
        bcastlog_cursor_release(s->log, &c->cursor);
        list_move_back(&s->closing_list, &c->link);
        s->n_clients--;
}

static void server_reap(Server *s) {
        ListNode *n;
        while ((n = list_pop_front(&s->closing_list))) {
                Client *c = container_of(n, Client, link);
                safe_close(c->src.fd);
                client_free(c);
        }
}

static void client_list_for_each(Server *s, void (*fn)(Server *s, Client *c, void *arg), void *arg) {
        ListNode *lists[] = {&s->flush_list, &s->idle_list, &s->blocked_list, &s->linger_list};
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
                for (ListNode *n = lists[i]->next, *next; n != lists[i]; n = next) {
                        next = n->next;
                        fn(s, container_of(n, Client, link), arg);
                }
}

/* --- limits ---------------------------------------------------------------- */

/* A reader is slow only while its socket is full: a writable one is flushed
 * at the end of the round, whatever it has queued. */
static void server_slow_client(Server *s, Client *c) {
        uint64_t limit = s->config->max_queue_bytes;
        if (c->phase != CLIENT_OPEN || bcastlog_backlog(s->log, &c->cursor) <= limit)
                return;

        char peer[ADDR_STR_MAX];
        client_peer(c, peer, sizeof(peer));
        if (s->config->slow_client == SLOW_CLIENT_DISCONNECT) {
                s->stats.slow_disconnects++;
                log_set_client(c->id, peer);
                server_warn(s, WARN_SLOW,
                            "client %" PRIu64 " (%s): over max_queue_bytes (%" PRIu64 "); disconnecting",
                            c->id, peer, limit);
                server_close_client(s, c, "too slow");
                return;
        }

        char *rest;
        size_t rest_len;
        int r = bcastlog_cursor_drop(s->log, &c->cursor, server_skip(s, c), limit, &rest, &rest_len);
        if (r < 0) {
                log_error("client %" PRIu64 " (%s): cannot drop messages: %s", c->id, peer, strerror(-r));
                server_close_client(s, c, "out of memory");
                return;
        }
        if (rest) {
                /* The cursor never moves while an older remainder is unsent,
                 * so a drop finds at most one. */
                c->rest = rest;
                c->rest_len = (uint32_t)rest_len;
                c->rest_off = 0;
        }
        s->stats.dropped += (uint64_t)r;
        log_set_client(c->id, peer);
        server_warn(s, WARN_SLOW,
                    "client %" PRIu64 " (%s): over max_queue_bytes (%" PRIu64 "); dropped %d message%s",
                    c->id, peer, limit, r, r == 1 ? "" : "s");
        log_set_client(0, NULL);
}

/* Called on a blocked client: handles it if over the limit, then lowers
 * blocked_check_at to where it will next need a look. */
static void server_watch_blocked(Server *s, Client *c) {
        server_slow_client(s, c);
        if (c->phase == CLIENT_OPEN) {
                uint64_t pos = bcastlog_end(s->log) - bcastlog_backlog(s->log, &c->cursor);
                s->blocked_check_at = MIN(s->blocked_check_at, pos + s->config->max_queue_bytes);
        }
}

/* After every append: once the log end passes blocked_check_at (a lower
 * bound of where the furthest-behind blocked reader crosses the limit), look
 * at the blocked readers. Cursors only move forward, so between two looks
 * nothing can cross the limit unnoticed, and writable readers never need a
 * look at all. */
static void server_check_blocked(Server *s) {
        if (bcastlog_end(s->log) <= s->blocked_check_at)
                return;
        s->blocked_check_at = UINT64_MAX;
        for (ListNode *n = s->blocked_list.next, *next; n != &s->blocked_list; n = next) {
                next = n->next;
                server_watch_blocked(s, container_of(n, Client, link));
        }
}

/* --- input ----------------------------------------------------------------- */

/* Appends one or more whole messages from c, with the prefix (may be empty)
 * and an optional LF for a last line cut short by the peer's close. */
static int server_publish(Server *s, Client *c, const char *prefix, size_t prefix_len, const char *msg,
                          size_t len, bool add_lf) {
        struct iovec iov[3];
        size_t n = 0;
        if (prefix_len > 0)
                iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)prefix, .iov_len = prefix_len};
        iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)msg, .iov_len = len};
        if (add_lf)
                iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t) "\n", .iov_len = 1};

        int r = bcastlog_append(s->log, c->id, iov, n);
        if (r < 0) {
                log_error("client %" PRIu64 ": cannot queue a message: %s", c->id, strerror(-r));
                server_close_client(s, c, "out of memory");
                return r;
        }
        s->log_grew = true;
        server_check_blocked(s);
        /* The limit may have cut off the sender itself. */
        return c->phase == CLIENT_OPEN ? 0 : -ECONNRESET;
}

static size_t server_prefix(Server *s, Client *c, char *buf, size_t size) {
        if (!s->config->prefix[0])
                return 0;
        char peer[ADDR_STR_MAX];
        client_peer(c, peer, sizeof(peer));
        return prefix_expand(s->config->prefix, peer, c->id, buf, size);
}

static void server_oversize(Server *s, Client *c) {
        char peer[ADDR_STR_MAX];
        client_peer(c, peer, sizeof(peer));
        s->stats.oversize++;
        log_set_client(c->id, peer);
        server_warn(s, WARN_OVERSIZE,
                    "client %" PRIu64 " (%s): message over max_message_bytes (%" PRIu32 "); disconnecting",
                    c->id, peer, s->config->max_message_bytes);
        server_close_client(s, c, "message too long");
}

/* Frames what c sent and publishes the complete lines. Without a prefix,
 * consecutive lines of one read are appended as a single run. Returns 0, or
 * a negative code once c has been closed. */
static int server_client_input(Server *s, Client *c, const char *data, size_t n) {
        char prefix[PREFIX_EXPANDED_MAX];
        size_t prefix_len = server_prefix(s, c, prefix, sizeof(prefix));
        const char *in = data, *line, *run = NULL;
        size_t in_len = n, len, run_len = 0;
        int r;

        while ((r = framer_next(&c->framer, &in, &in_len, s->config->max_message_bytes, &line, &len)) > 0) {
                s->stats.messages++;
                if (run && line == run + run_len) {
                        run_len += len;
                        continue;
                }
                if (run) {
                        if (server_publish(s, c, prefix, prefix_len, run, run_len, false) < 0)
                                return -ECONNRESET;
                        run = NULL;
                }
                /* A line completed in the framer's own buffer is only valid
                 * until the next framer call: publish it now. */
                bool in_read_buffer = line >= data && line < data + n;
                if (prefix_len == 0 && in_read_buffer) {
                        run = line;
                        run_len = len;
                        continue;
                }
                if (server_publish(s, c, prefix, prefix_len, line, len, false) < 0)
                        return -ECONNRESET;
        }
        /* Lines before an oversize one were whole: they still go out. */
        if (run && server_publish(s, c, prefix, prefix_len, run, run_len, false) < 0)
                return -ECONNRESET;
        if (r == -EMSGSIZE) {
                server_oversize(s, c);
                return r;
        }
        if (r < 0) {
                log_error("client %" PRIu64 ": %s", c->id, strerror(-r));
                server_close_client(s, c, "out of memory");
                return r;
        }
        return 0;
}

static void server_client_eof(Server *s, Client *c) {
        if (c->phase == CLIENT_OPEN && s->phase == PHASE_RUNNING) {
                const char *line;
                size_t len;
                int r = framer_finish(&c->framer, s->config->max_message_bytes, &line, &len);
                if (r == -EMSGSIZE) {
                        server_oversize(s, c);
                        return;
                }
                if (r > 0) {
                        char prefix[PREFIX_EXPANDED_MAX];
                        size_t prefix_len = server_prefix(s, c, prefix, sizeof(prefix));
                        s->stats.messages++;
                        if (server_publish(s, c, prefix, prefix_len, line, len, true) < 0)
                                return;
                }
        }
        server_close_client(s, c, NULL);
}

static void server_client_read(Server *s, Client *c, uint32_t events) {
        /* What a stopping server still reads is only drained, never relayed. */
        bool relay = c->phase == CLIENT_OPEN && s->phase == PHASE_RUNNING;
        if (c->phase == CLIENT_OPEN && !relay)
                return;

        for (unsigned i = 0;; i++) {
                ssize_t n = read(c->src.fd, s->rbuf, sizeof(s->rbuf));
                if (n > 0) {
                        s->stats.bytes += (uint64_t)n;
                        if (relay && server_client_input(s, c, s->rbuf, (size_t)n) < 0)
                                return;
                        /* Only EAGAIN proves the socket empty, so the edge is
                         * kept until a read returns it: next round if the
                         * budget is spent. */
                        if (i + 1 >= READ_BUDGET) {
                                loop_requeue(s->loop, &c->src, EPOLLIN | (events & (EPOLLRDHUP | EPOLLHUP)));
                                return;
                        }
                        continue;
                }
                if (n == 0) {
                        server_client_eof(s, c);
                        return;
                }
                if (errno == EAGAIN)
                        return;
                if (errno != EINTR) {
                        server_close_client(s, c, strerror(errno));
                        return;
                }
        }
}

static void server_on_client(Source *src, uint32_t events, void *userdata) {
        Server *s = userdata;
        Client *c = container_of(src, Client, src);

        if (c->phase == CLIENT_CLOSING)
                return;
        if ((events & EPOLLOUT) && !c->writable) {
                c->writable = true;
                if (c->phase == CLIENT_OPEN)
                        list_move_back(&s->flush_list, &c->link);
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                server_client_read(s, c, events);
}

/* --- output ---------------------------------------------------------------- */

/* A write failed for good: the peer is gone (typically it closed with bytes
 * we had sent still unread, so its kernel answered with a reset). What it
 * sent before going is in the socket's receive queue, and nothing more can
 * come: complete lines there, and a last line cut short by its close, are
 * still its messages (SPEC §2), so read them all now, then close. */
static void server_write_failed(Server *s, Client *c, int err) {
        if (c->phase == CLIENT_OPEN && s->phase == PHASE_RUNNING) {
                /* Bounded by the receive buffer; the cap only guards the
                 * loop should a kernel ever keep a failed socket readable. */
                for (unsigned i = 0; i < WRITE_FAILED_MAX_READS; i++) {
                        ssize_t n = read(c->src.fd, s->rbuf, sizeof(s->rbuf));
                        if (n > 0) {
                                s->stats.bytes += (uint64_t)n;
                                if (server_client_input(s, c, s->rbuf, (size_t)n) < 0)
                                        return;
                                continue;
                        }
                        if (n == 0) {
                                server_client_eof(s, c);
                                return;
                        }
                        if (errno != EINTR)
                                break;
                }
        }
        server_close_client(s, c, strerror(err));
}

/* Everything is sent and the server is stopping: send FIN and wait for the
 * peer, draining what it still sends, so that close() never resets a
 * connection whose last bytes are still in flight. */
static void server_linger(Server *s, Client *c) {
        c->phase = CLIENT_LINGER;
        list_move_back(&s->linger_list, &c->link);
        if (shutdown(c->src.fd, SHUT_WR) < 0) {
                server_close_client(s, c, strerror(errno));
                return;
        }
        loop_requeue(s->loop, &c->src, EPOLLIN);
}

static void server_flush(Server *s) {
        if (s->log_grew) {
                list_splice_back(&s->flush_list, &s->idle_list);
                s->log_grew = false;
        }
        ListNode todo, *n;
        list_init(&todo);
        list_splice_back(&todo, &s->flush_list);
        while ((n = list_pop_front(&todo))) {
                Client *c = container_of(n, Client, link);
                int r;
                /* Write until the socket is full or the client caught up:
                 * whatever is still queued after that is truly waiting. */
                do
                        r = client_flush(c, s->log, server_skip(s, c));
                while (r == 1);
                if (r == -EAGAIN) {
                        list_push_back(&s->blocked_list, n);
                        server_watch_blocked(s, c);
                } else if (r < 0)
                        server_write_failed(s, c, -r);
                else if (s->phase == PHASE_DRAINING)
                        server_linger(s, c);
                else
                        list_push_back(&s->idle_list, n);
        }
}

/* --- accepting ------------------------------------------------------------- */

static void server_tune_keepalive(Server *s, Client *c, void *arg _unused_) {
        if (!c->tcp)
                return;
        int idle = (int)s->config->tcp_keepalive, on = idle > 0;
        if (setsockopt(c->src.fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
            (on && setsockopt(c->src.fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0))
                log_debug("client %" PRIu64 ": cannot set TCP keepalive: %m", c->id);
}

static void server_add_client(Server *s, int fd, const struct sockaddr_storage *peer, socklen_t peer_len) {
        _cleanup_close_ int cfd = fd;
        char name[ADDR_STR_MAX];

        if (s->n_clients >= s->config->max_clients) {
                s->stats.rejected++;
                addr_format((const struct sockaddr *)peer, peer_len, name, sizeof(name));
                server_warn(s, WARN_FULL, "max_clients (%" PRIu32 ") reached; rejected a connection from %s",
                            s->config->max_clients, name);
                return;
        }

        Client *c = NULL;
        int r = client_new(&c, s->last_id + 1, (const struct sockaddr *)peer, peer_len);
        if (r >= 0)
                r = loop_add(s->loop, &c->src, cfd, server_on_client);
        if (r < 0) {
                log_error("cannot take a new connection: %s", strerror(-r));
                client_free(c);
                return;
        }
        TAKE_FD(cfd);
        s->last_id++;
        s->stats.accepted++;
        if (c->tcp) {
                int on = 1;
                /* We batch writes ourselves; Nagle would only add latency. */
                if (setsockopt(c->src.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0)
                        log_debug("client %" PRIu64 ": cannot set TCP_NODELAY: %m", c->id);
                server_tune_keepalive(s, c, NULL);
        }
        bcastlog_cursor_init(s->log, &c->cursor);
        c->writable = true;
        list_push_back(&s->idle_list, &c->link);
        s->n_clients++;
        client_peer(c, name, sizeof(name));
        log_set_client(c->id, name);
        log_info("client %" PRIu64 " connected from %s", c->id, name);
        log_set_client(0, NULL);
}

/* Returns true when accepting may go on this round. */
static bool server_accept_failed(Server *s, Listener *l, int err) {
        struct sockaddr_storage peer;
        socklen_t len;

        switch (err) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
                /* That one connection failed; the queue is fine. */
                return true;
        case EMFILE:
        case ENFILE:
                /* Spend the reserve descriptor to take the connection off the
                 * queue and refuse it, or the edge-triggered listener would
                 * never report it again. accept() fails with EMFILE before
                 * it looks at the queue, so the end of every burst lands
                 * here too, with nothing to refuse: no warning then. */
                if (s->reserve_fd >= 0) {
                        s->reserve_fd = safe_close(s->reserve_fd);
                        int fd = listener_accept(l, &peer, &len);
                        safe_close(fd);
                        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                        if (fd >= 0) {
                                s->stats.rejected++;
                                server_warn(s, WARN_ACCEPT,
                                            "out of file descriptors (%s); refusing connections on %s",
                                            strerror(err), l->name);
                        }
                        return fd >= 0 && s->reserve_fd >= 0;
                }
                break;
        default:
                break;
        }
        server_warn(s, WARN_ACCEPT, "cannot accept on %s: %s; retrying in a second", l->name, strerror(err));
        l->paused = true;
        return false;
}

static void server_on_listener(Source *src, uint32_t events _unused_, void *userdata) {
        Server *s = userdata;
        Listener *l = container_of(src, Listener, src);

        for (unsigned i = 0; i < ACCEPT_BUDGET; i++) {
                struct sockaddr_storage peer;
                socklen_t len;
                int fd = listener_accept(l, &peer, &len);
                if (fd == -EAGAIN)
                        return;
                if (fd < 0) {
                        if (!server_accept_failed(s, l, -fd))
                                return;
                        continue;
                }
                server_add_client(s, fd, &peer, len);
        }
        loop_requeue(s->loop, src, EPOLLIN);
}

/* --- signals, reload, statistics ------------------------------------------ */

static int server_arm_timer(Server *s, uint64_t interval_usec) {
        struct itimerspec its = {
                .it_interval = {.tv_sec = (time_t)(interval_usec / USEC_PER_SEC),
                                .tv_nsec = (long)(interval_usec % USEC_PER_SEC) * 1000},
        };
        its.it_value = its.it_interval;
        return timerfd_settime(s->timer_src.fd, 0, &its, NULL) < 0 ? -errno : 0;
}

static void server_close_listeners(Server *s) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                loop_remove(s->loop, &s->listeners[i].src);
                listener_close(&s->listeners[i]);
        }
        s->n_listeners = 0;
}

static void server_begin_stop(Server *s, const char *signame) {
        s->phase = PHASE_DRAINING;
        notify_stopping();
        server_close_listeners(s);
        if (s->config->shutdown_timeout == 0) {
                log_notice("%s: stopping now (shutdown_timeout is 0)", signame);
                s->phase = PHASE_DONE;
                return;
        }
        s->drain_deadline = now_usec() + s->config->shutdown_timeout * USEC_PER_SEC;
        log_notice("%s: stopping; sending what is queued to %zu clients for up to %" PRIu32 " s", signame,
                   s->n_clients, s->config->shutdown_timeout);
        if (server_arm_timer(s, MIN(DRAIN_TICK_USEC, s->tick_usec)) < 0)
                log_warning("cannot re-arm the timer: %m");
        /* Not straight to linger, not even the idle clients: messages read
         * in the round that saw the signal are not written to them yet. One more pass of server_flush()
         * sends what is queued and lingers every client that is then caught up; the others follow as soon as
         * they are. */
        s->log_grew = true;
}

/* STATUS= for systemctl status; sent only when the figures changed. */
static void server_update_status(Server *s) {
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

static void server_reload(Server *s) {
        Config *config;
        bool used_defaults = false;
        char err[1024];

        notify_reloading();
        int r = config_load(s->config_path, s->config_must_exist, &config, &used_defaults, err, sizeof(err));
        if (r < 0) {
                log_error("reload failed, keeping the running settings: %s", err);
                notify_ready();
                notify_status("Reload failed, running with the previous settings: %s", err);
                s->status[0] = '\0';
                return;
        }
        if (used_defaults)
                log_notice("%s does not exist; using the built-in defaults", s->config_path);
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
        config_free(s->config);
        s->config = config;
        /* A new max_queue_bytes applies from the next message on. */
        s->blocked_check_at = 0;
        log_set_max_priority((int)config->log_level);
        if (keepalive_changed)
                client_list_for_each(s, server_tune_keepalive, NULL);
        log_notice("reloaded configuration from %s", s->config_path);
        notify_ready();
        s->status[0] = '\0';
        server_update_status(s);
}

static void server_log_stats(Server *s) {
        log_notice("stats: clients=%zu accepted=%" PRIu64 " messages=%" PRIu64 " bytes=%" PRIu64
                   " dropped=%" PRIu64 " slow_disconnects=%" PRIu64 " oversize=%" PRIu64 " rejected=%" PRIu64
                   " queue_memory=%zu",
                   s->n_clients, s->stats.accepted, s->stats.messages, s->stats.bytes, s->stats.dropped,
                   s->stats.slow_disconnects, s->stats.oversize, s->stats.rejected, bcastlog_memory(s->log));
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

static void server_check_linger(Server *s, Client *c, void *arg _unused_) {
        int queued;
        if (c->phase != CLIENT_LINGER)
                return;
        /* Everything acknowledged by the peer: nothing left to lose. */
        if (ioctl(c->src.fd, SIOCOUTQ, &queued) < 0 || queued == 0)
                server_close_client(s, c, NULL);
}

/* glibc gives heap memory back only from the top of the heap, and whatever
 * was allocated last pins it there: after 1,000 clients held partial lines
 * and left, the daemon stayed 16 MiB larger for good. Once a second, when
 * at least TRIM_STEP more heap is free than at its lowest since the last
 * trim, malloc_trim() returns the free pages, inside the heap too. */
static void server_trim_memory(Server *s) {
#ifdef __GLIBC__
        struct mallinfo2 mi = mallinfo2();
        if (mi.fordblks < s->free_floor)
                s->free_floor = mi.fordblks;
        if (mi.fordblks - s->free_floor < TRIM_STEP)
                return;
        (void)malloc_trim(0);
        s->free_floor = mi.fordblks;
#else
        (void)s;
#endif
}

static void server_on_timer(Source *src, uint32_t events _unused_, void *userdata) {
        Server *s = userdata;
        uint64_t expirations;

        if (read(src->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
                log_warning("cannot read the timer: %m");

        if (s->watchdog)
                notify_watchdog();
        uint64_t now = now_usec();
        for (size_t i = 0; i < ARRAY_SIZE(s->warn_limit); i++) {
                uint32_t suppressed = ratelimit_flush(&s->warn_limit[i], now);
                if (suppressed > 0)
                        log_warning("%" PRIu32 " similar warnings suppressed", suppressed);
        }
        server_trim_memory(s);
        if (s->reserve_fd < 0)
                s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (size_t i = 0; i < s->n_listeners; i++)
                if (s->listeners[i].paused) {
                        s->listeners[i].paused = false;
                        loop_requeue(s->loop, &s->listeners[i].src, EPOLLIN);
                }
        if (s->phase == PHASE_RUNNING)
                server_update_status(s);
        if (s->phase == PHASE_DRAINING) {
                client_list_for_each(s, server_check_linger, NULL);
                if (now >= s->drain_deadline) {
                        log_notice("shutdown_timeout reached with %zu clients left", s->n_clients);
                        s->phase = PHASE_DONE;
                }
        }
}

/* --- life cycle ------------------------------------------------------------ */

/* Sockets passed by systemd replace 'listen' entirely. */
static int server_adopt_sockets(Server *s, int n) {
        s->listeners = calloc((size_t)n, sizeof(Listener));
        if (!s->listeners)
                return -ENOMEM;
        log_notice("using %d socket%s passed by systemd; 'listen' in %s is ignored", n, n == 1 ? "" : "s",
                   s->config_path);
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                Listener *l = &s->listeners[i];
                int r = listener_adopt(l, fd);
                if (r < 0) {
                        safe_close(fd);
                        log_error("passed file descriptor %d is not a listening stream socket: %s", fd,
                                  strerror(-r));
                        return r == -ENOTSOCK ? r : -ENOTSOCK;
                }
                s->n_listeners++;
                r = loop_add(s->loop, &l->src, fd, server_on_listener);
                if (r < 0) {
                        log_error("cannot watch %s: %s", l->name, strerror(-r));
                        return r;
                }
                log_notice("serving %s (passed by systemd)", l->name);
        }
        return 0;
}

static int server_listen(Server *s) {
        const Config *cfg = s->config;

        int n = sd_listen_fds(1);
        if (n < 0) {
                log_error("cannot read the sockets passed by systemd: %s", strerror(-n));
                return n;
        }
        if (n > 0) {
                s->socket_activated = true;
                return server_adopt_sockets(s, n);
        }

        s->listeners = calloc(cfg->n_listen, sizeof(Listener));
        if (!s->listeners)
                return -ENOMEM;
        for (size_t i = 0; i < cfg->n_listen; i++) {
                Listener *l = &s->listeners[s->n_listeners];
                int r = listener_open(l, &cfg->listen[i]);
                if (r < 0 && cfg->listen_is_default && cfg->listen[i].sa.sa_family == AF_INET6 &&
                    (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL)) {
                        log_warning("skipping default address %s: %s", cfg->listen_str[i], strerror(-r));
                        continue;
                }
                if (r < 0) {
                        log_error("cannot listen on %s: %s", cfg->listen_str[i], strerror(-r));
                        return r;
                }
                s->n_listeners++;
                r = loop_add(s->loop, &l->src, l->src.fd, server_on_listener);
                if (r < 0) {
                        log_error("cannot watch %s: %s", l->name, strerror(-r));
                        return r;
                }
                log_notice("listening on %s", l->name);
        }
        if (s->n_listeners == 0) {
                log_error("no address to listen on");
                return -EADDRNOTAVAIL;
        }
        return 0;
}

static int server_add_signal_and_timer(Server *s) {
        sigset_t mask;
        sigemptyset(&mask);
        int sigs[] = {SERVER_SIGNALS};
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                sigaddset(&mask, sigs[i]);

        int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = loop_add(s->loop, &s->signal_src, fd, server_on_signal);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = loop_add(s->loop, &s->timer_src, fd, server_on_timer);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        /* Pet the watchdog at half its period, from the loop itself, so a
         * stuck loop is noticed. */
        uint64_t watchdog_usec = notify_watchdog_usec();
        s->watchdog = watchdog_usec > 0;
        s->tick_usec = s->watchdog ? MAX(MIN(TICK_USEC, watchdog_usec / 2), 1000) : TICK_USEC;
        return server_arm_timer(s, s->tick_usec);
}

int server_new(Server **ret, Config *config, const char *config_path, bool must_exist) {
        _cleanup_server_ Server *s = calloc(1, sizeof(Server));
        if (!s) {
                config_free(config);
                return log_error("out of memory"), -ENOMEM;
        }
        s->config = config;
        s->blocked_check_at = UINT64_MAX;
        s->signal_src.fd = s->timer_src.fd = -1;
        list_init(&s->flush_list);
        list_init(&s->idle_list);
        list_init(&s->blocked_list);
        list_init(&s->linger_list);
        list_init(&s->closing_list);
        for (size_t i = 0; i < ARRAY_SIZE(s->warn_limit); i++)
                s->warn_limit[i] = (RateLimit)RATELIMIT_INIT(WARN_INTERVAL_USEC, WARN_BURST);
        s->config_must_exist = must_exist;
        s->config_path = strdup(config_path);
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (!s->config_path)
                return log_error("out of memory"), -ENOMEM;

        int r = loop_new(&s->loop, s);
        if (r >= 0)
                r = bcastlog_new(&s->log);
        if (r >= 0)
                r = server_add_signal_and_timer(s);
        if (r < 0)
                return log_error("cannot set up the event loop: %s", strerror(-r)), r;
        r = server_listen(s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int server_run(Server *s) {
        /* Every listener is bound and listening: connections queue from
         * here on. */
        notify_ready();
        server_update_status(s);
        while (s->phase != PHASE_DONE) {
                int timeout = list_empty(&s->flush_list) && !s->log_grew ? -1 : 0;
                int r = loop_run_once(s->loop, timeout);
                if (r < 0) {
                        log_error("event loop failed: %s", strerror(-r));
                        return r;
                }
                if (s->stop_signal && s->phase == PHASE_RUNNING)
                        server_begin_stop(s, strsignal(s->stop_signal));
                server_flush(s);
                server_reap(s);
                if (s->phase == PHASE_DRAINING && s->n_clients == 0)
                        s->phase = PHASE_DONE;
        }
        log_notice("stopped");
        return 0;
}

static void server_forget_client(Server *s, Client *c, void *arg _unused_) {
        loop_remove(s->loop, &c->src);
        bcastlog_cursor_release(s->log, &c->cursor);
        list_move_back(&s->closing_list, &c->link);
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        if (s->log) {
                client_list_for_each(s, server_forget_client, NULL);
                server_reap(s);
        }
        if (s->listeners)
                server_close_listeners(s);
        free(s->listeners);
        safe_close(s->signal_src.fd);
        safe_close(s->timer_src.fd);
        safe_close(s->reserve_fd);
        bcastlog_free(s->log);
        loop_free(s->loop);
        config_free(s->config);
        free(s->config_path);
        free(s);
        return NULL;
}
