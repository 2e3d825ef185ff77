/* Fuzz target: the framer (src/framer.h) on an arbitrary byte stream cut at
 * arbitrary read boundaries, used as server.c uses it.
 *
 * Property: the lines handed out are exactly the lines of the stream, in
 * order, each at most 'max' bytes with its LF, up to the first line over the
 * limit; that one is refused with -EMSGSIZE, as soon as the bytes read so
 * far prove it and no sooner, and nothing of it or after it comes out (the
 * server disconnects the sender). At the end of the stream an unfinished
 * last line comes out of framer_finish() if it fits with the LF the server
 * appends, under the limit in force then (a reload may have lowered it).
 * Only an unfinished line is ever stored, and framer_reset() leaves nothing
 * allocated (LeakSanitizer).
 *
 * Input: max (2 bytes), the limit at the end of the stream (1 byte, 0: the
 * same), how many read sizes follow (1 byte) and the sizes (1 byte each,
 * used in turn), then the stream. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"
#include "fuzz-input.h"
#include "util.h"

#define MAX_LIMIT 4096
#define MAX_READ_SIZES 16

/* The reference, from the whole stream at once: where the lines that fit
 * end, and whether a line that does not fit follows. */
static const char *reference_end(const char *p, const char *end, size_t max, size_t finish_max,
                                 bool *ret_oversize) {
        *ret_oversize = false;
        while (p < end) {
                const char *lf = memchr(p, '\n', (size_t)(end - p));
                /* An unfinished last line gets a LF appended. */
                size_t len = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p) + 1;
                if (len > (lf ? max : MIN(max, finish_max))) {
                        *ret_oversize = true;
                        return p;
                }
                p = lf ? lf + 1 : end;
        }
        return end;
}

/* Whether the bytes read so far, up to 'read_end', prove that the line at
 * 'p' is over 'max': its LF is past the limit, or the LF still to come
 * would be. */
static bool proven_oversize(const char *p, const char *read_end, size_t max) {
        const char *lf = memchr(p, '\n', (size_t)(read_end - p));
        return (lf ? (size_t)(lf - p) + 1 : (size_t)(read_end - p) + 1) > max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = {data, size};
        size_t max = 1 + fuzz_u16(&in) % MAX_LIMIT;
        size_t finish_max = fuzz_u8(&in) ?: max;
        size_t read_sizes[MAX_READ_SIZES];
        size_t n_sizes = 1 + fuzz_u8(&in) % MAX_READ_SIZES;
        for (size_t i = 0; i < n_sizes; i++) {
                uint8_t b = fuzz_u8(&in);
                /* Mostly short reads, some longer than any line. */
                read_sizes[i] = 1 + (size_t)b * b / 16;
        }

        const char *stream = (const char *)in.p, *end = stream + in.left;
        bool oversize;
        const char *ref_end = reference_end(stream, end, max, finish_max, &oversize);

        Framer f = FRAMER_INIT;
        const char *pos = stream; /* where the next line to come out starts */
        bool refused = false;
        for (size_t i = 0, off = 0; off < in.left && !refused; i++) {
                size_t n = MIN(read_sizes[i % n_sizes], in.left - off);
                /* A buffer of its own per read, freed right after, so that
                 * ASan sees any line kept or read past its read. */
                char *buf = malloc(n);
                if (!buf)
                        abort();
                memcpy(buf, stream + off, n);
                off += n;

                const char *p = buf, *line;
                size_t left = n, len;
                int r;
                while ((r = framer_next(&f, &p, &left, max, &line, &len)) > 0) {
                        /* Exactly the next line: its bytes, one LF, at the end. */
                        if (len == 0 || len > max || (size_t)(ref_end - pos) < len ||
                            memcmp(line, pos, len) != 0 || memchr(line, '\n', len) != line + len - 1)
                                abort();
                        pos += len;
                }
                if (r == -EMSGSIZE) {
                        if (!oversize || pos != ref_end || !proven_oversize(pos, stream + off, max) ||
                            f.partial)
                                abort();
                        refused = true;
                } else if (r != 0 || left != 0 || framer_pending(&f) != (size_t)(stream + off - pos) ||
                           framer_pending(&f) >= max || !f.partial != !framer_pending(&f))
                        abort();
                free(buf);
        }

        if (!refused) {
                const char *line;
                size_t len;
                int r = framer_finish(&f, finish_max, &line, &len);
                if (r == -EMSGSIZE) {
                        if (!oversize || pos != ref_end)
                                abort();
                } else if (r == 1) {
                        if (len != (size_t)(end - pos) || len + 1 > finish_max ||
                            memcmp(line, pos, len) != 0)
                                abort();
                        pos = end;
                } else if (r != 0 || pos != end)
                        abort();
                if (pos != ref_end)
                        abort();
        }
        framer_reset(&f);
        return 0;
}
