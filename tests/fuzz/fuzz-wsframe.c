/* Fuzz target: the WebSocket frame decoder (src/wsframe.h) on an arbitrary
 * client byte stream cut at arbitrary read boundaries, used as the WebSocket
 * codec will use it: each read in a buffer of its own, the data spans
 * appended to a message buffer.
 *
 * Property: the messages, the control frames, their order and the final
 * result are those of a reference decoder written here from RFC 6455 alone,
 * which reads the whole stream at once and checks UTF-8 by decoding code
 * points (no state machine shared with the decoder); the error comes at the
 * same place in the stream. Every data span lies inside its read, past the
 * bytes consumed before it and within those consumed by the call; a
 * control payload is at most 125 bytes. After
 * -EILSEQ the bytes handed out of the unfinished message are a prefix of the
 * reference's (the decoder checks a span before handing it out, so how
 * much came out depends on the reads). ASan sees any read past a read's
 * buffer; the decoder allocates nothing (LeakSanitizer).
 *
 * Input: the message limit (2 bytes; 0xFFFF: none), how many read sizes
 * follow (1 byte) and the sizes (1 byte each, used in turn), then the
 * stream. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "util.h"
#include "wsframe.h"

#define MAX_READ_SIZES 16

/* --- UTF-8 by code points ----------------------------------------------------- */

/* Decodes one character at p[0, n): 1 and its length in *len when complete
 * and valid, 0 when the bytes so far are a valid start of one that is cut
 * short, -1 when invalid. */
static int decode_cp(const uint8_t *p, size_t n, size_t *len) {
        uint8_t c = p[0];
        size_t l;
        uint32_t cp;
        if (c < 0x80) {
                *len = 1;
                return 1;
        }
        if ((c & 0xE0) == 0xC0) {
                l = 2;
                cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
                l = 3;
                cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
                l = 4;
                cp = c & 0x07;
        } else
                return -1;
        uint8_t full[4] = {c, 0x80, 0x80, 0x80};
        for (size_t i = 1; i < l && i < n; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return -1;
                full[i] = p[i];
        }
        if (n < l) {
                /* Cut short: valid if some completion is. Only the second
                 * byte's value decides overlong, surrogate or too big. */
                static const uint8_t second[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
                for (size_t k = 0; k < (n >= 2 ? 1 : sizeof(second)); k++) {
                        if (n < 2)
                                full[1] = second[k];
                        size_t dummy;
                        if (decode_cp(full, l, &dummy) == 1)
                                return 0;
                }
                return -1;
        }
        for (size_t i = 1; i < l; i++)
                cp = cp << 6 | (p[i] & 0x3F);
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[l] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
                return -1;
        *len = l;
        return 1;
}

/* -1 invalid, 0 a valid prefix cut inside a character, 1 valid. */
static int utf8_check(const uint8_t *p, size_t n) {
        size_t i = 0;
        while (i < n) {
                size_t l;
                int r = decode_cp(p + i, n - i, &l);
                if (r <= 0)
                        return r;
                i += l;
        }
        return 1;
}

/* --- the trace both decoders write ------------------------------------------- */

typedef struct Trace {
        uint8_t *p;
        size_t len;
} Trace;

static void trace_put(Trace *t, const void *p, size_t n) {
        memcpy(t->p + t->len, p, n);
        t->len += n;
}

static void trace_event(Trace *t, char kind, uint8_t type, uint16_t code, const uint8_t *p, size_t n) {
        uint8_t h[4] = {(uint8_t)kind, type, (uint8_t)(code >> 8), (uint8_t)code};
        trace_put(t, h, 4);
        trace_put(t, &n, sizeof(n));
        trace_put(t, p, n);
}

/* --- the reference ------------------------------------------------------------- */

typedef struct Ref {
        int result;
        uint8_t *msg; /* the unfinished message's bytes */
        size_t msg_len;
        uint8_t msg_op;
} Ref;

static bool close_code_ok(unsigned c) {
        /* RFC 6455 7.4.1 and the IANA registry: 1000-1003, 1007-1014;
         * 3000-4999 for libraries and applications. */
        return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static void reference(const uint8_t *s, size_t n, uint64_t max, Trace *t, Ref *ref) {
        size_t pos = 0;
        uint64_t msg_total = 0;
        ref->result = 0;
        while (pos < n) {
                uint8_t b0 = s[pos], op = b0 & 0x0F;
                bool fin = b0 & 0x80, control = op >= 8;
                bool known = op <= 2 || (op >= 8 && op <= 10);
                if ((b0 & 0x70) || !known || (control && !fin) || (op == 0 && !ref->msg_op) ||
                    ((op == 1 || op == 2) && ref->msg_op)) {
                        ref->result = -EPROTO;
                        return;
                }
                if (n - pos < 2)
                        return;
                uint8_t b1 = s[pos + 1];
                uint64_t len = b1 & 0x7F;
                if (!(b1 & 0x80) || (control && len > 125)) {
                        ref->result = -EPROTO;
                        return;
                }
                size_t ext = len == 126 ? 2 : len == 127 ? 8 : 0;
                if (n - pos < 2 + ext)
                        return;
                if (ext) {
                        len = 0;
                        for (size_t k = 0; k < ext; k++)
                                len = len << 8 | s[pos + 2 + k];
                        if ((ext == 2 && len < 126) || (ext == 8 && (len <= 0xFFFF || len >> 63))) {
                                ref->result = -EPROTO;
                                return;
                        }
                }
                if (!control) {
                        if (len > max - msg_total) {
                                ref->result = -EMSGSIZE;
                                return;
                        }
                        msg_total += len;
                        if (op)
                                ref->msg_op = op;
                }
                if (n - pos < 2 + ext + 4)
                        return;
                const uint8_t *mask = s + pos + 2 + ext;
                size_t ps = pos + 2 + ext + 4;
                size_t avail = (size_t)MIN(len, (uint64_t)(n - ps));
                if (control) {
                        if (avail < len)
                                return;
                        uint8_t pl[125];
                        for (size_t i = 0; i < avail; i++)
                                pl[i] = s[ps + i] ^ mask[i % 4];
                        if (op == WS_OP_CLOSE) {
                                uint16_t code = WS_CLOSE_NO_STATUS;
                                if (avail == 1 ||
                                    (avail >= 2 && !close_code_ok((unsigned)pl[0] << 8 | pl[1]))) {
                                        ref->result = -EPROTO;
                                        return;
                                }
                                if (avail >= 2) {
                                        code = (uint16_t)(pl[0] << 8 | pl[1]);
                                        if (utf8_check(pl + 2, avail - 2) != 1) {
                                                ref->result = -EILSEQ;
                                                return;
                                        }
                                }
                                trace_event(t, 'C', WSFRAME_CLOSE, code, pl + (avail >= 2 ? 2 : 0),
                                            avail >= 2 ? avail - 2 : 0);
                                return; /* nothing after a close counts */
                        }
                        trace_event(t, 'C', op == WS_OP_PING ? WSFRAME_PING : WSFRAME_PONG, 0, pl, avail);
                        pos = ps + (size_t)len;
                        continue;
                }
                for (size_t i = 0; i < avail; i++)
                        ref->msg[ref->msg_len++] = s[ps + i] ^ mask[i % 4];
                if (ref->msg_op == WS_OP_TEXT && utf8_check(ref->msg, ref->msg_len) < 0) {
                        ref->result = -EILSEQ;
                        return;
                }
                if (avail < len)
                        return;
                if (fin) {
                        if (ref->msg_op == WS_OP_TEXT && utf8_check(ref->msg, ref->msg_len) != 1) {
                                ref->result = -EILSEQ;
                                return;
                        }
                        trace_event(t, 'M', ref->msg_op, 0, ref->msg, ref->msg_len);
                        ref->msg_len = 0;
                        ref->msg_op = 0;
                        msg_total = 0;
                }
                pos = ps + (size_t)len;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = {data, size};
        uint16_t lim = fuzz_u16(&in);
        uint64_t max = lim == 0xFFFF ? UINT64_MAX : lim % 4096;
        size_t read_sizes[MAX_READ_SIZES];
        size_t n_sizes = 1 + fuzz_u8(&in) % MAX_READ_SIZES;
        for (size_t i = 0; i < n_sizes; i++) {
                uint8_t b = fuzz_u8(&in);
                read_sizes[i] = 1 + (size_t)b * b / 16;
        }
        const uint8_t *s = in.p;
        size_t n = in.left;

        /* Each event costs at least 2 stream bytes and at most 4 +
         * sizeof(size_t) trace bytes beside its payload. */
        size_t trace_cap = n + (n / 2 + 1) * (4 + sizeof(size_t));
        Trace want = {malloc(trace_cap), 0}, got = {malloc(trace_cap), 0};
        Ref ref = {.msg = malloc(n + 1)};
        uint8_t *msg = malloc(n + 1);
        if (!want.p || !got.p || !ref.msg || !msg)
                abort();
        reference(s, n, max, &want, &ref);

        WsDecoder d = WSDECODER_INIT;
        size_t msg_len = 0;
        int r = 0;
        for (size_t i = 0, off = 0; off < n; i++) {
                size_t len = MIN(read_sizes[i % n_sizes], n - off);
                uint8_t *buf = malloc(len);
                if (!buf)
                        abort();
                memcpy(buf, s + off, len);
                off += len;
                uint8_t *p = buf;
                size_t left = len;
                WsFrameEvent ev;
                for (;;) {
                        uint8_t *before = p;
                        r = wsframe_next(&d, &p, &left, max, &ev);
                        if (p < before || p > buf + len || left != (size_t)(buf + len - p))
                                abort();
                        if (r <= 0)
                                break;
                        if (ev.type == WSFRAME_DATA) {
                                if ((ev.opcode != WS_OP_TEXT && ev.opcode != WS_OP_BINARY) ||
                                    (ev.len && (ev.data < before || ev.data + ev.len > p)))
                                        abort();
                                memcpy(msg + msg_len, ev.data, ev.len);
                                msg_len += ev.len;
                                if (ev.msg_end) {
                                        trace_event(&got, 'M', ev.opcode, 0, msg, msg_len);
                                        msg_len = 0;
                                }
                        } else {
                                if (ev.len > WSFRAME_CONTROL_MAX)
                                        abort();
                                trace_event(&got, 'C', (uint8_t)ev.type,
                                            ev.type == WSFRAME_CLOSE ? ev.close_code : 0, ev.data, ev.len);
                        }
                }
                if (r == 0 && left != 0)
                        abort();
                free(buf);
                if (r < 0)
                        break;
        }
        if (r != ref.result || got.len != want.len || memcmp(got.p, want.p, got.len) != 0)
                abort();
        /* The unfinished message: all of it, or a prefix after -EILSEQ. */
        if (r == -EILSEQ ? msg_len > ref.msg_len : msg_len != ref.msg_len)
                abort();
        if (memcmp(msg, ref.msg, msg_len) != 0)
                abort();
        if (r < 0 && wsframe_next(&d, &(uint8_t *){msg}, &(size_t){0}, max, &(WsFrameEvent){0}) != r)
                abort();
        if (r == -EPROTO || r == -EMSGSIZE || r == -EILSEQ) {
                if (wsframe_close_code(r) != (r == -EPROTO ? 1002 : r == -EMSGSIZE ? 1009 : 1007))
                        abort();
        }
        free(want.p);
        free(got.p);
        free(ref.msg);
        free(msg);
        return 0;
}
