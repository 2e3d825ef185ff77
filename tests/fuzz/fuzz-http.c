/* Fuzz target: the request head parser (src/http.h) on arbitrary bytes that
 * arrive in arbitrary read sizes, used as the WebSocket codec will use it:
 * the bytes so far, in a buffer that moves between calls.
 *
 * Property: the result and every field are those of one call on all the
 * bytes at once; until then every call says "need more"; the head length is
 * within the bytes given and HTTP_HEAD_MAX and ends with a LF; every span
 * lies inside the head; the method is a non-empty token, the target starts
 * with '/' and the path is its prefix up to '?'; -E2BIG comes exactly when
 * HTTP_HEAD_MAX bytes hold no complete head. Each call gets a buffer of
 * exactly the bytes so far, so that ASan sees a read past them; nothing is
 * allocated (LeakSanitizer would see it).
 *
 * Input: how many read sizes follow (1 byte) and the sizes (1 byte each,
 * used in turn), then the stream. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-input.h"
#include "http.h"
#include "util.h"

#define MAX_READ_SIZES 16

static bool span_in(HttpSpan s, int head_len) {
        return (int)s.off + s.len <= head_len;
}

static void check_same(const HttpRequest *a, const HttpRequest *b) {
        /* The results, field by field (the parser state may differ). */
        if (memcmp(&a->method, &b->method, sizeof(HttpSpan)) ||
            memcmp(&a->target, &b->target, sizeof(HttpSpan)) ||
            memcmp(&a->path, &b->path, sizeof(HttpSpan)) || memcmp(&a->host, &b->host, sizeof(HttpSpan)) ||
            memcmp(&a->origin, &b->origin, sizeof(HttpSpan)) ||
            memcmp(&a->ws_key, &b->ws_key, sizeof(HttpSpan)) || a->has_origin != b->has_origin ||
            a->has_ws_key != b->has_ws_key || a->ws_key_valid != b->ws_key_valid ||
            a->ws_version != b->ws_version || a->upgrade_websocket != b->upgrade_websocket ||
            a->connection_upgrade != b->connection_upgrade || a->has_body != b->has_body)
                abort();
}

static int parse_copy(HttpRequest *r, const char *s, size_t n) {
        char *buf = malloc(n ? n : 1);
        if (!buf)
                abort();
        memcpy(buf, s, n);
        int k = http_parse(r, buf, n);
        if (k > 0 && http_ws_check(r, buf) > 0) {
                char accept[HTTP_WS_ACCEPT_SIZE];
                if (http_ws_accept(buf + r->ws_key.off, r->ws_key.len, accept) != 0 || strlen(accept) != 28)
                        abort();
        }
        free(buf);
        return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = {data, size};
        size_t read_sizes[MAX_READ_SIZES];
        size_t n_sizes = 1 + fuzz_u8(&in) % MAX_READ_SIZES;
        for (size_t i = 0; i < n_sizes; i++) {
                uint8_t b = fuzz_u8(&in);
                read_sizes[i] = 1 + (size_t)b * b / 16;
        }
        const char *stream = (const char *)in.p;
        size_t n = in.left;

        HttpRequest whole = HTTP_REQUEST_INIT;
        int want = parse_copy(&whole, stream, n);
        if (want > 0) {
                const char *s = stream;
                if ((size_t)want > n || want > HTTP_HEAD_MAX || s[want - 1] != '\n')
                        abort();
                if (!span_in(whole.method, want) || !span_in(whole.target, want) ||
                    !span_in(whole.path, want) || !span_in(whole.host, want) ||
                    !span_in(whole.origin, want) || !span_in(whole.ws_key, want))
                        abort();
                if (whole.method.len == 0 || whole.target.len == 0 || s[whole.target.off] != '/' ||
                    whole.path.off != whole.target.off || whole.path.len > whole.target.len ||
                    memchr(s + whole.path.off, '?', whole.path.len) ||
                    (whole.path.len < whole.target.len && s[whole.path.off + whole.path.len] != '?'))
                        abort();
                /* The head alone parses the same: nothing after it counts. */
                HttpRequest head = HTTP_REQUEST_INIT;
                if (parse_copy(&head, stream, (size_t)want) != want)
                        abort();
                check_same(&whole, &head);
        } else if (want == -E2BIG) {
                if (n < HTTP_HEAD_MAX)
                        abort();
        } else if (want == 0) {
                if (n >= HTTP_HEAD_MAX)
                        abort();
        } else if (want != -EBADMSG && want != -EPROTONOSUPPORT)
                abort();

        /* The same bytes in reads of the given sizes. */
        HttpRequest r = HTTP_REQUEST_INIT;
        int got = 0;
        for (size_t i = 0, have = 0; have < n; i++) {
                have += MIN(read_sizes[i % n_sizes], n - have);
                got = parse_copy(&r, stream, have);
                if (got != 0)
                        break;
        }
        if (n == 0)
                got = parse_copy(&r, stream, 0);
        if (got != want)
                abort();
        if (got > 0)
                check_same(&whole, &r);
        return 0;
}
