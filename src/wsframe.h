/* RFC 6455 framing: the decoder of client-to-server frames, the encoder of
 * server-to-client frames, and an incremental UTF-8 validator. Pure: no I/O,
 * no allocation.
 *
 * Ownership. The decoder owns only its fixed state: a frame header in
 * progress and the payload of one control frame (at most 125 bytes). Data
 * payload is never copied: it is unmasked in place in the caller's input
 * buffer (which is why the input is not const) and handed out as spans
 * pointing into it, each flagged with whether it ends the message. The
 * caller (the WebSocket codec) appends the spans of a message to its own
 * message buffer, or, when a whole message lies in one read, may use the
 * span where it is. Control frames may come between the fragments of a data
 * message and are handed out whole, from the decoder's buffer, without
 * disturbing the message in progress.
 *
 * Errors, each with the close code to send (wsframe_close_code()):
 *   -EPROTO   1002  protocol error: unmasked frame, RSV bits, unknown
 *                   opcode, non-minimal or 64-bit-MSB length, fragmented
 *                   or oversize control frame, continuation without a
 *                   message or a new message inside one, 1-byte close
 *                   payload or an invalid close code
 *   -EMSGSIZE 1009  the message would exceed the caller's limit; reported
 *                   as soon as a frame header makes it certain, before any
 *                   of that frame's payload
 *   -EILSEQ   1007  a text message (or a close reason) is not UTF-8; a
 *                   span is checked before it is handed out, so no invalid
 *                   byte ever reaches the caller
 * After an error the decoder keeps returning it: the caller closes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
        WS_OP_CONTINUATION = 0x0,
        WS_OP_TEXT = 0x1,
        WS_OP_BINARY = 0x2,
        WS_OP_CLOSE = 0x8,
        WS_OP_PING = 0x9,
        WS_OP_PONG = 0xA,
};

/* Close codes this server sends (RFC 6455 7.4.1). */
enum {
        WS_CLOSE_NORMAL = 1000,
        WS_CLOSE_GOING_AWAY = 1001,
        WS_CLOSE_UNSUPPORTED = 1003, /* here: a message holding an LF */
        WS_CLOSE_PROTOCOL_ERROR = 1002,
        WS_CLOSE_NO_STATUS = 1005, /* never sent: an empty close payload */
        WS_CLOSE_INVALID_DATA = 1007,
        WS_CLOSE_TOO_BIG = 1009,
};

/* A server frame header: 2 + 8 length bytes, no mask. */
#define WSFRAME_HEADER_MAX 10
/* The payload limit of a control frame, and a whole server control frame. */
#define WSFRAME_CONTROL_MAX 125
#define WSFRAME_CONTROL_FRAME_MAX (2 + WSFRAME_CONTROL_MAX)

/* --- UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) --- */

/* Where a validation stands between chunks: how many continuation bytes are
 * still due, and the range the next one must fall in (narrower than
 * 80..BF right after E0, ED, F0 and F4, which is what rules out overlong
 * forms, surrogates and code points past U+10FFFF). */
typedef struct Utf8State {
        uint8_t need;
        uint8_t lo, hi;
} Utf8State;

#define UTF8_STATE_INIT                                                                                     \
        { 0, 0x80, 0xBF }

/* Feeds n more bytes. Returns 0, or -EILSEQ as soon as the bytes cannot be
 * UTF-8 whatever follows (the state is then meaningless). */
int utf8_feed(Utf8State *u, const uint8_t *p, size_t n);

/* Whether the bytes fed so far end on a character boundary: valid UTF-8 as
 * a whole if no utf8_feed() failed. */
static inline bool utf8_complete(const Utf8State *u) {
        return u->need == 0;
}

/* Whether p[0, n) is valid UTF-8 on its own. */
bool utf8_valid(const void *p, size_t n);

/* --- the decoder ------------------------------------------------------------ */

typedef enum WsFrameEventType {
        WSFRAME_DATA = 1, /* a span of a text or binary message */
        WSFRAME_PING,
        WSFRAME_PONG,
        WSFRAME_CLOSE,
} WsFrameEventType;

typedef struct WsFrameEvent {
        WsFrameEventType type;
        /* DATA: WS_OP_TEXT or WS_OP_BINARY, the message's, on every span. */
        uint8_t opcode;
        /* DATA: this span ends the message (it may be empty: an empty
         * message, or a final frame with no payload). */
        bool msg_end;
        /* CLOSE: the code, WS_CLOSE_NO_STATUS for an empty payload. */
        uint16_t close_code;
        /* DATA: unmasked payload in the caller's input buffer, valid as
         * long as that buffer is. PING, PONG: the whole payload; CLOSE: the
         * reason (valid UTF-8); both in the decoder, valid until its next
         * call. */
        const uint8_t *data;
        size_t len;
} WsFrameEvent;

typedef struct WsDecoder {
        /* The header of the frame being read: 2 to 14 bytes. */
        uint8_t hdr[14];
        uint8_t hdr_len;
        bool in_payload; /* header complete, payload being read */
        uint8_t opcode;  /* of the current frame */
        bool fin;
        uint8_t mask[4];
        uint8_t mask_phase; /* payload bytes read so far, mod 4 */
        uint64_t left;      /* payload bytes of the frame still to come */
        /* The data message in progress: its opcode (0: none), its payload
         * (each frame's length counted at its header, so it never exceeds
         * the caller's limit), and
         * the UTF-8 state of a text message. */
        uint8_t msg_opcode;
        uint64_t msg_len;
        Utf8State utf8;
        /* The payload of a control frame, collected whole. */
        uint8_t ctl[WSFRAME_CONTROL_MAX];
        uint8_t ctl_len;
        bool closed; /* a close frame came: the peer must send no more */
        int error;   /* sticky */
} WsDecoder;

#define WSDECODER_INIT                                                                                      \
        { .utf8 = UTF8_STATE_INIT }

/* Decodes what it can of *in / *in_len (moving them past what it consumed,
 * unmasking data payload in place) into at most one event. Returns 1 with
 * *ev set, 0 when the input is used up with no further event (a frame in
 * progress is kept), or a negative error (see above). 'max_msg' bounds the
 * payload of one data message, all its fragments together; it may change
 * between calls (a reload) and applies to the frames read after. After a
 * CLOSE event the rest of the input, and of any later input, is discarded. */
int wsframe_next(WsDecoder *d, uint8_t **in, size_t *in_len, uint64_t max_msg, WsFrameEvent *ev);

/* The close code for an error of wsframe_next() (1002 for any other). */
uint16_t wsframe_close_code(int error);

/* Whether a peer may send this close code (RFC 6455 7.4: 1000-1003,
 * 1007-1014 as registered with IANA, 3000-4999). */
bool wsframe_close_code_valid(uint16_t code);

/* --- the encoder (server frames are never masked) ---------------------------- */

/* Writes the header of a frame with 'len' payload bytes. Returns its length,
 * 2 to WSFRAME_HEADER_MAX, so that the header can go in an iovec before the
 * payload's own spans. */
size_t wsframe_header(uint8_t buf[WSFRAME_HEADER_MAX], uint8_t opcode, bool fin, uint64_t len);

/* A whole close frame: the code and as much of the reason as fits in 123
 * bytes, cut at a character boundary. Code 0: an empty payload (the answer
 * to a close that had none). Returns the frame's length. */
size_t wsframe_close(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], uint16_t code, const char *reason, size_t len);

/* A whole pong echoing a ping's payload (at most WSFRAME_CONTROL_MAX bytes;
 * more is cut), or a ping with the given payload. Return the frame's length. */
size_t wsframe_pong(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], const uint8_t *payload, size_t len);
size_t wsframe_ping(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], const uint8_t *payload, size_t len);
