/* The cluster envelope (envelope.h): strict parsing, since what arrives on
 * a shared Redis channel may come from anything that can PUBLISH there. */
#include "envelope.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define VERSION_TAG "EB1 "
#define VERSION_TAG_LEN 4

size_t envelope_header(char buf[ENVELOPE_HEADER_MAX], uint64_t node, uint64_t seq, uint64_t sender,
                       uint32_t count) {
        int n = snprintf(buf, ENVELOPE_HEADER_MAX,
                         VERSION_TAG "%016" PRIx64 " %" PRIu64 " %" PRIu64 " %" PRIu32 "\n", node, seq,
                         sender, count);
        return (size_t)n;
}

/* A decimal number without sign or leading zeros, ending at 'end' (a
 * space or LF, consumed). */
static bool parse_decimal(const char **p, const char *limit, char end, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        if (s >= limit || *s < '0' || *s > '9' || (*s == '0' && s + 1 < limit && s[1] != end))
                return false;
        for (; s < limit && *s >= '0' && *s <= '9'; s++) {
                unsigned d = (unsigned)(*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (s >= limit || *s != end)
                return false;
        *p = s + 1;
        *ret = v;
        return true;
}

static bool parse_node(const char **p, const char *limit, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;
        if (limit - s < 17 || s[16] != ' ')
                return false;
        for (int i = 0; i < 16; i++) {
                char c = s[i];
                unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                             : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                                    : 16;
                if (d > 15)
                        return false;
                v = v << 4 | d;
        }
        *p = s + 17;
        *ret = v;
        return true;
}

/* Checks that the payload is exactly 'count' LF-terminated messages, each
 * within max_message. */
static int check_payload(const char *p, size_t len, uint32_t count, uint64_t max_message) {
        uint64_t seen = 0;
        const char *end = p + len;
        while (p < end) {
                const char *lf = memchr(p, '\n', (size_t)(end - p));
                if (!lf)
                        return -EBADMSG;
                if ((uint64_t)(lf - p) + 1 > max_message)
                        return -EMSGSIZE;
                seen++;
                p = lf + 1;
        }
        return seen == count ? 0 : -EBADMSG;
}

int envelope_decode(const char *buf, size_t len, uint64_t max_message, Envelope *ret) {
        const char *p = buf, *limit = buf + len;
        if (len < VERSION_TAG_LEN || memcmp(buf, "EB", 2) != 0 || buf[3] != ' ')
                return -EBADMSG;
        if (memcmp(buf, VERSION_TAG, VERSION_TAG_LEN) != 0)
                return buf[2] >= '0' && buf[2] <= '9' ? -EPROTONOSUPPORT : -EBADMSG;
        p += VERSION_TAG_LEN;
        /* The header ends within ENVELOPE_HEADER_MAX bytes. */
        if (limit - buf > ENVELOPE_HEADER_MAX)
                limit = buf + ENVELOPE_HEADER_MAX;

        Envelope e = {0};
        uint64_t count;
        if (!parse_node(&p, limit, &e.node) || !parse_decimal(&p, limit, ' ', &e.seq) ||
            !parse_decimal(&p, limit, ' ', &e.sender) || !parse_decimal(&p, limit, '\n', &count) ||
            count > UINT32_MAX || e.seq == 0)
                return -EBADMSG;
        e.count = (uint32_t)count;
        e.payload = p;
        e.payload_len = len - (size_t)(p - buf);
        int r = check_payload(e.payload, e.payload_len, e.count, max_message);
        if (r < 0)
                return r;
        *ret = e;
        return 0;
}
