/* The 'prefix' template (docs/protocol.md): validation at configuration time and
 * expansion once per relayed message.
 *
 * Pure: no I/O, no logging, no allocation. A template is a byte string with
 * four directives, %a (peer address), %i (connection id), %u (the client's
 * authenticated identity, "-" when none) and %% (a percent sign); every
 * other byte is copied as is. A LF is refused: it would split
 * every relayed message in two. Expansion stops at 'size' bytes (it may cut
 * an expanded %a short) and adds no NUL: the result is a byte run. */

#include "prefix.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static bool is_directive(char c) {
        return c == 'a' || c == 'i' || c == 'u' || c == '%';
}

int prefix_validate(const char *tmpl, size_t *ret_bad_offset) {
        if (!tmpl)
                return -EINVAL;

        for (size_t i = 0; tmpl[i]; i++) {
                if (tmpl[i] == '\n') {
                        if (ret_bad_offset)
                                *ret_bad_offset = i;
                        return -EINVAL;
                }
                if (tmpl[i] != '%')
                        continue;
                /* Report the '%' that starts a bad directive: that is where
                 * the administrator has to look. */
                if (!is_directive(tmpl[i + 1])) {
                        if (ret_bad_offset)
                                *ret_bad_offset = i;
                        return -EINVAL;
                }
                i++;
        }

        return 0;
}

static size_t append(char *buf, size_t size, size_t n, const char *s, size_t len) {
        size_t k = MIN(len, size - n);

        memcpy(buf + n, s, k);
        return n + k;
}

size_t prefix_expand(const char *tmpl, const char *peer, uint64_t id, const char *user, char *buf,
                     size_t size) {
        size_t n = 0;

        if (!tmpl || !buf)
                return 0;
        if (!peer)
                peer = "";
        if (!user || !*user)
                user = "-";

        for (const char *p = tmpl; *p && n < size; p++) {
                const char *lit = p;

                if (*p != '%' || !is_directive(p[1])) {
                        /* Literal run up to the next '%' (an unvalidated
                         * stray '%' is copied as is). */
                        size_t len = 1 + strcspn(p + 1, "%");

                        n = append(buf, size, n, lit, len);
                        p += len - 1;
                        continue;
                }

                p++;
                switch (*p) {
                case 'a':
                        n = append(buf, size, n, peer, strlen(peer));
                        break;
                case 'u':
                        n = append(buf, size, n, user, strnlen(user, PREFIX_USER_MAX));
                        break;
                case 'i': {
                        char num[sizeof("18446744073709551615")];
                        int k = snprintf(num, sizeof(num), "%" PRIu64, id);

                        n = append(buf, size, n, num, (size_t)MAX(k, 0));
                        break;
                }
                default: /* '%' */
                        n = append(buf, size, n, "%", 1);
                        break;
                }
        }

        return n;
}
