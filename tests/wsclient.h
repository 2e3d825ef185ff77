/* A raw WebSocket client for the integration tests (RFC 6455 client side),
 * written apart from the daemon's codec (src/wsframe.c, src/http.c) so that
 * it catches their bugs instead of sharing them. It can say anything a
 * client may say and much that it must not: any FIN/RSV/opcode/mask/length
 * encoding, headers that claim more payload than follows, upgrade requests
 * as raw bytes, writes chopped at any size. What the server sends back is
 * checked strictly (unmasked, no RSV bits, minimal lengths, whole control
 * frames, valid close payloads) and every wait has a deadline.
 *
 * The daemon's wire form for broadcast messages is checked on every frame
 * received, whichever call receives it: a message is one data frame, or two
 * fragments (a first one, FIN clear, then one final continuation) exactly
 * when its single-frame header would hold the byte 0x0A; no data frame
 * header ever holds 0x0A; no control frame comes between fragments; and
 * every message is followed by exactly one trailer pong (WSC_TRAILER: a
 * pong with the payload "\n") before the next data frame, the close or the
 * end. Trailers are skipped silently by the message calls (wsc_recv() and
 * the wsc_expect_*() built on it); any other pong is an answer to one of
 * the client's pings, so the client never sends a ping with the payload
 * "\n" (it could not tell the answer from a trailer).
 *
 * Plain TCP or TLS (OpenSSL). The socket is non-blocking; waits use poll().
 * Failures end the test through criterion, as in harness.c. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
        WSC_CONT = 0x0,
        WSC_TEXT = 0x1,
        WSC_BINARY = 0x2,
        WSC_CLOSE = 0x8,
        WSC_PING = 0x9,
        WSC_PONG = 0xA,
};

/* The trailer pong that follows every broadcast message on the wire. */
#define WSC_TRAILER "\x8a\x01\x0a"
#define WSC_TRAILER_LEN 3

/* Close "code" meaning a close frame with an empty payload (RFC 6455 7.1.5:
 * the receiver then reports 1005, which is never on the wire). */
#define WSC_CLOSE_EMPTY 1005

typedef struct WsClient {
        int fd;
        char who[96]; /* names the client in failure messages ("fd N") */
        SSL_CTX *ctx; /* both NULL for plain TCP */
        SSL *ssl;
        /* Answer pings (with pongs echoing them) while waiting for other
         * frames, instead of handing them out; counted in pings_answered. */
        bool auto_pong;
        unsigned pings_answered;
        /* Received bytes not yet taken as a response head or a frame. */
        uint8_t *in;
        size_t in_len, in_cap;
        bool eof;         /* the server closed (FIN or reset) */
        uint8_t *payload; /* the payload of the frame last received */
        size_t payload_cap;
        /* The data message last begun in fragments: its opcode, its frames
         * and payload so far; msg_open while more fragments are due. */
        bool msg_open;
        uint8_t msg_opcode;
        unsigned msg_frames;
        uint8_t *msg;
        size_t msg_len, msg_cap;
        /* A whole broadcast message came; its trailer pong has not yet. */
        bool trailer_due;
        uint64_t messages, trailers; /* received so far */
        uint32_t mask_state;         /* next masking keys (never 0: a server that
                                        forgets to unmask must see garbage) */
} WsClient;

/* --- connecting ------------------------------------------------------------ */

/* Takes a connected TCP socket (e.g. from client_connect_rcvbuf()). */
void wsc_adopt(WsClient *c, int fd);
/* TCP to 127.0.0.1:port, no HTTP yet. */
void wsc_connect(WsClient *c, uint16_t port);
/* TCP then a TLS handshake, verifying the server against ca_file and the
 * address 127.0.0.1; with cert_pem/key_pem (may be NULL) a client
 * certificate is offered. False when the handshake failed. */
bool wsc_connect_tls(WsClient *c, uint16_t port, const char *ca_file, const char *cert_pem,
                     const char *key_pem);
/* Frees everything and closes the socket (no closing handshake). */
void wsc_free(WsClient *c);

/* --- HTTP ------------------------------------------------------------------- */

/* The sample key of RFC 6455 1.3 and its accept value. */
#define WSC_SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WSC_SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + RFC GUID)). */
void wsc_accept_for(const char *key, char out[29]);

/* The upgrade request a browser would send, minus Origin: "GET path
 * HTTP/1.1", Host, Upgrade, Connection, Sec-WebSocket-Key: key,
 * Sec-WebSocket-Version: 13, then extra_headers (whole lines with CR LF,
 * may be NULL), then the empty line. Returns a malloc'ed string. */
char *wsc_request(const char *path, const char *key, const char *extra_headers);

typedef struct WsResponse {
        int status;
        char head[8192]; /* status line and fields, NUL-terminated */
        size_t head_len;
        char *body; /* Content-Length bytes (malloc'ed, NUL-terminated) */
        size_t body_len;
} WsResponse;

/* Reads a response head (≤ 8191 bytes, within timeout_ms) and, when
 * with_body, the Content-Length bytes of body after it. Bytes after that
 * stay in the client for frames. Fails the test if none comes whole. */
void wsc_read_response(WsClient *c, WsResponse *r, bool with_body, int timeout_ms);
void wsc_response_free(WsResponse *r);
/* The value of the first field called name (case-insensitive), surrounding
 * blanks trimmed, into value; false when there is none. */
bool wsc_header(const WsResponse *r, const char *name, char *value, size_t size);

/* Sends the default upgrade request for path (with a fresh random key and
 * extra_headers as for wsc_request()) and checks the 101: Upgrade:
 * websocket, Connection: Upgrade, the right Sec-WebSocket-Accept, no
 * subprotocol, no extension. */
void wsc_upgrade(WsClient *c, const char *path, const char *extra_headers);
/* wsc_connect() + wsc_upgrade(c, "/", NULL). */
void wsc_open(WsClient *c, uint16_t port);

/* --- sending ---------------------------------------------------------------- */

/* Length encodings: the minimal one (which RFC 6455 5.2 requires), or a
 * forced 16- or 64-bit one (non-minimal for short payloads), or 64 bits
 * with the most significant bit set (forbidden). */
typedef enum WscLenForm {
        WSC_LEN_MINIMAL = 0,
        WSC_LEN_16,
        WSC_LEN_64,
        WSC_LEN_64_MSB,
} WscLenForm;

/* How a frame is sent. All zero is a valid final, masked frame of opcode
 * 0 (continuation): every field that breaks a rule is one to set. */
typedef struct WscFrame {
        uint8_t opcode;
        bool more;     /* FIN clear: more fragments follow */
        uint8_t rsv;   /* RSV1..RSV3 as the bits 4, 2, 1 */
        bool unmasked; /* clients must mask: this one does not */
        WscLenForm len_form;
        /* The length the header claims, when not 0; only the payload given
         * is sent (a frame cut short, or a header alone). */
        uint64_t declared_len;
} WscFrame;

/* A growing byte buffer, for streams of several frames sent at once. */
typedef struct WscBytes {
        uint8_t *data;
        size_t len, cap;
} WscBytes;
void wsc_bytes_add(WscBytes *b, const void *p, size_t n);
void wsc_bytes_free(WscBytes *b);

/* Appends one frame to b, masked with the client's next key (unless
 * f->unmasked). A ping with the payload "\n" fails the test: its answer
 * would be a trailer pong. */
void wsc_bytes_frame(WsClient *c, WscBytes *b, const WscFrame *f, const void *payload, size_t len);

/* Sends all of buf within 10 s; fails the test otherwise. */
void wsc_send_raw(WsClient *c, const void *buf, size_t len);
/* The same in writes of at most chunk bytes, pause_ms apart (so that the
 * server reads them apart). */
void wsc_send_chopped(WsClient *c, const void *buf, size_t len, size_t chunk, int pause_ms);
/* Sends all of buf within timeout_ms; false when the peer reset or closed
 * the connection or the time ran out (a client the server may cut off). */
bool wsc_try_send_raw(WsClient *c, const void *buf, size_t len, int timeout_ms);
/* One frame, sent at once. */
void wsc_send_frame(WsClient *c, const WscFrame *f, const void *payload, size_t len);
/* One final masked frame of opcode (a whole message, or a control frame). */
void wsc_send_msg(WsClient *c, uint8_t opcode, const void *payload, size_t len);
void wsc_send_text(WsClient *c, const char *s);
/* A close frame: code (WSC_CLOSE_EMPTY: no payload) and reason. */
void wsc_send_close(WsClient *c, uint16_t code, const char *reason);

/* --- receiving -------------------------------------------------------------- */

/* One frame as it came, trailer pongs and fragments included. */
typedef struct WscFrameIn {
        uint8_t opcode;
        bool fin;
        const uint8_t *payload; /* valid until the next receive */
        size_t len;
        uint8_t head[10]; /* the header's bytes (a server's has no key) */
        size_t head_len;
} WscFrameIn;

/* The next frame within timeout_ms: 1, 0 when none came whole in time
 * (what came of it stays buffered), -1 when the connection ended before a
 * byte of one (a frame cut by the end fails the test, as does an end
 * inside a fragmented message or before a trailer due). Fails the test on
 * a frame no server may send (masked, RSV bits, unknown opcode,
 * non-minimal length, a control frame over 125 bytes or fragmented) and
 * on one out of the daemon's wire form (see the top). Pings answered by
 * auto_pong are not handed out. */
int wsc_recv_frame(WsClient *c, WscFrameIn *f, int timeout_ms);

/* One message: a whole data message (WSC_TEXT or WSC_BINARY, its fragments
 * joined) or a control frame (never a trailer pong). */
typedef struct WscMsgIn {
        uint8_t opcode;
        const uint8_t *payload; /* NUL-terminated, valid until the next receive */
        size_t len;
        unsigned frames; /* the frames it came in */
} WscMsgIn;

/* The next message within timeout_ms, as for wsc_recv_frame(): 1, 0 (what
 * came of it stays buffered, fragments included), -1 at the end. Trailer
 * pongs are checked and skipped. */
int wsc_recv(WsClient *c, WscMsgIn *m, int timeout_ms);
/* The next message is of opcode with exactly this payload. */
void wsc_expect_msg(WsClient *c, uint8_t opcode, const void *payload, size_t len, int timeout_ms);
/* Whether a frame of len bytes needs a header that holds the byte 0x0A
 * (then the daemon sends a message of len bytes in two fragments). */
bool wsc_head_holds_lf(uint64_t len);
/* The next message is the text message s (within 5 s). */
void wsc_expect_text(WsClient *c, const char *s);
/* Nothing is pending: no bytes of a frame buffered, no fragment of a
 * message, no trailer due. */
bool wsc_between_messages(const WsClient *c);
/* The next frame is a close with this code (WSC_CLOSE_EMPTY: no payload),
 * a valid reason (UTF-8, ≤ 123 bytes) copied into reason when not NULL. */
void wsc_expect_close(WsClient *c, uint16_t code, char *reason, size_t reason_size, int timeout_ms);
/* The connection ends within timeout_ms with nothing else arriving (but
 * the trailer due). */
void wsc_expect_eof(WsClient *c, int timeout_ms);
/* A close with code arrives; the client answers it (the same code) and the
 * server then closes TCP: the whole closing handshake the server leads. */
void wsc_expect_closing_handshake(WsClient *c, uint16_t code);
/* The client leads: sends a close with code, expects it echoed, then EOF. */
void wsc_close_handshake(WsClient *c, uint16_t code);
/* Fails the test, saying what came, if anything (a byte, the end) but the
 * trailer due arrives within wait_ms. */
void wsc_expect_nothing(WsClient *c, int wait_ms);

/* --- UTF-8 ------------------------------------------------------------------ */

/* RFC 3629 UTF-8, decoded by code points: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
bool wsc_utf8_valid(const void *p, size_t n);
