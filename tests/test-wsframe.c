/* Unit tests for wsframe.c: client frames of every kind decode to the same
 * messages and control frames however the stream is cut; every protocol
 * rule gives its error and close code; UTF-8 is checked across fragments
 * and reads; the encoder writes minimal headers and whole control frames. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsframe.h"

/* --- helpers ---------------------------------------------------------------- */

static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends one client frame: first byte b0 (FIN, RSV, opcode), the payload
 * masked with test_mask (unless !masked), its length in the minimal form or
 * in the one forced by 'form' (7, 16 or 64). Returns the new length. */
static size_t frame(uint8_t *out, size_t at, uint8_t b0, const void *payload, size_t len, bool masked,
                    int form) {
        uint8_t *p = out + at;
        *p++ = b0;
        if (!form)
                form = len < 126 ? 7 : len <= 0xFFFF ? 16 : 64;
        uint8_t m = masked ? 0x80 : 0;
        if (form == 7)
                *p++ = (uint8_t)(m | len);
        else if (form == 16) {
                *p++ = m | 126;
                *p++ = (uint8_t)(len >> 8);
                *p++ = (uint8_t)len;
        } else {
                *p++ = m | 127;
                for (int k = 7; k >= 0; k--)
                        *p++ = (uint8_t)((uint64_t)len >> (8 * k));
        }
        if (masked) {
                memcpy(p, test_mask, 4);
                p += 4;
        }
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (masked ? test_mask[i & 3] : 0));
        return (size_t)(p + len - out);
}

#define FIN 0x80

/* What came out of a stream: data messages whole, control frames, and the
 * result of the last call. */
typedef struct Out {
        char msgs[8][70000];
        size_t msg_len[8];
        uint8_t msg_op[8];
        size_t n_msgs;
        char partial[70000]; /* a message in progress */
        size_t partial_len;
        WsFrameEventType ctl_type[8];
        uint16_t ctl_code[8];
        char ctl[8][126];
        size_t ctl_len[8];
        size_t n_ctl;
        char order[32]; /* 'm' message, 'c' control, in order */
        int result;
} Out;

/* Decodes 'len' stream bytes in reads of 'step' bytes (0: at once), each read
 * in a buffer of its own that is scribbled over afterwards, so a span used
 * after its read, or a read past the input, shows. */
static void decode(const uint8_t *s, size_t len, size_t step, uint64_t max, Out *o) {
        memset(o, 0, sizeof(*o));
        WsDecoder d = WSDECODER_INIT;
        size_t off = 0;
        do {
                size_t n = step && len - off > step ? step : len - off;
                uint8_t *buf = malloc(n ? n : 1);
                cr_assert_not_null(buf);
                memcpy(buf, s + off, n);
                off += n;
                uint8_t *in = buf;
                size_t left = n;
                WsFrameEvent ev;
                int r;
                while ((r = wsframe_next(&d, &in, &left, max, &ev)) > 0) {
                        cr_assert(in >= buf && in <= buf + n);
                        if (ev.type == WSFRAME_DATA) {
                                cr_assert(ev.len == 0 || (ev.data >= buf && ev.data + ev.len <= in));
                                cr_assert(ev.opcode == WS_OP_TEXT || ev.opcode == WS_OP_BINARY);
                                memcpy(o->partial + o->partial_len, ev.data, ev.len);
                                o->partial_len += ev.len;
                                if (ev.msg_end) {
                                        cr_assert_lt(o->n_msgs, 8);
                                        memcpy(o->msgs[o->n_msgs], o->partial, o->partial_len);
                                        o->msg_len[o->n_msgs] = o->partial_len;
                                        o->msg_op[o->n_msgs++] = ev.opcode;
                                        o->partial_len = 0;
                                        o->order[strlen(o->order)] = 'm';
                                }
                        } else {
                                cr_assert_lt(o->n_ctl, 8);
                                cr_assert_leq(ev.len, 125);
                                o->ctl_type[o->n_ctl] = ev.type;
                                o->ctl_code[o->n_ctl] = ev.close_code;
                                memcpy(o->ctl[o->n_ctl], ev.data, ev.len);
                                o->ctl_len[o->n_ctl++] = ev.len;
                                o->order[strlen(o->order)] = 'c';
                        }
                }
                if (r == 0)
                        cr_assert_eq(left, 0, "0 with %zu bytes left", left);
                memset(buf, 0xAA, n);
                free(buf);
                o->result = r;
                if (r < 0)
                        break;
        } while (off < len);
}

/* Decodes at once and in every read size up to 'max_step' and checks each
 * gives the same; returns the at-once result in *o. */
static void decode_any_cut(const uint8_t *s, size_t len, uint64_t max, Out *o) {
        decode(s, len, 0, max, o);
        Out *c = malloc(sizeof(*c));
        cr_assert_not_null(c);
        size_t max_step = len < 40 ? len : 40;
        for (size_t step = 1; step <= max_step; step++) {
                decode(s, len, step, max, c);
                cr_assert_eq(c->result, o->result, "step %zu: %d, at once %d", step, c->result, o->result);
                cr_assert_eq(c->n_msgs, o->n_msgs, "step %zu", step);
                cr_assert_eq(c->n_ctl, o->n_ctl, "step %zu", step);
                cr_assert_str_eq(c->order, o->order, "step %zu", step);
                for (size_t i = 0; i < o->n_msgs; i++) {
                        cr_assert_eq(c->msg_len[i], o->msg_len[i]);
                        cr_assert_eq(c->msg_op[i], o->msg_op[i]);
                        cr_assert(memcmp(c->msgs[i], o->msgs[i], o->msg_len[i]) == 0);
                }
                for (size_t i = 0; i < o->n_ctl; i++) {
                        cr_assert_eq(c->ctl_type[i], o->ctl_type[i]);
                        cr_assert_eq(c->ctl_code[i], o->ctl_code[i]);
                        cr_assert_eq(c->ctl_len[i], o->ctl_len[i]);
                        cr_assert(memcmp(c->ctl[i], o->ctl[i], o->ctl_len[i]) == 0);
                }
        }
        free(c);
}

static uint8_t stream[200000];

static Out out;

static int decode_one(const uint8_t *s, size_t len, uint64_t max) {
        decode_any_cut(s, len, max, &out);
        return out.result;
}

/* --- data frames ------------------------------------------------------------ */

Test(wsframe, rfc_examples) {
        /* RFC 6455 5.7: a masked "Hello" from a client. */
        static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
        cr_assert_eq(decode_one(hello, sizeof(hello), 1000), 0);
        cr_assert_eq(out.n_msgs, 1);
        cr_assert_eq(out.msg_op[0], WS_OP_TEXT);
        cr_assert_eq(out.msg_len[0], 5);
        cr_assert(memcmp(out.msgs[0], "Hello", 5) == 0);
        /* The same, fragmented: "Hel" then "lo". */
        size_t n = frame(stream, 0, WS_OP_TEXT, "Hel", 3, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "lo", 2, true, 0);
        cr_assert_eq(decode_one(stream, n, 1000), 0);
        cr_assert_eq(out.n_msgs, 1);
        cr_assert_eq(out.msg_len[0], 5);
        cr_assert(memcmp(out.msgs[0], "Hello", 5) == 0);
}

Test(wsframe, every_length_form) {
        static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 69999};
        static uint8_t payload[70000];
        for (size_t i = 0; i < sizeof(payload); i++)
                payload[i] = (uint8_t)(i * 7);
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                size_t n = frame(stream, 0, FIN | WS_OP_BINARY, payload, lens[i], true, 0);
                cr_assert_eq(decode_one(stream, n, 70000), 0, "len %zu", lens[i]);
                cr_assert_eq(out.n_msgs, 1);
                cr_assert_eq(out.msg_op[0], WS_OP_BINARY);
                cr_assert_eq(out.msg_len[0], lens[i]);
                cr_assert(memcmp(out.msgs[0], payload, lens[i]) == 0);
        }
}

Test(wsframe, empty_fragments_and_messages) {
        size_t n = frame(stream, 0, WS_OP_TEXT, "", 0, true, 0);
        n = frame(stream, n, WS_OP_CONTINUATION, "ab", 2, true, 0);
        n = frame(stream, n, WS_OP_CONTINUATION, "", 0, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "", 0, true, 0);
        n = frame(stream, n, FIN | WS_OP_BINARY, "", 0, true, 0);
        n = frame(stream, n, FIN | WS_OP_TEXT, "", 0, true, 0);
        cr_assert_eq(decode_one(stream, n, 10), 0);
        cr_assert_eq(out.n_msgs, 3);
        cr_assert_eq(out.msg_len[0], 2);
        cr_assert_eq(out.msg_len[1], 0);
        cr_assert_eq(out.msg_op[1], WS_OP_BINARY);
        cr_assert_eq(out.msg_len[2], 0);
        cr_assert_eq(out.msg_op[2], WS_OP_TEXT);
}

Test(wsframe, unmasked_in_place_without_copy) {
        uint8_t buf[64];
        size_t n = frame(buf, 0, FIN | WS_OP_BINARY, "payload", 7, true, 0);
        WsDecoder d = WSDECODER_INIT;
        uint8_t *in = buf;
        size_t left = n;
        WsFrameEvent ev;
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), 1);
        cr_assert_eq(ev.data, buf + 6, "the span is in the input, after the header");
        cr_assert(memcmp(buf + 6, "payload", 7) == 0);
        cr_assert(ev.msg_end);
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), 0);
}

/* --- control frames ------------------------------------------------------------ */

Test(wsframe, control_frames_between_fragments) {
        size_t n = frame(stream, 0, WS_OP_TEXT, "one ", 4, true, 0);
        n = frame(stream, n, FIN | WS_OP_PING, "p1", 2, true, 0);
        n = frame(stream, n, WS_OP_CONTINUATION, "two ", 4, true, 0);
        n = frame(stream, n, FIN | WS_OP_PONG, "", 0, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "three", 5, true, 0);
        n = frame(stream, n, FIN | WS_OP_CLOSE,
                  "\x03\xe8"
                  "bye",
                  5, true, 0);
        n = frame(stream, n, FIN | WS_OP_TEXT, "ignored", 7, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), 0);
        cr_assert_str_eq(out.order, "ccmc");
        cr_assert_eq(out.n_msgs, 1);
        cr_assert_eq(out.msg_len[0], 13);
        cr_assert(memcmp(out.msgs[0], "one two three", 13) == 0);
        cr_assert_eq(out.ctl_type[0], WSFRAME_PING);
        cr_assert_eq(out.ctl_len[0], 2);
        cr_assert(memcmp(out.ctl[0], "p1", 2) == 0);
        cr_assert_eq(out.ctl_type[1], WSFRAME_PONG);
        cr_assert_eq(out.ctl_len[1], 0);
        cr_assert_eq(out.ctl_type[2], WSFRAME_CLOSE);
        cr_assert_eq(out.ctl_code[2], 1000);
        cr_assert_eq(out.ctl_len[2], 3);
        cr_assert(memcmp(out.ctl[2], "bye", 3) == 0);
}

Test(wsframe, control_frame_rules) {
        static uint8_t p[200];
        memset(p, 'x', sizeof(p));
        static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
        for (size_t i = 0; i < 3; i++) {
                size_t n = frame(stream, 0, FIN | ops[i], "\x03\xe8", 2, true, 0);
                cr_assert_eq(decode_one(stream, n, 100), 0);
                cr_assert_eq(out.n_ctl, 1);
                /* 125 bytes is the most. */
                memcpy(p, "\x03\xe8", 2);
                n = frame(stream, 0, FIN | ops[i], p, 125, true, 0);
                cr_assert_eq(decode_one(stream, n, 100), 0);
                cr_assert_eq(out.ctl_len[0], ops[i] == WS_OP_CLOSE ? 123 : 125);
                n = frame(stream, 0, FIN | ops[i], p, 126, true, 0);
                cr_assert_eq(decode_one(stream, n, 1000), -EPROTO, "op %u, 126 bytes", ops[i]);
                /* Not fragmented. */
                n = frame(stream, 0, ops[i], p, 2, true, 0);
                cr_assert_eq(decode_one(stream, n, 100), -EPROTO, "op %u without FIN", ops[i]);
                /* 125 bytes in the 16-bit form: not minimal, and a control
                 * frame's length must fit in 7 bits. */
                n = frame(stream, 0, FIN | ops[i], p, 100, true, 16);
                cr_assert_eq(decode_one(stream, n, 1000), -EPROTO);
        }
}

Test(wsframe, close_payload_rules) {
        static const struct {
                const char *payload;
                size_t len;
                int want;
                uint16_t code;
        } cases[] = {
                {"", 0, 0, WS_CLOSE_NO_STATUS},
                {"\x03", 1, -EPROTO, 0},
                {"\x03\xe8", 2, 0, 1000},
                {"\x03\xe9", 2, 0, 1001},
                {"\x03\xea", 2, 0, 1002},
                {"\x03\xeb", 2, 0, 1003},
                {"\x03\xec", 2, -EPROTO, 0}, /* 1004 reserved */
                {"\x03\xed", 2, -EPROTO, 0}, /* 1005 never on the wire */
                {"\x03\xee", 2, -EPROTO, 0}, /* 1006 never on the wire */
                {"\x03\xef", 2, 0, 1007},
                {"\x03\xf3", 2, 0, 1011},
                {"\x03\xf6", 2, 0, 1014},
                {"\x03\xf7", 2, -EPROTO, 0}, /* 1015 never on the wire */
                {"\x03\xe7", 2, -EPROTO, 0}, /* 999 */
                {"\x00\x00", 2, -EPROTO, 0},
                {"\x07\xcf", 2, -EPROTO, 0}, /* 1999 */
                {"\x0b\xb7", 2, -EPROTO, 0}, /* 2999 */
                {"\x0b\xb8", 2, 0, 3000},
                {"\x13\x87", 2, 0, 4999},
                {"\x13\x88", 2, -EPROTO, 0}, /* 5000 */
                {"\xff\xff", 2, -EPROTO, 0},
                {"\x03\xe8"
                 "caf\xc3\xa9",
                 7, 0, 1000},
                {"\x03\xe8"
                 "caf\xc3",
                 6, -EILSEQ, 0},
                {"\x03\xe8"
                 "\xed\xa0\x80",
                 5, -EILSEQ, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t n = frame(stream, 0, FIN | WS_OP_CLOSE, cases[i].payload, cases[i].len, true, 0);
                int r = decode_one(stream, n, 100);
                cr_assert_eq(r, cases[i].want, "case %zu: %d", i, r);
                if (r == 0) {
                        cr_assert_eq(out.n_ctl, 1);
                        cr_assert_eq(out.ctl_type[0], WSFRAME_CLOSE);
                        cr_assert_eq(out.ctl_code[0], cases[i].code, "case %zu", i);
                        cr_assert_eq(out.ctl_len[0], cases[i].len ? cases[i].len - 2 : 0);
                }
        }
}

Test(wsframe, nothing_after_close) {
        size_t n = frame(stream, 0, FIN | WS_OP_CLOSE, "", 0, true, 0);
        n = frame(stream, n, 0xFF, "", 0, false, 0); /* garbage: discarded, no error */
        cr_assert_eq(decode_one(stream, n, 100), 0);
        cr_assert_eq(out.n_ctl, 1);
}

/* --- protocol errors --------------------------------------------------------- */

Test(wsframe, header_rules) {
        static uint8_t p[70000];
        memset(p, 'a', sizeof(p));
        size_t n;
        /* Unmasked. */
        n = frame(stream, 0, FIN | WS_OP_TEXT, "a", 1, false, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        n = frame(stream, 0, FIN | WS_OP_PING, "", 0, false, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        /* RSV1, RSV2, RSV3. */
        for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
                n = frame(stream, 0, FIN | rsv | WS_OP_TEXT, "a", 1, true, 0);
                cr_assert_eq(decode_one(stream, n, 100), -EPROTO, "rsv %#x", rsv);
        }
        /* Reserved opcodes. */
        static const uint8_t bad_ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
        for (size_t i = 0; i < sizeof(bad_ops); i++) {
                n = frame(stream, 0, FIN | bad_ops[i], "", 0, true, 0);
                cr_assert_eq(decode_one(stream, n, 100), -EPROTO, "opcode %#x", bad_ops[i]);
        }
        /* Non-minimal lengths. */
        n = frame(stream, 0, FIN | WS_OP_BINARY, p, 125, true, 16);
        cr_assert_eq(decode_one(stream, n, 100000), -EPROTO);
        n = frame(stream, 0, FIN | WS_OP_BINARY, p, 126, true, 16);
        cr_assert_eq(decode_one(stream, n, 100000), 0);
        n = frame(stream, 0, FIN | WS_OP_BINARY, p, 0, true, 64);
        cr_assert_eq(decode_one(stream, n, 100000), -EPROTO);
        n = frame(stream, 0, FIN | WS_OP_BINARY, p, 65535, true, 64);
        cr_assert_eq(decode_one(stream, n, 100000), -EPROTO);
        n = frame(stream, 0, FIN | WS_OP_BINARY, p, 65536, true, 64);
        cr_assert_eq(decode_one(stream, n, 100000), 0);
        /* The 64-bit length's MSB: an error even under no limit. */
        static const uint8_t msb[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0};
        cr_assert_eq(decode_one(msb, sizeof(msb), UINT64_MAX), -EPROTO);
        static const uint8_t big[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        cr_assert_eq(decode_one(big, sizeof(big), UINT64_MAX), 0, "legal, needs more");
}

Test(wsframe, fragmentation_rules) {
        size_t n;
        /* A continuation with no message. */
        n = frame(stream, 0, FIN | WS_OP_CONTINUATION, "a", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        n = frame(stream, 0, FIN | WS_OP_TEXT, "a", 1, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "a", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        cr_assert_eq(out.n_msgs, 1);
        /* A new message inside one. */
        n = frame(stream, 0, WS_OP_TEXT, "a", 1, true, 0);
        n = frame(stream, n, FIN | WS_OP_TEXT, "b", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        n = frame(stream, 0, WS_OP_BINARY, "a", 1, true, 0);
        n = frame(stream, n, FIN | WS_OP_BINARY, "b", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        n = frame(stream, 0, WS_OP_TEXT, "a", 1, true, 0);
        n = frame(stream, n, WS_OP_BINARY, "b", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EPROTO);
        /* A binary message's fragments keep its opcode. */
        n = frame(stream, 0, WS_OP_BINARY, "\xff", 1, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "\xfe", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), 0);
        cr_assert_eq(out.msg_op[0], WS_OP_BINARY);
        cr_assert_eq(out.msg_len[0], 2);
}

Test(wsframe, close_codes_of_errors) {
        cr_assert_eq(wsframe_close_code(-EPROTO), 1002);
        cr_assert_eq(wsframe_close_code(-EMSGSIZE), 1009);
        cr_assert_eq(wsframe_close_code(-EILSEQ), 1007);
        cr_assert_eq(wsframe_close_code(-EINVAL), 1002);
}

Test(wsframe, errors_are_sticky) {
        uint8_t buf[16];
        size_t n = frame(buf, 0, FIN | WS_OP_TEXT, "a", 1, false, 0);
        WsDecoder d = WSDECODER_INIT;
        uint8_t *in = buf;
        size_t left = n;
        WsFrameEvent ev;
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), -EPROTO);
        n = frame(buf, 0, FIN | WS_OP_TEXT, "a", 1, true, 0);
        in = buf;
        left = n;
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), -EPROTO);
}

/* --- the message limit --------------------------------------------------------- */

Test(wsframe, message_limit) {
        static uint8_t p[300];
        memset(p, 'a', sizeof(p));
        size_t n = frame(stream, 0, FIN | WS_OP_TEXT, p, 100, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), 0);
        n = frame(stream, 0, FIN | WS_OP_TEXT, p, 101, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EMSGSIZE);
        /* Certain from the header alone: no payload needed. */
        cr_assert_eq(decode_one(stream, 2, 100), -EMSGSIZE);
        cr_assert_eq(out.n_msgs, 0);
        /* Over fragments: refused at the header of the frame that passes it,
         * with control frames in between not counted. */
        n = frame(stream, 0, WS_OP_BINARY, p, 60, true, 0);
        n = frame(stream, n, FIN | WS_OP_PING, p, 125, true, 0);
        n = frame(stream, n, WS_OP_CONTINUATION, p, 40, true, 0);
        size_t before = n;
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, p, 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EMSGSIZE);
        cr_assert_eq(decode_one(stream, before + 2, 100), -EMSGSIZE);
        cr_assert_eq(out.partial_len, 100);
        /* The limit counts each message afresh. */
        n = 0;
        for (int i = 0; i < 5; i++)
                n = frame(stream, n, FIN | WS_OP_BINARY, p, 100, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), 0);
        cr_assert_eq(out.n_msgs, 5);
        /* A huge 64-bit length against a huge limit: no overflow. */
        static const uint8_t big[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        cr_assert_eq(decode_one(big, sizeof(big), UINT64_MAX - 1), 0);
        cr_assert_eq(decode_one(big, sizeof(big), INT64_MAX - 1), -EMSGSIZE);
}

Test(wsframe, lowered_limit_applies_to_next_frame) {
        uint8_t buf[64];
        size_t n = frame(buf, 0, WS_OP_BINARY, "abcdefgh", 8, true, 0);
        n = frame(buf, n, FIN | WS_OP_CONTINUATION, "", 0, true, 0);
        WsDecoder d = WSDECODER_INIT;
        uint8_t *in = buf;
        size_t left = n - 6;
        WsFrameEvent ev;
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), 1);
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), 0);
        left = 6;
        cr_assert_eq(wsframe_next(&d, &in, &left, 4, &ev), -EMSGSIZE);
}

/* --- UTF-8 ------------------------------------------------------------------- */

Test(wsframe, utf8_validator) {
        static const struct {
                const char *s;
                bool valid;
        } cases[] = {
                {"", true},
                {"plain ASCII text that is longer than eight bytes", true},
                {"\x7f", true},
                {"\xc2\x80", true},
                {"\xdf\xbf", true},
                {"\xe0\xa0\x80", true},
                {"\xed\x9f\xbf", true}, /* U+D7FF */
                {"\xee\x80\x80", true}, /* U+E000 */
                {"\xef\xbf\xbf", true},
                {"\xf0\x90\x80\x80", true},
                {"\xf4\x8f\xbf\xbf", true}, /* U+10FFFF */
                {"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true},
                {"\x80", false},
                {"\xbf", false},
                {"\xc0\x80", false}, /* overlong NUL */
                {"\xc1\xbf", false},
                {"\xe0\x80\x80", false},
                {"\xe0\x9f\xbf", false},
                {"\xf0\x80\x80\x80", false},
                {"\xf0\x8f\xbf\xbf", false},
                {"\xed\xa0\x80", false},     /* U+D800 */
                {"\xed\xbf\xbf", false},     /* U+DFFF */
                {"\xf4\x90\x80\x80", false}, /* U+110000 */
                {"\xf5\x80\x80\x80", false},
                {"\xf8\x88\x80\x80\x80", false},
                {"\xfe", false},
                {"\xff", false},
                {"\xc2", false},
                {"\xe1\x80", false},
                {"\xf1\x80\x80", false},
                {"\xc2\x41", false},
                {"\xe1\x80\x41", false},
                {"abcdefgh\xc2\x80ijklmnop\xc2", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t n = strlen(cases[i].s);
                cr_assert_eq(utf8_valid(cases[i].s, n), cases[i].valid, "case %zu", i);
                /* Any split gives the same. */
                for (size_t cut = 0; cut <= n; cut++) {
                        Utf8State u = UTF8_STATE_INIT;
                        bool ok = utf8_feed(&u, (const uint8_t *)cases[i].s, cut) == 0 &&
                                  utf8_feed(&u, (const uint8_t *)cases[i].s + cut, n - cut) == 0 &&
                                  utf8_complete(&u);
                        cr_assert_eq(ok, cases[i].valid, "case %zu cut %zu", i, cut);
                }
        }
}

Test(wsframe, text_utf8_across_fragments_and_reads) {
        /* "é€𐍈" cut inside each sequence, across three fragments. */
        size_t n = frame(stream, 0, WS_OP_TEXT, "a\xc3", 2, true, 0);
        n = frame(stream, n, WS_OP_CONTINUATION, "\xa9\xe2\x82", 3, true, 0);
        n = frame(stream, n, FIN | WS_OP_PING, "", 0, true, 0);
        n = frame(stream, n, WS_OP_CONTINUATION, "\xac\xf0\x90", 3, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "\x8d\x88", 2, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), 0);
        cr_assert_eq(out.n_msgs, 1);
        cr_assert_eq(out.msg_len[0], 10);
        cr_assert(memcmp(out.msgs[0], "a\xc3\xa9\xe2\x82\xac\xf0\x90\x8d\x88", 10) == 0);
        /* Ends inside a sequence. */
        n = frame(stream, 0, WS_OP_TEXT, "a\xc3", 2, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "", 0, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EILSEQ);
        /* A surrogate split across fragments. */
        n = frame(stream, 0, WS_OP_TEXT, "\xed", 1, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "\xa0\x80", 2, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EILSEQ);
        /* An overlong form, in one frame. */
        n = frame(stream, 0, FIN | WS_OP_TEXT, "ok \xc0\xaf", 5, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EILSEQ);
        /* Binary messages are not checked. */
        n = frame(stream, 0, FIN | WS_OP_BINARY, "\xc0\xaf\xff", 3, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), 0);
        /* A text message after a binary one that ended inside a sequence
         * starts afresh. */
        n = frame(stream, 0, WS_OP_BINARY, "\xc3", 1, true, 0);
        n = frame(stream, n, FIN | WS_OP_CONTINUATION, "", 0, true, 0);
        n = frame(stream, n, FIN | WS_OP_TEXT, "\xa9", 1, true, 0);
        cr_assert_eq(decode_one(stream, n, 100), -EILSEQ);
        cr_assert_eq(out.n_msgs, 1);
}

Test(wsframe, invalid_text_never_handed_out) {
        uint8_t buf[64];
        size_t n = frame(buf, 0, FIN | WS_OP_TEXT, "abc\xff", 4, true, 0);
        WsDecoder d = WSDECODER_INIT;
        uint8_t *in = buf;
        size_t left = n;
        WsFrameEvent ev;
        cr_assert_eq(wsframe_next(&d, &in, &left, 100, &ev), -EILSEQ);
}

/* --- the encoder ------------------------------------------------------------ */

Test(wsframe, header_encoding) {
        uint8_t h[WSFRAME_HEADER_MAX];
        cr_assert_eq(wsframe_header(h, WS_OP_TEXT, true, 0), 2);
        cr_assert(h[0] == 0x81 && h[1] == 0);
        cr_assert_eq(wsframe_header(h, WS_OP_BINARY, true, 125), 2);
        cr_assert(h[0] == 0x82 && h[1] == 125);
        cr_assert_eq(wsframe_header(h, WS_OP_TEXT, false, 126), 4);
        cr_assert(h[0] == 0x01 && h[1] == 126 && h[2] == 0 && h[3] == 126);
        cr_assert_eq(wsframe_header(h, WS_OP_CONTINUATION, true, 65535), 4);
        cr_assert(h[0] == 0x80 && h[2] == 0xFF && h[3] == 0xFF);
        cr_assert_eq(wsframe_header(h, WS_OP_BINARY, true, 65536), 10);
        static const uint8_t want[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
        cr_assert(memcmp(h, want, 10) == 0);
        cr_assert_eq(wsframe_header(h, WS_OP_BINARY, true, 0x0102030405060708ULL), 10);
        static const uint8_t want2[] = {0x82, 127, 1, 2, 3, 4, 5, 6, 7, 8};
        cr_assert(memcmp(h, want2, 10) == 0);
        /* The RFC's unmasked "Hello" (5.7). */
        cr_assert_eq(wsframe_header(h, WS_OP_TEXT, true, 5), 2);
        cr_assert(h[0] == 0x81 && h[1] == 0x05);
}

Test(wsframe, close_and_pong_frames) {
        uint8_t f[WSFRAME_CONTROL_FRAME_MAX];
        size_t n = wsframe_close(f, 1001, "going away", 10);
        cr_assert_eq(n, 14);
        cr_assert(memcmp(f, "\x88\x0c\x03\xe9going away", 14) == 0);
        cr_assert_eq(wsframe_close(f, 0, NULL, 0), 2);
        cr_assert(f[0] == 0x88 && f[1] == 0);
        /* A long reason is cut to 123 bytes at a character boundary. */
        char reason[200];
        memset(reason, 'r', sizeof(reason));
        n = wsframe_close(f, 1009, reason, sizeof(reason));
        cr_assert_eq(n, 127);
        cr_assert_eq(f[1], 125);
        for (size_t i = 0; i < 200; i += 2)
                memcpy(reason + i, "\xc3\xa9", 2);
        /* 123 bytes would end inside the 62nd character: 122 go. */
        n = wsframe_close(f, 1009, reason, sizeof(reason));
        cr_assert_eq(n, 126);
        cr_assert(utf8_valid(f + 4, n - 4));
        uint8_t ping[] = "ping payload";
        n = wsframe_pong(f, ping, 12);
        cr_assert_eq(n, 14);
        cr_assert(f[0] == 0x8A && f[1] == 12 && memcmp(f + 2, ping, 12) == 0);
        n = wsframe_ping(f, NULL, 0);
        cr_assert(n == 2 && f[0] == 0x89 && f[1] == 0);
}
