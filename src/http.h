/* Parses one HTTP/1.1 request head (request line and header fields, up to
 * the empty line), as the WebSocket upgrade and the page and metrics routes
 * need it. Pure: no I/O, no allocation.
 *
 * The caller owns the bytes. It appends what it reads to one buffer of its
 * own and calls http_parse() with all the bytes so far (the bytes already
 * given must stay the same; the buffer may move between calls). The parser
 * resumes where it stopped, so feeding a head one byte at a time costs no
 * more than feeding it at once, and the result does not depend on how the
 * bytes were cut. Every field is reported as an HttpSpan, offsets into that
 * buffer, valid for as long as the caller keeps the bytes.
 *
 * Decisions where RFC 9112 leaves a choice:
 *   - A bare LF ends a line as CR LF does (RFC 9112 2.2 allows it; printf
 *     and nc users send it); a CR anywhere else is an error.
 *   - Only "HTTP/1.1" is served: "HTTP/1.0" and any other well-formed
 *     version give -EPROTONOSUPPORT (the caller answers 505), because the
 *     upgrade and Host rules below are HTTP/1.1's.
 *   - Only origin-form request targets ("/path?query"): this is an origin
 *     server, never a proxy.
 *   - Host must appear exactly once (RFC 9112 3.2); Origin,
 *     Sec-WebSocket-Key and Sec-WebSocket-Version at most once, since two
 *     values of one of them would leave the checks of the caller guessing
 *     which one counts.
 *
 * Errors (negative errno codes; the caller's answer in brackets):
 *   -EBADMSG          malformed head, obs-fold, bad or duplicate Host [400]
 *   -E2BIG            no end of head within HTTP_HEAD_MAX bytes [431]
 *   -EPROTONOSUPPORT  an HTTP version other than 1.1 [505]
 * After an error the parser keeps returning it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest head accepted, its empty line included. */
#define HTTP_HEAD_MAX 8192

/* Sec-WebSocket-Accept: 28 base64 characters and a NUL. */
#define HTTP_WS_ACCEPT_SIZE 29

/* Bytes [off, off + len) of the caller's buffer; len 0 for an absent field
 * (see the 'has_' flags where empty and absent differ). */
typedef struct HttpSpan {
        uint16_t off;
        uint16_t len;
} HttpSpan;

typedef struct HttpRequest {
        /* --- results, complete once http_parse() returned > 0 --- */
        HttpSpan method; /* a token, case-sensitive ("GET") */
        HttpSpan target; /* the whole request-target, "/" first */
        HttpSpan path;   /* the target up to '?', still percent-encoded */
        HttpSpan host;   /* the value, surrounding whitespace trimmed */
        HttpSpan origin;
        HttpSpan ws_key;
        bool has_origin;
        bool has_ws_key;
        /* Sec-WebSocket-Key decodes to exactly 16 bytes (RFC 6455 4.1). */
        bool ws_key_valid;
        /* Sec-WebSocket-Version: -1 absent, -2 not a number 0..255. */
        int16_t ws_version;
        /* Upgrade's list holds "websocket", Connection's "upgrade"
         * (case-insensitive; the fields may repeat, their lists join). */
        bool upgrade_websocket;
        bool connection_upgrade;
        /* Content-Length or Transfer-Encoding present: this server reads no
         * request bodies, so the caller refuses such a request (400) rather
         * than misread the body as the next request. */
        bool has_body;

        /* --- parser state --- */
        uint16_t scan;     /* where the next unparsed line starts */
        uint16_t head_len; /* the result once complete, else 0 */
        uint8_t n_host;    /* Host fields seen */
        bool started;      /* the request line is parsed */
        int error;         /* the error returned, sticky */
} HttpRequest;

#define HTTP_REQUEST_INIT                                                                                   \
        { .ws_version = -1 }

/* Parses what buf[0, len) holds of the head. Returns 0 when more bytes are
 * needed, the length of the head (the offset just past its empty line;
 * anything after it is the caller's, e.g. pipelined bytes) when it is
 * complete, or a negative error (see above). Once it returned > 0, further
 * calls return the same. Only the first HTTP_HEAD_MAX bytes are ever read.
 * -EINVAL (not kept) when 'len' is below what earlier calls parsed. */
int http_parse(HttpRequest *r, const char *buf, size_t len);

/* Whether the span equals the NUL-terminated 's' (exactly, or ignoring
 * ASCII case). */
bool http_span_eq(const char *buf, HttpSpan s, const char *str);
bool http_span_caseeq(const char *buf, HttpSpan s, const char *str);

/* The checks of RFC 6455 4.2.1 on a parsed head. Returns 1 for a valid
 * WebSocket opening handshake, 0 when the request asks for no WebSocket
 * upgrade at all (no "Upgrade: websocket": an ordinary request), -EBADMSG
 * when it asks for one but is not a GET, lacks "Connection: upgrade" or a
 * valid Sec-WebSocket-Key, or has a body [400], -ENOPROTOOPT when
 * Sec-WebSocket-Version is not 13 [426 with "Sec-WebSocket-Version: 13"]. */
int http_ws_check(const HttpRequest *r, const char *buf);

/* Computes the Sec-WebSocket-Accept value for the key's 'len' bytes:
 * base64(SHA-1(key "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), NUL-terminated
 * in 'out'. Returns 0, or -EINVAL for a key longer than any valid one, -EIO
 * if libcrypto fails. */
int http_ws_accept(const char *key, size_t len, char out[HTTP_WS_ACCEPT_SIZE]);
