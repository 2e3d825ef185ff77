/* Framer: owns the unfinished-line buffer of one client and nothing else.
 * Invariant: 'partial' holds at most max-1 bytes and never a LF, so any line
 * it completes is known to fit; it is freed as soon as it is empty, keeping
 * idle clients at zero buffer bytes. memchr, never strchr: payloads may hold
 * NUL bytes. */
#include "framer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void framer_reset(Framer *f) {
        free(f->partial);
        *f = (Framer)FRAMER_INIT;
}

static int framer_keep(Framer *f, const char *p, size_t n) {
        size_t need = (size_t)f->len + n;
        if (need > f->cap) {
                size_t cap = f->cap ? f->cap : 256;
                while (cap < need)
                        cap *= 2;
                char *b = realloc(f->partial, cap);
                if (!b)
                        return -ENOMEM;
                f->partial = b;
                f->cap = (uint32_t)cap;
        }
        memcpy(f->partial + f->len, p, n);
        f->len = (uint32_t)need;
        return 0;
}

int framer_next(Framer *f, const char **in, size_t *in_len, size_t max, const char **ret_line,
                size_t *ret_len) {
        if (f->handed_out)
                framer_reset(f);

        const char *p = *in;
        size_t n = *in_len;
        if (n == 0)
                return 0;

        const char *lf = memchr(p, '\n', n);
        size_t take = lf ? (size_t)(lf - p) + 1 : n;
        /* Without a LF yet, the line is already too long once the LF that
         * must still come would not fit. */
        if ((size_t)f->len + take + (lf ? 0 : 1) > max) {
                framer_reset(f);
                return -EMSGSIZE;
        }

        if (!lf) {
                int r = framer_keep(f, p, n);
                if (r < 0)
                        return r;
                *in += n;
                *in_len = 0;
                return 0;
        }

        if (f->len == 0) {
                *in += take;
                *in_len -= take;
                *ret_line = p;
                *ret_len = take;
                return 1;
        }

        int r = framer_keep(f, p, take);
        if (r < 0)
                return r;
        *in += take;
        *in_len -= take;
        *ret_line = f->partial;
        *ret_len = f->len;
        f->handed_out = 1;
        return 1;
}

int framer_finish(Framer *f, size_t max, const char **ret_line, size_t *ret_len) {
        if (f->handed_out)
                framer_reset(f);
        if (f->len == 0)
                return 0;
        if ((size_t)f->len + 1 > max)
                return -EMSGSIZE;
        *ret_line = f->partial;
        *ret_len = f->len;
        f->handed_out = 1;
        return 1;
}
