/* Server: owns the clients, the listeners and the broadcast log, and
 * decides every policy of docs/protocol.md and epoll-broadcaster(8); the lists a client moves through
 * are described in server-internal.h.
 *
 * A round: the loop dispatches ready sources (accept, read → frame →
 * append), then server_flush() gives every client with something queued one
 * write, then clients closed during the round are freed. A round appends at
 * most round_budget bytes to the log (prefix expansion included): a client
 * whose read could exceed it is read next round, so no round allocates past
 * a bound whatever the clients send. */
#include "server-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"
#include "prefix.h"

#define READ_BUDGET 1     /* reads per client per round */
#define ACCEPT_BUDGET 256 /* accepts per listener per round */
/* Bytes one round may append to the log, at least: enough to batch. The
 * budget is raised to fit two of the largest messages with their prefix,
 * so every client can always make progress. */
#define ROUND_BUDGET_MIN ((uint64_t)1024 * 1024)
#define WARN_INTERVAL_USEC (10 * USEC_PER_SEC)
#define WARN_BURST 5

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static uint32_t now_sec(void) {
        return (uint32_t)(now_usec() / USEC_PER_SEC);
}

void server_warn(Server *s, Warning kind, const Client *c, const char *fmt, ...) {
        uint32_t suppressed;
        bool below = ratelimit_below(&s->warn_limit[kind], now_usec(), &suppressed);
        if (suppressed > 0)
                log_warning("%" PRIu32 " similar warnings suppressed", suppressed);
        if (!below)
                return;

        char msg[512], peer[ADDR_STR_MAX];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        int priority = kind == WARN_ERROR ? LOG_ERR : LOG_WARNING;
        if (!c) {
                log_full(priority, "%s", msg);
                return;
        }
        client_peer(c, peer, sizeof(peer));
        log_set_client(c->id, peer);
        log_full(priority, "client %" PRIu64 " (%s): %s", c->id, peer, msg);
        log_set_client(0, NULL);
}

static uint64_t server_skip(const Server *s, const Client *c) {
        return s->config->echo ? BCASTLOG_NO_SENDER : c->id;
}

/* The log c reads: the framed copy for a WebSocket client. */
static BcastLog *server_log(const Server *s, const Client *c) {
        return client_ws(c) ? s->wslog : s->log;
}

/* Bytes ever appended to the logs together: what a reader may have to
 * wait for grows by at most as much. */
static uint64_t server_log_end(const Server *s) {
        return bcastlog_end(s->log) + (s->wslog ? bcastlog_end(s->wslog) : 0);
}

void server_release_cursor(Server *s, Client *c) {
        if (!c->cursor.blk)
                return;
        if (client_ws(c))
                s->ws_readers--;
        bcastlog_cursor_release(server_log(s, c), &c->cursor);
}

/* --- closing --------------------------------------------------------------- */

void server_close_client(Server *s, Client *c, const char *why) {
        if (c->phase == CLIENT_CLOSING)
                return;
        if (log_enabled(LOG_INFO)) {
                char peer[ADDR_STR_MAX];
                client_peer(c, peer, sizeof(peer));
                log_set_client(c->id, peer);
                log_info("client %" PRIu64 " (%s) disconnected%s%s", c->id, peer, why ? ": " : "",
                         why ? why : "");
                log_set_client(0, NULL);
        }
        if (!client_established(c))
                s->handshakes--;
        if (client_ws(c))
                s->n_ws--;
        s->clients_by[c->protocol][c->transport == TRANSPORT_TLS]--;
        c->phase = CLIENT_CLOSING;
        loop_remove(s->loop, &c->src);
        /* Release the cursor now, so blocks it pinned can go this round. */
        server_release_cursor(s, c);
        s->partial_bytes -= client_pending_input(c);
        framer_reset(&c->framer);
        list_move_back(&s->closing_list, &c->link);
        s->n_clients--;
}

static void server_reap(Server *s) {
        ListNode *n;
        while ((n = list_pop_front(&s->closing_list))) {
                Client *c = container_of(n, Client, link);
                client_close(c);
                safe_close(c->src.fd);
                client_free(c);
        }
}

void server_client_list_for_each(Server *s, void (*fn)(Server *s, Client *c, void *arg), void *arg) {
        ListNode *lists[] = {&s->flush_list, &s->idle_list, &s->blocked_list, &s->linger_list,
                             &s->quiet_list};
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
                for (ListNode *n = lists[i]->next, *next; n != lists[i]; n = next) {
                        next = n->next;
                        fn(s, container_of(n, Client, link), arg);
                }
}

/* --- limits ---------------------------------------------------------------- */

/* A reader is slow only while its socket is full: a writable one is flushed
 * at the end of the round, whatever it has queued. Its own messages (echo
 * off) are never written to it, so they do not count. */
static void server_slow_client(Server *s, Client *c) {
        uint64_t limit = s->config->max_queue_bytes, skip = server_skip(s, c);
        /* Without a cursor (an HTTP response, a publisher's pong), only
         * a few bytes of its own can wait. */
        if (c->phase != CLIENT_OPEN || !c->receiving || client_waiting(c, server_log(s, c), skip) <= limit)
                return;

        if (s->config->slow_client == SLOW_CLIENT_DISCONNECT) {
                s->stats.slow_disconnects++;
                server_warn(s, WARN_SLOW, c, "over max_queue_bytes (%" PRIu64 "); disconnecting", limit);
                server_close_client(s, c, "too slow");
                return;
        }

        /* Down to half the limit, so a steadily slow reader is judged once
         * per half-queue, not once per message. */
        int64_t dropped = client_drop(c, server_log(s, c), skip, limit / 2);
        if (dropped < 0) {
                server_warn(s, WARN_ERROR, c, "cannot drop messages: %s", strerror((int)-dropped));
                server_close_client(s, c, "out of memory");
                return;
        }
        s->stats.dropped += (uint64_t)dropped;
        server_warn(s, WARN_SLOW, c, "over max_queue_bytes (%" PRIu64 "); dropped %" PRId64 " message%s",
                    limit, dropped, dropped == 1 ? "" : "s");
}

/* Called on a blocked client: handles it if over the limit, then lowers
 * blocked_check_at to where it will next need a look. */
static void server_watch_blocked(Server *s, Client *c) {
        server_slow_client(s, c);
        if (c->phase == CLIENT_OPEN && c->receiving) {
                uint64_t waiting = client_waiting(c, server_log(s, c), server_skip(s, c));
                uint64_t room = s->config->max_queue_bytes - MIN(waiting, s->config->max_queue_bytes);
                s->blocked_check_at = MIN(s->blocked_check_at, server_log_end(s) + room);
        }
}

/* After every append: once the log end passes blocked_check_at (a lower
 * bound of where the first blocked reader crosses the limit: only appends
 * make what waits for a reader grow, by at most what they add), look at the
 * blocked readers. Writable readers never need a look at all. */
static void server_check_blocked(Server *s) {
        if (server_log_end(s) <= s->blocked_check_at)
                return;
        s->blocked_check_at = UINT64_MAX;
        for (ListNode *n = s->blocked_list.next, *next; n != &s->blocked_list; n = next) {
                next = n->next;
                server_watch_blocked(s, container_of(n, Client, link));
        }
}

/* A client whose own messages pin more of the log than max_queue_bytes
 * while it does not read is not read either, until it catches up: that
 * bounds what its own sending holds, without counting it as slow. */
static bool server_input_held(const Server *s, const Client *c) {
        return !s->config->echo && c->own_pending > s->config->max_queue_bytes;
}

void server_resume_input(Server *s, Client *c, void *arg _unused_) {
        if (!c->input_paused || c->phase == CLIENT_CLOSING || server_input_held(s, c))
                return;
        c->input_paused = false;
        loop_requeue(s->loop, &c->src, EPOLLIN);
}

void server_recount_own(Server *s, Client *c, void *arg _unused_) {
        if (c->phase != CLIENT_OPEN || !c->receiving)
                return;
        uint64_t own = s->config->echo ? 0 : bcastlog_skip_ahead(server_log(s, c), &c->cursor, c->id);
        c->own_pending = (uint32_t)MIN(own, (uint64_t)UINT32_MAX);
}

/* --- input ----------------------------------------------------------------- */

/* The framed copy WebSocket readers read (websocket.h): each message of
 * what server_publish() appends, as its frames and trailer, text when
 * valid UTF-8, decided here once for every reader. Returns the bytes
 * appended, or -ENOMEM. */
static int64_t server_publish_framed(Server *s, const Client *c, const char *prefix, size_t prefix_len,
                                     const char *msg, size_t len, bool one_message, bool valid_utf8) {
        bool prefix_text = utf8_valid(prefix, prefix_len);
        int64_t total = 0;
        for (const char *p = msg, *end = msg + len; p < end || (one_message && p == msg);) {
                const char *lf = one_message ? end : memchr(p, '\n', (size_t)(end - p));
                size_t l = (size_t)(lf - p);
                struct iovec payload[2];
                size_t n = 0;
                if (prefix_len > 0)
                        payload[n++] =
                                (struct iovec){.iov_base = (void *)(uintptr_t)prefix, .iov_len = prefix_len};
                payload[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)p, .iov_len = l};
                WsLogForm f;
                ws_log_form(&f, payload, n, prefix_text && (valid_utf8 || utf8_valid(p, l)));
                int r = bcastlog_append(s->wslog, c->id, f.iov, f.n);
                if (r < 0)
                        return r;
                total += (int64_t)f.len;
                if (one_message)
                        break;
                p = lf + 1;
        }
        return total;
}

int server_publish(Server *s, Client *c, const char *prefix, size_t prefix_len, const char *msg, size_t len,
                   bool add_lf, bool valid_utf8) {
        struct iovec iov[3];
        size_t n = 0;
        if (prefix_len > 0)
                iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)prefix, .iov_len = prefix_len};
        iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)msg, .iov_len = len};
        if (add_lf)
                iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t) "\n", .iov_len = 1};

        int r = bcastlog_append(s->log, c->id, iov, n);
        size_t total = prefix_len + len + add_lf, own = total;
        /* Without a WebSocket reader, nobody would read the framed copy. */
        if (r >= 0 && s->ws_readers > 0) {
                int64_t framed =
                        server_publish_framed(s, c, prefix, prefix_len, msg, len, add_lf, valid_utf8);
                r = framed < 0 ? (int)framed : 0;
                if (client_ws(c))
                        own = (size_t)MAX(framed, (int64_t)0);
        }
        if (r < 0) {
                server_warn(s, WARN_ERROR, c, "cannot queue a message: %s", strerror(-r));
                server_close_client(s, c, "out of memory");
                return r;
        }
        s->round_budget -= MIN(s->round_budget, total);
        if (!s->config->echo && c->receiving)
                c->own_pending += (uint32_t)own;
        s->log_grew = true;
        server_check_blocked(s);
        /* The limit may have cut off the sender itself. */
        return c->phase == CLIENT_CLOSING ? -ECONNRESET : 0;
}

static size_t server_prefix(Server *s, Client *c, char *buf, size_t size) {
        if (!s->config->prefix[0])
                return 0;
        char peer[ADDR_STR_MAX];
        client_peer(c, peer, sizeof(peer));
        return prefix_expand(s->config->prefix, peer, c->id, client_identity(c), buf, size);
}

static void server_oversize(Server *s, Client *c) {
        s->stats.oversize++;
        server_warn(s, WARN_OVERSIZE, c, "message over max_message_bytes (%" PRIu32 "); disconnecting",
                    s->config->max_message_bytes);
        server_close_client(s, c, "message too long");
}

/* The one place an unfinished line changes: keeps the total of all
 * clients' unfinished lines exact, and when each began. */
void server_partial_changed(Server *s, Client *c, size_t before) {
        size_t after = client_pending_input(c);
        s->partial_bytes = s->partial_bytes - before + after;
        if (before == 0 && after > 0)
                c->framer.since = now_sec();
}

static int server_next_message(Server *s, Client *c, const char **in, size_t *in_len, const char **ret_msg,
                               size_t *ret_len) {
        size_t before = client_pending_input(c);
        int r = client_next_message(c, in, in_len, s->config->max_message_bytes, ret_msg, ret_len);
        server_partial_changed(s, c, before);
        return r;
}

/* Unfinished lines are bounded all together: the client whose read takes
 * the total past max_partial_bytes is the one disconnected. */
void server_check_partial_total(Server *s, Client *c) {
        if (s->partial_bytes <= s->config->max_partial_bytes || client_pending_input(c) == 0)
                return;
        s->stats.partial_disconnects++;
        server_warn(s, WARN_PARTIAL, c,
                    "unfinished lines of all clients over max_partial_bytes (%" PRIu64 "); disconnecting",
                    s->config->max_partial_bytes);
        server_close_client(s, c, "too much unfinished input");
}

/* Frames what c sent and publishes the complete lines. Without a prefix,
 * consecutive lines of one read are appended as a single run. Returns 0, or
 * a negative code once c has been closed. */
static int server_client_input(Server *s, Client *c, const char *data, size_t n, const char *prefix,
                               size_t prefix_len) {
        const char *in = data, *line, *run = NULL;
        size_t in_len = n, len, run_len = 0;
        int r;

        while ((r = server_next_message(s, c, &in, &in_len, &line, &len)) > 0) {
                s->stats.messages++;
                if (run && line == run + run_len) {
                        run_len += len;
                        continue;
                }
                if (run) {
                        if (server_publish(s, c, prefix, prefix_len, run, run_len, false, false) < 0)
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
                if (server_publish(s, c, prefix, prefix_len, line, len, false, false) < 0)
                        return -ECONNRESET;
        }
        /* Lines before an oversize one were whole: they still go out. */
        if (run && server_publish(s, c, prefix, prefix_len, run, run_len, false, false) < 0)
                return -ECONNRESET;
        if (r == -EMSGSIZE) {
                server_oversize(s, c);
                return r;
        }
        if (r < 0) {
                server_warn(s, WARN_ERROR, c, "cannot hold its input: %s", strerror(-r));
                server_close_client(s, c, "out of memory");
                return r;
        }
        server_check_partial_total(s, c);
        return c->phase == CLIENT_CLOSING ? -ECONNRESET : 0;
}

/* The peer's stream has ended (closed, shut down or reset): its last line
 * without LF is still its message (docs/protocol.md), then it is gone. */
static void server_client_eof(Server *s, Client *c, bool relay, const char *why) {
        if (relay) {
                const char *line;
                size_t len, before = client_pending_input(c);
                int r = client_last_message(c, s->config->max_message_bytes, &line, &len);
                server_partial_changed(s, c, before);
                if (r == -EMSGSIZE) {
                        server_oversize(s, c);
                        return;
                }
                if (r > 0) {
                        char prefix[PREFIX_EXPANDED_MAX];
                        size_t prefix_len = server_prefix(s, c, prefix, sizeof(prefix));
                        s->stats.messages++;
                        if (server_publish(s, c, prefix, prefix_len, line, len, true, false) < 0)
                                return;
                }
        }
        server_close_client(s, c, why);
}

/* What c may read now without the round appending more than its budget:
 * at worst every byte read is a LF with its prefix, and the first line
 * completes c's unfinished one. */
static size_t server_read_size(const Server *s, const Client *c, size_t prefix_len) {
        uint64_t pending = client_pending_input(c);
        if (s->round_budget <= pending)
                return 0;
        return (size_t)MIN((uint64_t)READ_BUFFER_SIZE, (s->round_budget - pending) / (prefix_len + 1));
}

/* A client starts receiving once it can: at accept, or at the end of its
 * TLS handshake, or of its WebSocket upgrade (before, it is not connected
 * in the sense of docs/protocol.md, and holds no cursor). Publish-only
 * clients and clients of metrics listeners never do. */
void server_start_receiving(Server *s, Client *c) {
        WsConn *w = client_ws(c);
        c->writable = true;
        if (c->role == LISTEN_ROLE_PUBLISH || (w && !ws_conn_open(w))) {
                list_move_back(&s->quiet_list, &c->link);
                return;
        }
        bcastlog_cursor_init(server_log(s, c), &c->cursor);
        s->ws_readers += w != NULL;
        c->receiving = true;
        c->writable = true;
        list_move_back(&s->idle_list, &c->link);
}

static void server_handshake_done(Server *s, Client *c) {
        s->handshakes--;
        if (log_enabled(LOG_INFO)) {
                char peer[ADDR_STR_MAX];
                const char *who = client_identity(c);
                client_peer(c, peer, sizeof(peer));
                log_set_client(c->id, peer);
                log_info("client %" PRIu64 " (%s): TLS established%s%s", c->id, peer, who ? " for " : "",
                         who ? who : "");
                log_set_client(0, NULL);
        }
        server_start_receiving(s, c);
}

/* A subscribe-only client's input is read (so its socket never fills and
 * it is never cut off for it) and thrown away; counted, and said once. */
void server_discard(Server *s, Client *c, size_t n) {
        s->stats.discarded += n;
        if (c->discard_noticed)
                return;
        c->discard_noticed = true;
        server_warn(s, WARN_DISCARD, c, "sends on a subscribe-only listener; its input is discarded");
}

/* The one read path. A client is read while the server relays (open
 * clients, and clients whose writes failed: what they sent before is still
 * theirs), and drained without relaying while it lingers at a stop. */
static void server_client_read(Server *s, Client *c) {
        bool running = s->phase == PHASE_RUNNING;
        bool relay = running && (c->phase == CLIENT_OPEN || c->output_failed);
        if (c->phase == CLIENT_OPEN && !running)
                return;
        if (c->phase == CLIENT_OPEN && server_input_held(s, c)) {
                c->input_paused = true;
                return;
        }

        char prefix[PREFIX_EXPANDED_MAX];
        size_t prefix_len = 0;
        bool established = client_established(c);
        if (relay && established)
                prefix_len = server_prefix(s, c, prefix, sizeof(prefix));
        for (unsigned i = 0;; i++) {
                size_t size = relay ? server_read_size(s, c, prefix_len) : sizeof(s->rbuf);
                /* Only EAGAIN proves the socket empty, so the edge is kept
                 * until a read returns it: next round if the budget is
                 * spent. */
                if (i >= READ_BUDGET || size == 0) {
                        loop_requeue(s->loop, &c->src, EPOLLIN);
                        return;
                }
                ssize_t n = client_read(c, s->rbuf, size);
                if (!established && client_established(c)) {
                        established = true;
                        server_handshake_done(s, c);
                        if (relay)
                                prefix_len = server_prefix(s, c, prefix, sizeof(prefix));
                }
                if (n == -EAGAIN) {
                        if (c->output_failed)
                                server_close_client(s, c, NULL);
                        return;
                }
                if (n == -EPROTO) {
                        s->stats.tls_failures += !established;
                        server_warn(s, WARN_TLS, c, "%s: %s; disconnecting",
                                    established ? "TLS error" : "TLS handshake failed",
                                    client_transport_error(c));
                        server_close_client(s, c, "TLS error");
                        return;
                }
                if (n < 0) {
                        server_close_client(s, c, strerror((int)-n));
                        return;
                }
                if (n == 0) {
                        server_client_eof(s, c, relay, NULL);
                        return;
                }
                s->stats.bytes += (uint64_t)n;
                if (relay && client_ws(c)) {
                        if (server_ws_input(s, c, s->rbuf, (size_t)n, prefix, prefix_len) < 0)
                                return;
                } else if (relay && c->role == LISTEN_ROLE_SUBSCRIBE)
                        server_discard(s, c, (size_t)n);
                else if (relay && server_client_input(s, c, s->rbuf, (size_t)n, prefix, prefix_len) < 0)
                        return;
        }
}

static void server_on_client(Source *src, uint32_t events, void *userdata) {
        Server *s = userdata;
        Client *c = container_of(src, Client, src);

        if (c->phase == CLIENT_CLOSING)
                return;
        /* A TLS write may wait for input and a TLS read for output room:
         * each edge also retries the other direction. */
        if ((events & EPOLLIN) && client_write_wants_read(c))
                events |= EPOLLOUT;
        if ((events & EPOLLOUT) && client_read_wants_write(c))
                events |= EPOLLIN;
        if ((events & EPOLLOUT) && (c->receiving || client_ws(c)) &&
            (!c->writable || client_write_wants_read(c))) {
                c->writable = true;
                if (c->phase == CLIENT_OPEN)
                        list_move_back(&s->flush_list, &c->link);
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                server_client_read(s, c);
}

/* --- output ---------------------------------------------------------------- */

/* A write failed for good: the peer is gone (typically it closed with bytes
 * we had sent still unread, so its kernel answered with a reset). What it
 * sent before going may still be in the socket's receive queue: it lingers,
 * read through the one read path, until that is used up. */
static void server_write_failed(Server *s, Client *c, int err) {
        if (s->phase != PHASE_RUNNING) {
                server_close_client(s, c, strerror(err));
                return;
        }
        if (log_enabled(LOG_DEBUG)) {
                char peer[ADDR_STR_MAX];
                client_peer(c, peer, sizeof(peer));
                log_debug("client %" PRIu64 " (%s): cannot write (%s); reading what it sent", c->id, peer,
                          strerror(err));
        }
        c->phase = CLIENT_LINGER;
        c->output_failed = true;
        server_release_cursor(s, c);
        list_move_back(&s->linger_list, &c->link);
        loop_requeue(s->loop, &c->src, EPOLLIN);
}

/* Everything is sent and the server is stopping: send FIN and wait for the
 * peer, draining what it still sends, so that close() never resets a
 * connection whose last bytes are still in flight. */
void server_linger(Server *s, Client *c) {
        c->phase = CLIENT_LINGER;
        list_move_back(&s->linger_list, &c->link);
        int r = client_shutdown(c);
        if (r < 0) {
                server_close_client(s, c, strerror(-r));
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
                WsConn *w = client_ws(c);
                int r;
                /* Write until the socket is full or the client caught up:
                 * whatever is still queued after that is truly waiting. At
                 * a stop, a WebSocket client's close frame comes last. */
                do {
                        do
                                r = client_flush(c, server_log(s, c), server_skip(s, c));
                        while (r == 1);
                } while (r == 0 && s->phase == PHASE_DRAINING && server_ws_goodbye(s, c));
                server_resume_input(s, c, NULL);
                if (r == -EAGAIN) {
                        list_push_back(&s->blocked_list, n);
                        server_watch_blocked(s, c);
                } else if (r < 0)
                        server_write_failed(s, c, -r);
                else if (w && ws_conn_finished(w))
                        server_ws_finish(s, c);
                else if (s->phase == PHASE_DRAINING)
                        server_linger(s, c);
                else
                        list_push_back(c->receiving ? &s->idle_list : &s->quiet_list, n);
        }
}

void server_want_output(Server *s, Client *c) {
        /* A full socket's EPOLLOUT edge moves it to the flush list. */
        if (c->phase == CLIENT_OPEN && c->writable && client_established(c))
                list_move_back(&s->flush_list, &c->link);
}

/* --- accepting ------------------------------------------------------------- */

void server_tune_keepalive(Server *s, Client *c, void *arg _unused_) {
        if (!c->tcp)
                return;
        int idle = (int)s->config->tcp_keepalive, on = idle > 0;
        if (setsockopt(c->src.fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
            (on && setsockopt(c->src.fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0))
                log_debug("client %" PRIu64 ": cannot set TCP keepalive: %m", c->id);
}

void server_add_connection(Server *s, int fd, const struct sockaddr *peer, socklen_t peer_len,
                           const ConnSpec *spec) {
        _cleanup_close_ int cfd = fd;
        char name[ADDR_STR_MAX];

        if (s->n_clients >= s->config->max_clients) {
                s->stats.rejected++;
                addr_format(peer, peer_len, name, sizeof(name));
                server_warn(s, WARN_FULL, NULL,
                            "max_clients (%" PRIu32 ") reached; rejected a connection from %s",
                            s->config->max_clients, name);
                return;
        }

        Client *c = NULL;
        bool tls = spec->tls;
        int r = tls && !s->tls ? -ENOPROTOOPT : 0;
        if (r >= 0)
                r = client_new(&c, s->last_id + 1, cfd, peer, peer_len, spec, tls ? s->tls : NULL);
        if (r >= 0)
                r = loop_add(s->loop, &c->src, cfd, server_on_client);
        if (r < 0) {
                server_warn(s, WARN_ERROR, NULL, "cannot take a new connection: %s", strerror(-r));
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
        s->n_clients++;
        s->clients_by[c->protocol][tls]++;
        if (client_ws(c))
                server_ws_start(s, c);
        if (log_enabled(LOG_INFO)) {
                static const char *const kinds[N_LISTEN_PROTOCOLS][2] = {
                        {"", " (TLS)"},
                        {" (websocket)", " (websocket, TLS)"},
                        {" (metrics)", " (metrics, TLS)"},
                };
                client_peer(c, name, sizeof(name));
                log_set_client(c->id, name);
                log_info("client %" PRIu64 " connected from %s%s", c->id, name, kinds[c->protocol][tls]);
                log_set_client(0, NULL);
        }
        if (client_established(c))
                server_start_receiving(s, c);
        else {
                /* Handshakes count towards max_clients, and end at
                 * handshake_timeout (server-timer.c). */
                s->handshakes++;
                client_set_handshake_since(c, (uint32_t)(now_usec() / USEC_PER_SEC));
                list_push_back(&s->quiet_list, &c->link);
        }
}

/* Returns true when accepting may go on this round; otherwise the listener
 * is either empty (its next edge will come) or paused until the next tick,
 * never left with connections and no edge. */
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
                                server_warn(s, WARN_ACCEPT, NULL,
                                            "out of file descriptors (%s); refusing connections on %s",
                                            strerror(err), l->name);
                        }
                        /* Without a reserve (ENFILE: the whole system is
                         * out), nothing more can be refused this round. */
                        if (s->reserve_fd >= 0 && (fd >= 0 || fd == -EAGAIN))
                                return fd >= 0;
                }
                break;
        default:
                break;
        }
        server_warn(s, WARN_ACCEPT, NULL, "cannot accept on %s: %s; retrying in a second", l->name,
                    strerror(err));
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
                server_add_connection(s, fd, (const struct sockaddr *)&peer, len, &l->spec);
        }
        loop_requeue(s->loop, src, EPOLLIN);
}

void server_resume_listeners(Server *s) {
        for (size_t i = 0; i < s->n_listeners; i++)
                if (s->listeners[i].paused) {
                        s->listeners[i].paused = false;
                        loop_requeue(s->loop, &s->listeners[i].src, EPOLLIN);
                }
}

void server_close_listeners(Server *s) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                loop_remove(s->loop, &s->listeners[i].src);
                listener_close(&s->listeners[i]);
        }
        s->n_listeners = 0;
}

/* --- life cycle ------------------------------------------------------------ */

static int server_watch_listeners(Server *s, bool passed) {
        static const char *const roles[] = {
                [LISTEN_ROLE_SUBSCRIBE] = ", subscribe only", [LISTEN_ROLE_PUBLISH] = ", publish only"};
        for (size_t i = 0; i < s->n_listeners; i++) {
                Listener *l = &s->listeners[i];
                int r = loop_add(s->loop, &l->src, l->src.fd, server_on_listener);
                if (r < 0) {
                        log_error("cannot watch %s: %s", l->name, strerror(-r));
                        return r;
                }
                const ConnSpec *spec = &l->spec;
                const char *role =
                        spec->role < ARRAY_SIZE(roles) && roles[spec->role] ? roles[spec->role] : "";
                const char *protocol = spec->protocol != LISTEN_PROTOCOL_LINE
                                               ? listen_protocol_to_string(spec->protocol)
                                               : NULL;
                char what[96];
                (void)snprintf(what, sizeof(what), "%s%s%s%s%s", passed ? ", passed by systemd" : "",
                               protocol ? ", " : "", protocol ?: "", spec->tls ? ", TLS" : "", role);
                log_notice("%s %s%s%s%s", passed ? "serving" : "listening on", l->name, what[0] ? " (" : "",
                           what[0] ? what + 2 : "", what[0] ? ")" : "");
        }
        return 0;
}

static int server_set_spec(Listener *l, const ListenOptions *o) {
        int r = listener_set_spec(l, o->tls, (uint8_t)o->protocol, (uint8_t)o->role, o->origins,
                                  o->n_origins);
        if (r < 0)
                log_error("out of memory");
        return r;
}

/* A socket systemd passed takes the options of the 'listen' group whose
 * name is its FileDescriptorName=; any other is a plain line listener. */
static int server_name_passed(Server *s, Listener *l) {
        const Config *cfg = s->config;
        for (size_t i = 0; l->fdname && i < cfg->n_listen; i++) {
                const ListenOptions *o = &cfg->listen_opts[i];
                if (o->name && o->name[0] && strcmp(o->name, l->fdname) == 0)
                        return server_set_spec(l, o);
        }
        return 0;
}

static int server_check_listeners(Server *s) {
        for (size_t i = 0; i < s->n_listeners; i++) {
                if (s->listeners[i].spec.protocol == LISTEN_PROTOCOL_WEBSOCKET && !s->wslog &&
                    bcastlog_new(&s->wslog) < 0) {
                        log_error("out of memory");
                        return -ENOMEM;
                }
                if (s->listeners[i].spec.tls && !s->tls) {
                        log_error("%s is a TLS listener, but there is no usable 'tls' group",
                                  s->listeners[i].name);
                        return -ENOPROTOOPT;
                }
        }
        return 0;
}

int server_listen(Server *s) {
        const Config *cfg = s->config;

        int r = listener_adopt_passed(&s->listeners, &s->n_listeners);
        if (r < 0)
                return r;
        if (s->n_listeners > 0) {
                s->socket_activated = true;
                log_notice("using %zu socket%s passed by systemd; 'listen' in %s is ignored", s->n_listeners,
                           s->n_listeners == 1 ? "" : "s", s->config_path);
                for (size_t i = 0; i < s->n_listeners && r >= 0; i++)
                        r = server_name_passed(s, &s->listeners[i]);
                if (r >= 0)
                        r = server_check_listeners(s);
                return r < 0 ? r : server_watch_listeners(s, true);
        }

        s->listeners = calloc(cfg->n_listen, sizeof(Listener));
        if (!s->listeners)
                return log_error("out of memory"), -ENOMEM;
        for (size_t i = 0; i < cfg->n_listen; i++) {
                const ListenOptions *o = &cfg->listen_opts[i];
                if (!o->has_address)
                        continue; /* only for a socket systemd passes by name */
                Listener *l = &s->listeners[s->n_listeners];
                r = listener_open(l, &cfg->listen[i]);
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
                r = server_set_spec(l, o);
                if (r < 0)
                        return r;
        }
        if (s->n_listeners == 0) {
                log_error("no address to listen on");
                return -EADDRNOTAVAIL;
        }
        r = server_check_listeners(s);
        return r < 0 ? r : server_watch_listeners(s, false);
}

static int server_tls_new(TlsContext **ret, const Config *config, char *err, size_t errlen) {
        *ret = NULL;
        if (!config->tls.present)
                return 0;
        return tls_context_new(ret, &config->tls, err, errlen);
}

int server_load_config(const char *path, bool must_exist, Config **ret, TlsContext **ret_tls,
                       bool *ret_used_defaults, char *err, size_t errlen) {
        Config *config;
        int r = config_load(path, must_exist, &config, ret_used_defaults, err, errlen);
        if (r < 0)
                return r;
        r = server_tls_new(ret_tls, config, err, errlen);
        if (r < 0) {
                config_free(config);
                return r;
        }
        *ret = config;
        return 0;
}

void server_set_tls(Server *s, TlsContext *tls) {
        tls_context_free(s->tls);
        s->tls = tls;
}

int server_new(Server **ret, Config *config, const char *config_path, bool must_exist) {
        _cleanup_server_ Server *s = calloc(1, sizeof(Server));
        if (!s) {
                config_free(config);
                return log_error("out of memory"), -ENOMEM;
        }
        s->config = config;
        s->start_time = (uint64_t)time(NULL);
        s->blocked_check_at = UINT64_MAX;
        s->signal_src.fd = s->timer_src.fd = -1;
        list_init(&s->flush_list);
        list_init(&s->idle_list);
        list_init(&s->blocked_list);
        list_init(&s->linger_list);
        list_init(&s->quiet_list);
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
                r = server_add_signals(s);
        if (r >= 0)
                r = server_add_timer(s);
        if (r < 0)
                return log_error("cannot set up the event loop: %s", strerror(-r)), r;
        *ret = TAKE_PTR(s);
        return 0;
}

int server_run_once(Server *s, int timeout_ms) {
        s->round_budget =
                MAX(ROUND_BUDGET_MIN, 2 * ((uint64_t)s->config->max_message_bytes + PREFIX_EXPANDED_MAX));
        if (!list_empty(&s->flush_list) || s->log_grew)
                timeout_ms = 0;
        int r = loop_run_once(s->loop, timeout_ms);
        if (r < 0)
                return r;
        if (s->stop_signal && s->phase == PHASE_RUNNING)
                server_begin_stop(s, strsignal(s->stop_signal));
        server_flush(s);
        server_reap(s);
        if (s->phase == PHASE_DRAINING && s->n_clients == 0)
                s->phase = PHASE_DONE;
        return 0;
}

int server_run(Server *s) {
        /* Every listener is bound and listening: connections queue from
         * here on. */
        notify_ready();
        server_update_status(s);
        while (s->phase != PHASE_DONE) {
                int r = server_run_once(s, -1);
                if (r < 0) {
                        log_error("event loop failed: %s", strerror(-r));
                        return r;
                }
        }
        log_notice("stopped");
        return 0;
}

const ServerStats *server_stats(const Server *s) {
        return &s->stats;
}

size_t server_clients(const Server *s) {
        return s->n_clients;
}

size_t server_queue_memory(const Server *s) {
        return bcastlog_memory(s->log) + (s->wslog ? bcastlog_memory(s->wslog) : 0);
}

size_t server_partial_memory(const Server *s) {
        return s->partial_bytes;
}

static void server_forget_client(Server *s, Client *c, void *arg _unused_) {
        loop_remove(s->loop, &c->src);
        server_release_cursor(s, c);
        list_move_back(&s->closing_list, &c->link);
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        if (s->log) {
                server_client_list_for_each(s, server_forget_client, NULL);
                server_reap(s);
        }
        if (s->listeners)
                server_close_listeners(s);
        free(s->listeners);
        safe_close(s->signal_src.fd);
        safe_close(s->timer_src.fd);
        safe_close(s->reserve_fd);
        bcastlog_free(s->log);
        bcastlog_free(s->wslog);
        tls_context_free(s->tls);
        loop_free(s->loop);
        config_free(s->config);
        free(s->config_path);
        free(s);
        return NULL;
}
