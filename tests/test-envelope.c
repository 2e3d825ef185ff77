/* Unit tests of envelope.c: the header round trip, heartbeats, and every
 * way a Redis message can fail to be an envelope. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "envelope.h"

#define MAX 65536

static int decode(const char *s, Envelope *e) {
        return envelope_decode(s, strlen(s), MAX, e);
}

Test(envelope, header_round_trip) {
        static const struct {
                uint64_t node, seq, sender;
                uint32_t count;
        } cases[] = {
                {0, 1, 0, 0},
                {0x0123456789abcdefULL, 42, 7, 3},
                {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT32_MAX},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char buf[ENVELOPE_HEADER_MAX + 64];
                size_t n =
                        envelope_header(buf, cases[i].node, cases[i].seq, cases[i].sender, cases[i].count);
                cr_assert_lt(n, ENVELOPE_HEADER_MAX);
                cr_assert_eq(buf[n - 1], '\n');
                /* A payload of 'count' empty messages, for the small counts. */
                size_t payload = cases[i].count <= 3 ? cases[i].count : 0;
                memset(buf + n, '\n', payload);
                Envelope e;
                int r = envelope_decode(buf, n + payload, MAX, &e);
                if (cases[i].count > 3) {
                        cr_assert_eq(r, -EBADMSG, "a count without its messages");
                        continue;
                }
                cr_assert_eq(r, 0, "case %zu: %d", i, r);
                cr_assert_eq(e.node, cases[i].node);
                cr_assert_eq(e.seq, cases[i].seq);
                cr_assert_eq(e.sender, cases[i].sender);
                cr_assert_eq(e.count, cases[i].count);
                cr_assert_eq(e.payload, buf + n);
                cr_assert_eq(e.payload_len, payload);
        }
}

Test(envelope, header_is_exact) {
        char buf[ENVELOPE_HEADER_MAX];
        size_t n = envelope_header(buf, 0xabcULL, 12, 345, 2);
        cr_assert_eq(n, strlen("EB1 0000000000000abc 12 345 2\n"));
        cr_assert(memcmp(buf, "EB1 0000000000000abc 12 345 2\n", n) == 0);
}

Test(envelope, messages_and_heartbeats) {
        Envelope e;
        cr_assert_eq(decode("EB1 00000000000000ff 9 3 2\nhello\nworld\n", &e), 0);
        cr_assert_eq(e.node, 0xff);
        cr_assert_eq(e.count, 2);
        cr_assert_eq(e.payload_len, 12);
        cr_assert(memcmp(e.payload, "hello\nworld\n", 12) == 0);
        cr_assert_eq(decode("EB1 00000000000000ff 10 0 0\n", &e), 0, "a heartbeat");
        cr_assert_eq(e.count, 0);
        cr_assert_eq(e.payload_len, 0);
        /* Payload bytes are opaque: NUL, CR and high bytes pass. */
        static const char bin[] = "EB1 0000000000000001 1 1 1\n\0\r\xff\n";
        cr_assert_eq(envelope_decode(bin, sizeof(bin) - 1, MAX, &e), 0);
        cr_assert_eq(e.payload_len, 4);
}

Test(envelope, message_limit) {
        Envelope e;
        const char *s = "EB1 0000000000000001 1 1 1\nabcd\n";
        cr_assert_eq(envelope_decode(s, strlen(s), 5, &e), 0, "exactly at the limit, LF included");
        cr_assert_eq(envelope_decode(s, strlen(s), 4, &e), -EMSGSIZE);
}

Test(envelope, not_envelopes) {
        static const char *const bad[] = {
                "",
                "EB1",
                "EB1 ",
                "hello\n",
                "EBX 0000000000000001 1 1 0\n",
                "eb1 0000000000000001 1 1 0\n",
                "EB1 000000000000001 1 1 0\n",   /* 15 hex digits */
                "EB1 00000000000000011 1 1 0\n", /* 17 */
                "EB1 000000000000000G 1 1 0\n",
                "EB1 000000000000000A 1 1 0\n", /* uppercase */
                "EB1 0000000000000001 0 1 0\n", /* SEQ 0 */
                "EB1 0000000000000001 01 1 0\n",
                "EB1 0000000000000001 +1 1 0\n",
                "EB1 0000000000000001 -1 1 0\n",
                "EB1 0000000000000001 18446744073709551616 1 0\n",
                "EB1 0000000000000001 1 18446744073709551616 0\n",
                "EB1 0000000000000001 1 1 4294967296\n",
                "EB1 0000000000000001 1  1 0\n",
                "EB1 0000000000000001 1 1 0",
                "EB1 0000000000000001 1 1 0 \n",
                "EB1 0000000000000001 1 1 0\r\n",
                "EB1 0000000000000001 1 1 0\nx\n", /* a heartbeat with a payload */
                "EB1 0000000000000001 1 1 1\n",    /* a count without its message */
                "EB1 0000000000000001 1 1 1\nabc", /* no LF at the end */
                "EB1 0000000000000001 1 1 1\na\nb\n",
                "EB1 0000000000000001 1 1 2\na\n",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                Envelope e = {.node = 77};
                cr_assert_eq(decode(bad[i], &e), -EBADMSG, "\"%s\" accepted", bad[i]);
                cr_assert_eq(e.node, 77, "\"%s\": *ret changed on an error", bad[i]);
        }
}

Test(envelope, other_versions) {
        Envelope e;
        cr_assert_eq(decode("EB2 0000000000000001 1 1 0\n", &e), -EPROTONOSUPPORT);
        cr_assert_eq(decode("EB9 whatever\n", &e), -EPROTONOSUPPORT);
}

Test(envelope, header_past_its_limit) {
        /* 81 bytes of digits: the header must end within ENVELOPE_HEADER_MAX. */
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "EB1 0000000000000001 1 %060d 0\n", 1);
        Envelope e;
        cr_assert_eq(envelope_decode(buf, (size_t)n, MAX, &e), -EBADMSG);
}
