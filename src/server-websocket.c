/* The hub's policy for websocket and metrics listeners (epoll-broadcaster(8),
 * WEBSOCKET and METRICS): what each request is answered, which origins may
 * join, what a bad frame costs, when an idle client is pinged and when it
 * is given up. The bytes themselves are websocket.c's. */
#include "server-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdarg.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "webpage.h"

/* The page names no external resource and talks only to its own origin. */
#define PAGE_HEADERS                                                                                        \
        "Content-Type: text/html; charset=utf-8\r\n"                                                        \
        "Cache-Control: no-store\r\n"                                                                       \
        "X-Content-Type-Options: nosniff\r\n"                                                               \
        "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "                         \
        "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "                   \
        "form-action 'none'; frame-ancestors 'none'\r\n"
#define TEXT_HEADERS "Content-Type: text/plain; charset=utf-8\r\n"
#define METRICS_HEADERS "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"

static void server_ws_log(const Client *c, const char *fmt, ...) _printf_(2, 3);
static void server_ws_log(const Client *c, const char *fmt, ...) {
        if (!log_enabled(LOG_INFO))
                return;
        char peer[ADDR_STR_MAX], msg[256];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        client_peer(c, peer, sizeof(peer));
        log_set_client(c->id, peer);
        log_info("client %" PRIu64 " (%s): %s", c->id, peer, msg);
        log_set_client(0, NULL);
}

/* An HTTP error: a short text body saying why, then the connection ends. */
static void server_http_refuse(Server *s, Client *c, unsigned status, const char *headers, const char *why,
                               bool head_only) {
        char body[256], all[256];
        WsConn *w = client_ws(c);
        int n = snprintf(body, sizeof(body), "%u %s: %s\n", status, ws_http_reason(status), why);
        (void)snprintf(all, sizeof(all), TEXT_HEADERS "%s", headers);
        s->stats.http_refused++;
        server_warn(s, WARN_HTTP, c, "HTTP %u: %s", status, why);
        if (ws_conn_respond(w, status, all, body, (size_t)n, head_only) < 0) {
                server_close_client(s, c, "out of memory");
                return;
        }
        server_want_output(s, c);
}

static void server_http_respond(Server *s, Client *c, const char *headers, const void *body, size_t len,
                                bool head_only) {
        if (ws_conn_respond(client_ws(c), 200, headers, body, len, head_only) < 0) {
                server_close_client(s, c, "out of memory");
                return;
        }
        server_want_output(s, c);
}

static bool server_origin_allowed(const Client *c, const WsConn *w) {
        const ConnSpec *spec = client_spec(c);
        if (!w->req.has_origin)
                return true; /* not a browser: it could send any Origin it liked */
        for (size_t i = 0; i < spec->n_origins; i++)
                if (strcmp(spec->origins[i], "*") == 0 ||
                    http_span_eq(w->head, w->req.origin, spec->origins[i]))
                        return true;
        return false;
}

_Static_assert(sizeof(((MetricsSnapshot *)0)->clients) == sizeof(((Server *)0)->clients_by) &&
                       (int)METRICS_PROTOCOL_LINE == (int)LISTEN_PROTOCOL_LINE &&
                       (int)METRICS_PROTOCOL_WEBSOCKET == (int)LISTEN_PROTOCOL_WEBSOCKET &&
                       (int)METRICS_PROTOCOL_METRICS == (int)LISTEN_PROTOCOL_METRICS,
               "the metrics count clients by listen protocol");

static void server_metrics_snapshot(Server *s, MetricsSnapshot *m) {
        *m = (MetricsSnapshot){
                .stats = &s->stats,
                .tls_handshakes = s->handshakes,
                .queue_memory = server_queue_memory(s),
                .partial_memory = s->partial_bytes,
                .start_time = s->start_time,
        };
        memcpy(m->clients, s->clients_by, sizeof(m->clients));
        for (size_t i = 0; i < s->n_listeners; i++)
                m->listeners[s->listeners[i].spec.protocol]++;
}

static void server_serve_metrics(Server *s, Client *c, bool head_only) {
        static char body[METRICS_BODY_MAX];
        MetricsSnapshot m;
        server_metrics_snapshot(s, &m);
        ssize_t n = metrics_render(&m, body, sizeof(body));
        if (n < 0) {
                server_http_refuse(s, c, 500, "", "the metrics do not fit", head_only);
                return;
        }
        server_http_respond(s, c, METRICS_HEADERS, body, (size_t)n, head_only);
}

static void server_ws_upgrade(Server *s, Client *c, WsConn *w) {
        char path[128];
        (void)snprintf(path, sizeof(path), "%.*s", (int)MIN(w->req.path.len, 100),
                       w->head + w->req.path.off);
        int r = ws_conn_accept(w);
        if (r < 0) {
                server_warn(s, WARN_ERROR, c, "cannot answer the WebSocket handshake: %s", strerror(-r));
                server_close_client(s, c, "out of memory");
                return;
        }
        s->stats.websocket_upgrades++;
        w->last_input = w->since;
        server_ws_log(c, "WebSocket established (path %s)", path);
        server_start_receiving(s, c);
        server_want_output(s, c);
}

/* Routing, as epoll-broadcaster(8) documents it. */
static void server_http_request(Server *s, Client *c, WsConn *w) {
        const HttpRequest *req = &w->req;
        bool get = http_span_eq(w->head, req->method, "GET");
        bool head_only = http_span_eq(w->head, req->method, "HEAD");

        s->stats.http_requests++;
        if (c->protocol == LISTEN_PROTOCOL_METRICS) {
                if (!get && !head_only)
                        server_http_refuse(s, c, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD", false);
                else if (req->has_body)
                        server_http_refuse(s, c, 400, "", "a request body is not accepted", head_only);
                else if (http_span_eq(w->head, req->path, "/metrics"))
                        server_serve_metrics(s, c, head_only);
                else
                        server_http_refuse(s, c, 404, "", "the metrics are at /metrics", head_only);
                return;
        }

        int r = http_ws_check(req, w->head);
        if (r == -ENOPROTOOPT)
                server_http_refuse(s, c, 426, "Sec-WebSocket-Version: 13\r\n", "WebSocket version 13 only",
                                   head_only);
        else if (r < 0)
                server_http_refuse(s, c, 400, "", "not a valid WebSocket handshake", head_only);
        else if (r > 0 && !server_origin_allowed(c, w))
                server_http_refuse(s, c, 403, "", "origin not allowed", head_only);
        else if (r > 0)
                server_ws_upgrade(s, c, w);
        else if (!get && !head_only)
                server_http_refuse(s, c, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD", false);
        else if (req->has_body)
                server_http_refuse(s, c, 400, "", "a request body is not accepted", head_only);
        else if (http_span_eq(w->head, req->path, "/"))
                server_http_respond(s, c, PAGE_HEADERS, webpage_html, webpage_html_len, head_only);
        else
                server_http_refuse(s, c, 404, "", "the page is at /; WebSocket clients may use any path",
                                   head_only);
}

static void server_ws_error(Server *s, Client *c, const WsEvent *ev) {
        WsConn *w = client_ws(c);
        if (w->phase == WS_PHASE_RESPONDED || w->phase == WS_PHASE_REQUEST) {
                const char *why = ev->error == -E2BIG             ? "request head too large"
                                  : ev->error == -EPROTONOSUPPORT ? "HTTP/1.1 only"
                                                                  : "malformed request";
                s->stats.http_requests++;
                server_http_refuse(s, c, ws_http_status(ev->error), "", why, false);
                return;
        }
        if (ev->error == -EMSGSIZE) {
                s->stats.oversize++;
                server_warn(s, WARN_OVERSIZE, c,
                            "WebSocket message over max_message_bytes (%" PRIu32 "); closing with %u",
                            s->config->max_message_bytes, ev->close_code);
        } else {
                s->stats.websocket_errors++;
                server_warn(s, WARN_WEBSOCKET, c, "WebSocket %s; closing with %u",
                            ev->error == -EBADMSG  ? "message contains a line feed"
                            : ev->error == -EILSEQ ? "text is not UTF-8"
                                                   : "protocol error",
                            ev->close_code);
        }
        server_want_output(s, c);
}

int server_ws_input(Server *s, Client *c, char *data, size_t n, const char *prefix, size_t prefix_len) {
        WsConn *w = client_ws(c);
        char *in = data;
        size_t in_len = n;
        WsEvent ev;
        int r;

        w->last_input = (uint32_t)(now_usec() / USEC_PER_SEC);
        w->ping_sent = 0;
        for (;;) {
                size_t before = client_pending_input(c);
                r = ws_conn_next(w, &in, &in_len, s->config->max_message_bytes - 1, &ev);
                server_partial_changed(s, c, before);
                if (r <= 0)
                        break;
                /* Answering a request lets its head go. */
                before = client_pending_input(c);
                switch (ev.type) {
                case WS_EVENT_REQUEST:
                        server_http_request(s, c, w);
                        break;
                case WS_EVENT_MESSAGE:
                        /* A subscriber's message is not one for relay. */
                        if (c->role == LISTEN_ROLE_SUBSCRIBE) {
                                server_discard(s, c, ev.len);
                                break;
                        }
                        s->stats.messages++;
                        if (server_publish(s, c, prefix, prefix_len, ev.data, ev.len, true, ev.text) < 0)
                                return -ECONNRESET;
                        break;
                case WS_EVENT_CLOSE:
                        server_want_output(s, c);
                        break;
                case WS_EVENT_ERROR:
                        server_ws_error(s, c, &ev);
                        break;
                }
                if (c->phase == CLIENT_CLOSING)
                        return -ECONNRESET;
                server_partial_changed(s, c, before);
        }
        if (r < 0) {
                server_warn(s, WARN_ERROR, c, "cannot hold its input: %s", strerror(-r));
                server_close_client(s, c, "out of memory");
                return r;
        }
        if (ws_conn_has_control(w))
                server_want_output(s, c);
        server_check_partial_total(s, c);
        return c->phase == CLIENT_CLOSING ? -ECONNRESET : 0;
}

bool server_ws_goodbye(Server *s _unused_, Client *c) {
        WsConn *w = client_ws(c);
        if (!w || !ws_conn_open(w))
                return false;
        ws_conn_close(w, WS_CLOSE_GOING_AWAY);
        return true;
}

void server_ws_finish(Server *s, Client *c) {
        server_release_cursor(s, c);
        c->receiving = false;
        server_linger(s, c);
}

/* The housekeeping tick's look at one client: a request head late past
 * request_timeout gets 408; an idle WebSocket client is pinged after
 * ping_interval of silence and given up after as long again. Whole
 * seconds more than 'interval' apart are surely that long (and at most two
 * seconds more): a client heard from within the interval is never pinged. */
static void server_ws_check(Server *s, Client *c, void *arg) {
        uint32_t now = *(const uint32_t *)arg, interval = s->config->ping_interval;
        WsConn *w = client_ws(c);
        if (!w || c->phase != CLIENT_OPEN || !client_established(c))
                return;
        if (w->phase == WS_PHASE_REQUEST) {
                if (now - w->since > s->config->request_timeout) {
                        size_t before = client_pending_input(c);
                        s->stats.http_requests++;
                        server_http_refuse(s, c, 408, "", "no complete request within request_timeout",
                                           false);
                        if (c->phase != CLIENT_CLOSING)
                                server_partial_changed(s, c, before);
                }
                return;
        }
        if (w->phase != WS_PHASE_OPEN || interval == 0)
                return;
        if (w->ping_sent == 0 && now - w->last_input > interval) {
                ws_conn_ping(w);
                w->ping_sent = now;
                server_want_output(s, c);
        } else if (w->ping_sent != 0 && now - w->ping_sent > interval) {
                s->stats.ping_timeouts++;
                server_warn(s, WARN_WEBSOCKET, c,
                            "no answer to a ping within ping_interval (%" PRIu32 " s); disconnecting",
                            interval);
                server_close_client(s, c, "ping timed out");
        }
}

void server_ws_tick(Server *s, uint32_t now) {
        if (s->n_ws > 0)
                server_client_list_for_each(s, server_ws_check, &now);
}

void server_ws_start(Server *s, Client *c) {
        client_ws(c)->since = (uint32_t)(now_usec() / USEC_PER_SEC);
        s->n_ws++;
}
