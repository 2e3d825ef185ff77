/* The codec of one connection on a websocket or metrics listener: its HTTP
 * request head, then RFC 6455 frames in (http.c and wsframe.c do the
 * parsing), and the bytes that are not broadcast messages out: the HTTP
 * response, pongs, pings and the close frame. Pure: no I/O, no logging;
 * the hub decides what to answer, the client's write path puts these
 * bytes between broadcast messages, which it takes ready framed from a log
 * of their own (ws_log_form()).
 *
 * Output order on the wire, which the write path keeps:
 *   1. the rest of a broadcast message already begun;
 *   2. the control bytes (ws_conn_control()): never inside a message;
 *   3. further broadcast messages, only while ws_conn_open().
 * A close frame is the last control frame: nothing follows it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "http.h"
#include "wsframe.h"

typedef enum WsPhase {
        WS_PHASE_REQUEST,   /* reading the request head */
        WS_PHASE_OPEN,      /* upgraded: frames both ways */
        WS_PHASE_CLOSING,   /* a close frame is queued: input is ignored */
        WS_PHASE_RESPONDED, /* an HTTP response (not 101) is queued: input is ignored */
} WsPhase;

typedef enum WsEventType {
        WS_EVENT_REQUEST = 1, /* the request head is complete (ws->req, ws->head) */
        WS_EVENT_MESSAGE,     /* a whole data message */
        WS_EVENT_CLOSE,       /* the peer's close frame; the answer is queued */
        WS_EVENT_ERROR,       /* bad input; see 'error' */
} WsEventType;

typedef struct WsEvent {
        WsEventType type;
        /* MESSAGE: the payload, valid until the next ws_conn_next() call or
         * until the caller's input buffer is reused. */
        const char *data;
        size_t len;
        bool text; /* MESSAGE: a text message (so valid UTF-8) */
        /* ERROR in the request phase: http_parse()'s error, nothing queued
         * (the hub answers). ERROR when open: a wsframe_next() error, or
         * -EBADMSG for a message holding an LF; the close frame with the
         * code in 'close_code' is queued. */
        int error;
        uint16_t close_code; /* CLOSE: the peer's code; ERROR: the code sent */
} WsEvent;

typedef struct WsConn {
        WsPhase phase;
        /* The request head, collected whole (HTTP_HEAD_MAX at most). */
        char *head;
        uint16_t head_len, head_cap;
        HttpRequest req;
        WsDecoder dec;
        /* A data message split across frames or reads. */
        char *msg;
        uint32_t msg_len, msg_cap;
        bool msg_handed_out; /* the last MESSAGE came from 'msg': empty it next call */
        /* Control output: the HTTP response (malloc'd), else frames composed
         * from the slots below once the previous ones are sent. */
        uint8_t *out;
        uint32_t out_len, out_sent;
        bool out_is_response;
        bool pong_pending, ping_pending, close_pending, close_queued;
        bool close_echo; /* the close answers the peer's */
        uint8_t pong_len;
        uint8_t pong[WSFRAME_CONTROL_MAX];
        uint16_t close_code;
        /* The hub's clock (seconds): the connection's start, its last input,
         * the ping awaiting an answer (0: none). */
        uint32_t since, last_input, ping_sent;
} WsConn;

int ws_conn_new(WsConn **ret);
WsConn *ws_conn_free(WsConn *w);

/* Consumes what it can of *in / *in_len (moving them past it; WebSocket
 * payload is unmasked in place) up to one event. Returns 1 with *ev set, 0
 * when the input is used up, or -ENOMEM. 'max_payload' bounds one message,
 * its fragments together. Pings are answered and pongs taken without an
 * event. In the closing and responded phases all input is consumed
 * silently. */
int ws_conn_next(WsConn *w, char **in, size_t *in_len, uint64_t max_payload, WsEvent *ev);

/* Bytes of unfinished input held: the request head, a message in progress. */
size_t ws_conn_pending_input(const WsConn *w);

/* After REQUEST: answers 101 (the request passed http_ws_check()) and
 * opens the connection. 0 or -errno. */
int ws_conn_accept(WsConn *w);
/* After REQUEST or a request-phase ERROR: queues an HTTP response with
 * Connection: close; 'headers' are extra CRLF-terminated lines ("" for
 * none, under 1 KiB in all); the body is left out, its Content-Length
 * kept, for a HEAD. 0, -ENOBUFS for headers too long, or -ENOMEM. */
int ws_conn_respond(WsConn *w, unsigned status, const char *headers, const void *body, size_t body_len,
                    bool head_only);
/* Queues a close frame (once, on an open WebSocket only) and stops data
 * frames. */
void ws_conn_close(WsConn *w, uint16_t code);
/* Queues a ping (the hub's liveness check) on an open WebSocket. */
void ws_conn_ping(WsConn *w);

/* Data frames may be sent. */
static inline bool ws_conn_open(const WsConn *w) {
        return w->phase == WS_PHASE_OPEN;
}
/* Control bytes to send (composing the next ones if the last are sent):
 * *ret and their length, 0 if none, or -ENOMEM. */
ssize_t ws_conn_control(WsConn *w, const uint8_t **ret);
void ws_conn_control_sent(WsConn *w, size_t n);
/* Control output is waiting (the write path must run even when no
 * broadcast message is). */
bool ws_conn_has_control(const WsConn *w);
/* The close frame or the HTTP response is entirely sent: the hub ends the
 * connection. */
bool ws_conn_finished(const WsConn *w);

/* --- broadcast messages as WebSocket readers are sent them -------------------
 *
 * Every broadcast message is kept a second time, framed, in a log of its
 * own that WebSocket readers read as line readers read theirs: spans as
 * they are, no per-reader work. That log's bookkeeping is the broadcast
 * log's, which ends a message at an LF, so the framed form ends with one,
 * on the wire inside an unsolicited pong (RFC 6455 5.5.3: no answer is
 * expected); payloads hold no LF, and no header in the form does (a length
 * that would put the byte 0x0A in one is sent as two fragments). */

/* The pong that ends every message: 0x8A 0x01 '\n'. */
#define WS_LOG_TRAILER "\x8a\x01\n"
#define WS_LOG_TRAILER_LEN 3

typedef struct WsLogForm {
        uint8_t hdr[2][WSFRAME_HEADER_MAX];
        /* Headers, at most two payload pieces each side of a fragment
         * boundary, the trailer. */
        struct iovec iov[7];
        size_t n;
        size_t len; /* bytes in all */
} WsLogForm;

/* The form of one message whose payload is the concatenation of 'n' (at
 * most 2) pieces: a text frame when 'text' (the payload is valid UTF-8),
 * else binary. f->iov points into the pieces and into f. */
void ws_log_form(WsLogForm *f, const struct iovec *payload, size_t n, bool text);

/* The reason phrase of an HTTP status this server sends. */
const char *ws_http_reason(unsigned status);
/* The HTTP status answering a request-phase error of http_parse(). */
unsigned ws_http_status(int error);
