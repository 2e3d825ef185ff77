/* WebSocket frame codec: the decoder owns one frame header in progress and
 * one control frame's payload, never data payload (unmasked in place in the
 * caller's buffer and handed out as spans).
 * Invariants: every check is made at the byte that decides it, in stream
 * order, so the events and the error do not depend on how the input was
 * cut; a data span is handed out only once it is known to be valid (UTF-8
 * of a text message checked, the message's length within the limit);
 * msg_opcode is non-zero exactly while a data message is in progress; a
 * non-zero 'error' is final. */
#include "wsframe.h"

#include <errno.h>
#include <string.h>

/* --- UTF-8 --------------------------------------------------------------------- */

int utf8_feed(Utf8State *u, const uint8_t *p, size_t n) {
        unsigned need = u->need, lo = u->lo, hi = u->hi;
        size_t i = 0;
        while (i < n) {
                uint8_t c = p[i++];
                if (need) {
                        if (c < lo || c > hi)
                                return -EILSEQ;
                        need--;
                        lo = 0x80;
                        hi = 0xBF;
                        continue;
                }
                if (c < 0x80) {
                        /* ASCII runs dominate chat text: 8 bytes a step. */
                        uint64_t w;
                        while (n - i >= 8 && (memcpy(&w, p + i, 8), (w & 0x8080808080808080ULL) == 0))
                                i += 8;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        need = 1;
                else if (c == 0xE0) {
                        need = 2;
                        lo = 0xA0; /* E0 80..9F would be overlong */
                } else if (c == 0xED) {
                        need = 2;
                        hi = 0x9F; /* ED A0..BF are the surrogates */
                } else if (c >= 0xE1 && c <= 0xEF)
                        need = 2;
                else if (c == 0xF0) {
                        need = 3;
                        lo = 0x90; /* F0 80..8F would be overlong */
                } else if (c >= 0xF1 && c <= 0xF3)
                        need = 3;
                else if (c == 0xF4) {
                        need = 3;
                        hi = 0x8F; /* F4 90.. is past U+10FFFF */
                } else
                        return -EILSEQ; /* 80..C1 as a lead byte, F5..FF */
        }
        u->need = (uint8_t)need;
        u->lo = (uint8_t)lo;
        u->hi = (uint8_t)hi;
        return 0;
}

bool utf8_valid(const void *p, size_t n) {
        Utf8State u = UTF8_STATE_INIT;
        return utf8_feed(&u, p, n) == 0 && utf8_complete(&u);
}

/* --- the decoder ------------------------------------------------------------ */

static bool is_control(uint8_t opcode) {
        return opcode & 0x8;
}

bool wsframe_close_code_valid(uint16_t code) {
        return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
               (code >= 3000 && code <= 4999);
}

uint16_t wsframe_close_code(int error) {
        switch (error) {
        case -EMSGSIZE:
                return WS_CLOSE_TOO_BIG;
        case -EILSEQ:
                return WS_CLOSE_INVALID_DATA;
        default:
                return WS_CLOSE_PROTOCOL_ERROR;
        }
}

/* XORs n bytes with the mask, starting at the given phase. Byte order does
 * not matter: the mask is laid out in memory as the bytes it applies to. */
static void unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint8_t *phase) {
        uint8_t m[8];
        for (unsigned k = 0; k < 8; k++)
                m[k] = mask[(*phase + k) & 3];
        uint64_t m64, w;
        memcpy(&m64, m, 8);
        size_t i = 0;
        for (; n - i >= 8; i += 8) {
                memcpy(&w, p + i, 8);
                w ^= m64;
                memcpy(p + i, &w, 8);
        }
        for (; i < n; i++)
                p[i] ^= m[i & 3];
        *phase = (uint8_t)((*phase + n) & 3);
}

/* The header length the bytes so far call for: 2 until the 7-bit length is
 * known, then 2 + extended length + 4 mask bytes. */
static unsigned header_need(const WsDecoder *d) {
        if (d->hdr_len < 2)
                return 2;
        unsigned len7 = d->hdr[1] & 0x7F;
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
}

static int check_first_byte(const WsDecoder *d, uint8_t b) {
        uint8_t opcode = b & 0x0F;
        bool fin = b & 0x80;
        /* No extension is ever negotiated, so no RSV bit has a meaning. */
        if (b & 0x70)
                return -EPROTO;
        switch (opcode) {
        case WS_OP_CONTINUATION:
                return d->msg_opcode ? 0 : -EPROTO;
        case WS_OP_TEXT:
        case WS_OP_BINARY:
                return d->msg_opcode ? -EPROTO : 0;
        case WS_OP_CLOSE:
        case WS_OP_PING:
        case WS_OP_PONG:
                return fin ? 0 : -EPROTO;
        default:
                return -EPROTO;
        }
}

/* Called once the length bytes are in: the length's own rules, then the
 * message limit, before any payload is read. */
static int check_length(WsDecoder *d, uint64_t max_msg) {
        unsigned len7 = d->hdr[1] & 0x7F;
        uint64_t len = len7;
        if (len7 == 126) {
                len = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
                if (len < 126)
                        return -EPROTO;
        } else if (len7 == 127) {
                len = 0;
                for (unsigned k = 0; k < 8; k++)
                        len = len << 8 | d->hdr[2 + k];
                if (len >> 63 || len <= 0xFFFF)
                        return -EPROTO;
        }
        d->left = len;
        if (is_control(d->opcode))
                return 0;
        /* msg_len <= max_msg held when this message's earlier frames were
         * read; a lowered limit makes the next frame refuse it. */
        if (d->msg_len > max_msg || len > max_msg - d->msg_len)
                return -EMSGSIZE;
        return 0;
}

/* Takes header bytes; returns 1 when the header is complete, 0 when more
 * input is needed, or an error. */
static int read_header(WsDecoder *d, uint8_t **in, size_t *in_len, uint64_t max_msg) {
        while (*in_len > 0) {
                uint8_t b = **in;
                unsigned at = d->hdr_len;
                int r = 0;
                if (at == 0) {
                        r = check_first_byte(d, b);
                        d->opcode = b & 0x0F;
                        d->fin = b & 0x80;
                } else if (at == 1) {
                        /* Every client frame is masked (RFC 6455 5.1); a
                         * control frame's payload fits in 125 bytes (5.5). */
                        if (!(b & 0x80) || (is_control(d->opcode) && (b & 0x7F) > WSFRAME_CONTROL_MAX))
                                r = -EPROTO;
                }
                if (r < 0)
                        return r;
                d->hdr[d->hdr_len++] = b;
                (*in)++;
                (*in_len)--;

                unsigned need = header_need(d);
                if (d->hdr_len == need - 4) {
                        r = check_length(d, max_msg);
                        if (r < 0)
                                return r;
                }
                if (d->hdr_len == need) {
                        memcpy(d->mask, d->hdr + need - 4, 4);
                        d->mask_phase = 0;
                        d->hdr_len = 0;
                        d->in_payload = true;
                        d->ctl_len = 0;
                        if (!is_control(d->opcode)) {
                                if (d->opcode != WS_OP_CONTINUATION) {
                                        d->msg_opcode = d->opcode;
                                        d->utf8 = (Utf8State)UTF8_STATE_INIT;
                                }
                                d->msg_len += d->left;
                        }
                        return 1;
                }
        }
        return 0;
}

static int control_event(WsDecoder *d, WsFrameEvent *ev) {
        *ev = (WsFrameEvent){.data = d->ctl, .len = d->ctl_len};
        switch (d->opcode) {
        case WS_OP_PING:
                ev->type = WSFRAME_PING;
                return 1;
        case WS_OP_PONG:
                ev->type = WSFRAME_PONG;
                return 1;
        default:
                break;
        }
        ev->type = WSFRAME_CLOSE;
        ev->close_code = WS_CLOSE_NO_STATUS;
        if (d->ctl_len == 1)
                return -EPROTO;
        if (d->ctl_len >= 2) {
                ev->close_code = (uint16_t)(d->ctl[0] << 8 | d->ctl[1]);
                if (!wsframe_close_code_valid(ev->close_code))
                        return -EPROTO;
                if (!utf8_valid(d->ctl + 2, d->ctl_len - 2u))
                        return -EILSEQ;
                ev->data = d->ctl + 2;
                ev->len = d->ctl_len - 2u;
        }
        d->closed = true;
        return 1;
}

static int decode(WsDecoder *d, uint8_t **in, size_t *in_len, uint64_t max_msg, WsFrameEvent *ev) {
        for (;;) {
                if (d->closed) {
                        *in += *in_len;
                        *in_len = 0;
                        return 0;
                }
                if (!d->in_payload) {
                        int r = read_header(d, in, in_len, max_msg);
                        if (r <= 0)
                                return r;
                }

                size_t n = d->left < *in_len ? (size_t)d->left : *in_len;
                uint8_t *p = *in;
                if (is_control(d->opcode)) {
                        memcpy(d->ctl + d->ctl_len, p, n);
                        unmask(d->ctl + d->ctl_len, n, d->mask, &d->mask_phase);
                        d->ctl_len = (uint8_t)(d->ctl_len + n);
                        *in += n;
                        *in_len -= n;
                        d->left -= n;
                        if (d->left > 0)
                                return 0;
                        d->in_payload = false;
                        return control_event(d, ev);
                }

                unmask(p, n, d->mask, &d->mask_phase);
                if (d->msg_opcode == WS_OP_TEXT && utf8_feed(&d->utf8, p, n) < 0)
                        return -EILSEQ;
                *in += n;
                *in_len -= n;
                d->left -= n;
                bool end = d->left == 0 && d->fin;
                if (end && d->msg_opcode == WS_OP_TEXT && !utf8_complete(&d->utf8))
                        return -EILSEQ;
                if (d->left == 0)
                        d->in_payload = false;
                if (n > 0 || end) {
                        *ev = (WsFrameEvent){
                                .type = WSFRAME_DATA,
                                .opcode = d->msg_opcode,
                                .msg_end = end,
                                .data = p,
                                .len = n,
                        };
                        if (end) {
                                d->msg_opcode = 0;
                                d->msg_len = 0;
                        }
                        return 1;
                }
                /* An empty non-final frame: nothing to hand out. */
                if (*in_len == 0)
                        return 0;
        }
}

int wsframe_next(WsDecoder *d, uint8_t **in, size_t *in_len, uint64_t max_msg, WsFrameEvent *ev) {
        if (d->error)
                return d->error;
        int r = decode(d, in, in_len, max_msg, ev);
        if (r < 0)
                d->error = r;
        return r;
}

/* --- the encoder ------------------------------------------------------------ */

size_t wsframe_header(uint8_t buf[WSFRAME_HEADER_MAX], uint8_t opcode, bool fin, uint64_t len) {
        buf[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
        if (len < 126) {
                buf[1] = (uint8_t)len;
                return 2;
        }
        if (len <= 0xFFFF) {
                buf[1] = 126;
                buf[2] = (uint8_t)(len >> 8);
                buf[3] = (uint8_t)len;
                return 4;
        }
        buf[1] = 127;
        for (unsigned k = 0; k < 8; k++)
                buf[2 + k] = (uint8_t)(len >> (56 - 8 * k));
        return 10;
}

static size_t control_frame(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], uint8_t opcode, const uint8_t *payload,
                            size_t len) {
        if (len > WSFRAME_CONTROL_MAX)
                len = WSFRAME_CONTROL_MAX;
        size_t h = wsframe_header(buf, opcode, true, len);
        if (len)
                memcpy(buf + h, payload, len);
        return h + len;
}

size_t wsframe_close(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], uint16_t code, const char *reason, size_t len) {
        if (code == 0)
                return control_frame(buf, WS_OP_CLOSE, NULL, 0);
        const uint8_t *r = (const uint8_t *)reason;
        if (len > WSFRAME_CONTROL_MAX - 2) {
                /* Cut before a continuation byte would split a character. */
                len = WSFRAME_CONTROL_MAX - 2;
                while (len > 0 && (r[len] & 0xC0) == 0x80)
                        len--;
        }
        uint8_t payload[WSFRAME_CONTROL_MAX];
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        if (len)
                memcpy(payload + 2, r, len);
        return control_frame(buf, WS_OP_CLOSE, payload, 2 + len);
}

size_t wsframe_pong(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], const uint8_t *payload, size_t len) {
        return control_frame(buf, WS_OP_PONG, payload, len);
}

size_t wsframe_ping(uint8_t buf[WSFRAME_CONTROL_FRAME_MAX], const uint8_t *payload, size_t len) {
        return control_frame(buf, WS_OP_PING, payload, len);
}
