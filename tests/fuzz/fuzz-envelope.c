/* libFuzzer target of envelope_decode(): never reads outside the input,
 * and whatever it accepts is canonical: its header written again, with
 * the payload it found, is the input byte for byte; every message of the
 * payload ends with an LF and fits the limit. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
        if (size < 1)
                return 0;
        /* The first byte picks the limit, so that -EMSGSIZE is reached. */
        uint64_t max_message = 1 + (uint64_t)data[0] * 4;
        /* A copy of the exact length: reading past it is caught by ASan. */
        char *buf = malloc(size - 1 ? size - 1 : 1);
        if (!buf)
                return 0;
        memcpy(buf, data + 1, size - 1);
        Envelope e;
        int r = envelope_decode(buf, size - 1, max_message, &e);
        if (r == 0) {
                char header[ENVELOPE_HEADER_MAX];
                size_t n = envelope_header(header, e.node, e.seq, e.sender, e.count);
                if (n + e.payload_len != size - 1 || memcmp(header, buf, n) != 0 || e.payload != buf + n)
                        abort();
                uint32_t lines = 0;
                for (const char *p = e.payload, *end = e.payload + e.payload_len; p < end; lines++) {
                        const char *lf = memchr(p, '\n', (size_t)(end - p));
                        if (!lf || (uint64_t)(lf - p) + 1 > max_message)
                                abort();
                        p = lf + 1;
                }
                if (lines != e.count || e.seq == 0)
                        abort();
        } else if (r != -EBADMSG && r != -EMSGSIZE && r != -EPROTONOSUPPORT)
                abort();
        free(buf);
        return 0;
}
