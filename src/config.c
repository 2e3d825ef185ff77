/* The settings of epoll-broadcaster.conf(5): built-in defaults, loading and validating
 * /etc/epoll-broadcaster.conf, printing the effective settings.
 *
 * This is the only file that includes <libconfig.h>; nothing of libconfig
 * leaks out: a Config is plain data. Loading either returns a complete,
 * validated Config or fails with one line in the caller's buffer naming the
 * file, the line and the setting; nothing is logged and nothing is silently
 * ignored or coerced.
 *
 * libconfig 1.5 (Debian 12) needs help to be strict:
 *  - it reports no errno for a missing or unreadable file, so the file is
 *    opened and read here and libconfig parses the bytes;
 *  - relative @include paths resolve against the CWD ('/' under systemd)
 *    unless config_set_include_dir() is called: it is set to the file's
 *    directory (1.5 then prefixes every @include path with it, so an
 *    absolute @include path cannot work);
 *  - a lookup of the wrong type looks like a missing setting: every setting
 *    is reached by walking the root group against an allow-list and its type
 *    is checked with config_setting_type();
 *  - an integer literal without an L suffix is converted with atoi(), so
 *    5000000000 silently becomes 705032704, and an array element gets the
 *    line of the token after it: scan_source() takes a second look at the
 *    same bytes to refuse such literals and to find each element's line;
 *  - a '#' or '//' comment on the last line without a newline is a syntax
 *    error: a missing final newline is added before parsing. */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "prefix.h"
#include "util.h"

/* A configuration file larger than this is surely not one. */
#define CONFIG_FILE_MAX (1024L * 1024)

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static void *mfree(void *p) {
        free(p);
        return NULL;
}

typedef enum Key {
        KEY_LISTEN,
        KEY_MAX_CLIENTS,
        KEY_MAX_MESSAGE_BYTES,
        KEY_MAX_QUEUE_BYTES,
        KEY_SLOW_CLIENT,
        KEY_ECHO,
        KEY_PREFIX,
        KEY_TCP_KEEPALIVE,
        KEY_SHUTDOWN_TIMEOUT,
        KEY_MAX_PARTIAL_BYTES,
        KEY_PARTIAL_TIMEOUT,
        KEY_LOG_LEVEL,
        N_KEYS,
        KEY_INVALID = -1,
} Key;

/* The allow-list: every setting the file may contain. */
static const char *const key_names[N_KEYS] = {
        [KEY_LISTEN] = "listen",
        [KEY_MAX_CLIENTS] = "max_clients",
        [KEY_MAX_MESSAGE_BYTES] = "max_message_bytes",
        [KEY_MAX_QUEUE_BYTES] = "max_queue_bytes",
        [KEY_SLOW_CLIENT] = "slow_client",
        [KEY_ECHO] = "echo",
        [KEY_PREFIX] = "prefix",
        [KEY_TCP_KEEPALIVE] = "tcp_keepalive",
        [KEY_SHUTDOWN_TIMEOUT] = "shutdown_timeout",
        [KEY_MAX_PARTIAL_BYTES] = "max_partial_bytes",
        [KEY_PARTIAL_TIMEOUT] = "partial_timeout",
        [KEY_LOG_LEVEL] = "log_level",
};

static const char *const default_listen[] = {"127.0.0.1:7878", "[::1]:7878"};

static const char *const slow_client_names[] = {
        [SLOW_CLIENT_DISCONNECT] = "disconnect",
        [SLOW_CLIENT_DROP] = "drop",
};

/* Indexed by LogLevel - LOG_LEVEL_ERROR. */
static const char *const log_level_names[] = {
        "error", "warning", "notice", "info", "debug",
};

const char *slow_client_policy_to_string(SlowClientPolicy p) {
        switch (p) {
        case SLOW_CLIENT_DISCONNECT:
        case SLOW_CLIENT_DROP:
                return slow_client_names[p];
        }
        return NULL;
}

const char *log_level_to_string(LogLevel l) {
        switch (l) {
        case LOG_LEVEL_ERROR:
        case LOG_LEVEL_WARNING:
        case LOG_LEVEL_NOTICE:
        case LOG_LEVEL_INFO:
        case LOG_LEVEL_DEBUG:
                return log_level_names[l - LOG_LEVEL_ERROR];
        }
        return NULL;
}

static Key key_from_name(const char *name, size_t len) {
        for (size_t k = 0; k < N_KEYS; k++)
                if (strlen(key_names[k]) == len && memcmp(key_names[k], name, len) == 0)
                        return (Key)k;
        return KEY_INVALID;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CONFIG_LISTEN_MAX; i++)
                free(c->listen_str[i]);
        free(c->prefix);
        free(c);
        return NULL;
}

int config_new_default(Config **ret) {
        _cleanup_config_ Config *c = NULL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        for (size_t i = 0; i < ARRAY_SIZE(default_listen); i++) {
                int r = addr_parse(default_listen[i], &c->listen[i]);
                if (r < 0)
                        return r; /* cannot happen: the defaults parse */
                c->listen_str[i] = strdup(default_listen[i]);
                if (!c->listen_str[i])
                        return -ENOMEM;
                c->listen_opts[c->n_listen].has_address = true;
                c->n_listen++;
        }
        c->listen_is_default = true;
        c->max_clients = 10000;
        c->max_message_bytes = 65536;
        c->max_queue_bytes = 1048576;
        c->slow_client = SLOW_CLIENT_DISCONNECT;
        c->echo = false;
        c->prefix = strdup("");
        if (!c->prefix)
                return -ENOMEM;
        c->tcp_keepalive = 60;
        c->shutdown_timeout = 5;
        c->max_partial_bytes = (uint64_t)64 * 1024 * 1024;
        c->partial_timeout = 30;
        c->log_level = LOG_LEVEL_NOTICE;

        *ret = TAKE_PTR(c);
        return 0;
}

/* ---- Addresses ---------------------------------------------------------- */

static uint16_t addr_port(const SockAddr *a) {
        switch (a->sa.sa_family) {
        case AF_INET:
                return ntohs(a->in.sin_port);
        case AF_INET6:
                return ntohs(a->in6.sin6_port);
        default:
                return 0;
        }
}

static bool addr_is_ip(const SockAddr *a) {
        return a->sa.sa_family == AF_INET || a->sa.sa_family == AF_INET6;
}

/* The same socket address (the 'any' flag aside: "*:P" and "[::]:P" bind the
 * same address, only with a different IPV6_V6ONLY). */
static bool addr_same(const SockAddr *a, const SockAddr *b) {
        if (a->sa.sa_family != b->sa.sa_family)
                return false;
        switch (a->sa.sa_family) {
        case AF_INET:
                return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
        case AF_INET6:
                return a->in6.sin6_port == b->in6.sin6_port &&
                       memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(struct in6_addr)) == 0;
        case AF_UNIX:
                return a->len == b->len && memcmp(a->un.sun_path, b->un.sun_path,
                                                  a->len - offsetof(struct sockaddr_un, sun_path)) == 0;
        default:
                return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
        }
}

static bool addr_is_wildcard_of(const SockAddr *w, const SockAddr *other) {
        if (w->any)
                return true; /* dual stack: every IPv4 and IPv6 address */
        if (w->sa.sa_family != other->sa.sa_family)
                return false;
        if (w->sa.sa_family == AF_INET)
                return w->in.sin_addr.s_addr == htonl(INADDR_ANY);
        return IN6_IS_ADDR_UNSPECIFIED(&w->in6.sin6_addr);
}

/* Two different TCP addresses that cannot both be bound: a wildcard and
 * another address it covers, on the same port. */
static bool addr_overlap(const SockAddr *a, const SockAddr *b) {
        if (!addr_is_ip(a) || !addr_is_ip(b) || addr_port(a) != addr_port(b))
                return false;
        return addr_is_wildcard_of(a, b) || addr_is_wildcard_of(b, a);
}

bool config_listen_equal(const Config *a, const Config *b) {
        if (!a || !b)
                return a == b;
        if (a->n_listen != b->n_listen)
                return false;
        /* As sets: the order of 'listen' does not change what is bound.
         * Duplicates are refused at load time. */
        for (size_t i = 0; i < a->n_listen; i++) {
                bool found = false;
                for (size_t j = 0; j < b->n_listen && !found; j++)
                        found = addr_same(&a->listen[i], &b->listen[j]) &&
                                a->listen[i].any == b->listen[j].any;
                if (!found)
                        return false;
        }
        return true;
}

/* ---- Strings in libconfig syntax ---------------------------------------- */

/* The escaped form of one byte inside a libconfig 1.5 string literal. */
static const char *escape_byte(unsigned char ch, char tmp[static 5]) {
        switch (ch) {
        case '"':
                return "\\\"";
        case '\\':
                return "\\\\";
        case '\n':
                return "\\n";
        case '\r':
                return "\\r";
        case '\t':
                return "\\t";
        case '\f':
                return "\\f";
        default:
                break;
        }
        if (ch < 0x20 || ch == 0x7f) {
                (void)snprintf(tmp, 5, "\\x%02x", ch);
                return tmp;
        }
        tmp[0] = (char)ch;
        tmp[1] = '\0';
        return tmp;
}

static void fput_quoted(const char *s, FILE *f) {
        char tmp[5];

        (void)fputc('"', f);
        for (; *s; s++)
                (void)fputs(escape_byte((unsigned char)*s, tmp), f);
        (void)fputc('"', f);
}

/* Quotes and escapes s into buf for an error message (one line, bounded). */
static const char *quote(const char *s, char *buf, size_t size) {
        size_t n = 0;
        char tmp[5];

        buf[n++] = '"';
        for (; *s; s++) {
                const char *e = escape_byte((unsigned char)*s, tmp);
                size_t k = strlen(e);

                if (n + k + 5 > size) { /* room for ..." and NUL */
                        memcpy(buf + n, "...", 3);
                        n += 3;
                        break;
                }
                memcpy(buf + n, e, k);
                n += k;
        }
        buf[n++] = '"';
        buf[n] = '\0';
        return buf;
}

#define QUOTE_MAX 160
#define QUOTE(s) quote((s), (char[QUOTE_MAX]){}, QUOTE_MAX)

/* ---- A second look at the source --------------------------------------- */

/* What libconfig 1.5 does not tell: the int literals it truncated, and where
 * each element of 'listen' starts (it records the line of the token after an
 * element, so the last element of a multi-line array gets the line of its
 * ']'). Found by a light scan of the very bytes libconfig parsed without
 * error, so only valid syntax needs to be understood. */

/* An integer literal without an L suffix that libconfig 1.5 truncated to
 * int, remembered for the root setting whose value it is in. */
typedef struct IntOverflow {
        bool seen;
        char text[32];
} IntOverflow;

typedef struct SourceFacts {
        IntOverflow overflow[N_KEYS];
        unsigned listen_lines[CONFIG_LISTEN_MAX]; /* 0: not known */
} SourceFacts;

typedef struct Scanner {
        const char *p, *end;
        unsigned line;
} Scanner;

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_hex_digit(char c) {
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_name_start(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*';
}

static bool is_name_char(char c) {
        return is_name_start(c) || is_digit(c) || c == '-' || c == '_';
}

static void scanner_advance(Scanner *s, const char *to) {
        for (const char *q = s->p; q < to; q++)
                if (*q == '\n')
                        s->line++;
        s->p = to;
}

static void skip_blanks_and_comments(Scanner *s) {
        while (s->p < s->end) {
                const char *p = s->p;
                size_t left = (size_t)(s->end - p);

                if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
                        scanner_advance(s, p + 1);
                else if (*p == '#' || (*p == '/' && left > 1 && p[1] == '/')) {
                        const char *nl = memchr(p, '\n', left);
                        scanner_advance(s, nl ?: s->end);
                } else if (*p == '/' && left > 1 && p[1] == '*') {
                        const char *q = memmem(p + 2, left - 2, "*/", 2);
                        scanner_advance(s, q ? q + 2 : s->end);
                } else
                        break;
        }
}

/* At an opening quote: moves past the closing one. */
static void skip_string(Scanner *s) {
        const char *p = s->p + 1;

        while (p < s->end) {
                if (*p == '\\')
                        p += 2;
                else if (*p++ == '"')
                        break;
        }
        scanner_advance(s, MIN(p, s->end));
}

/* At a numeric literal: moves past it; *ret_overflow tells whether it is an
 * int literal (no L suffix) outside int range, which libconfig 1.5 cannot
 * hold. */
static void scan_number(Scanner *s, bool *ret_overflow) {
        const char *p = s->p, *end = s->end, *digits;
        bool hex = false, negative = false;
        size_t n;

        *ret_overflow = false;

        if (*p == '0' && p + 1 < end && (p[1] == 'x' || p[1] == 'X')) {
                hex = true;
                p += 2;
                digits = p;
                while (p < end && is_hex_digit(*p))
                        p++;
        } else {
                if (*p == '+' || *p == '-')
                        negative = *p++ == '-';
                digits = p;
                while (p < end && is_digit(*p))
                        p++;
                if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) { /* a float */
                        if (*p == '.')
                                for (p++; p < end && is_digit(*p); p++)
                                        ;
                        if (p < end && (*p == 'e' || *p == 'E')) {
                                p++;
                                if (p < end && (*p == '+' || *p == '-'))
                                        p++;
                                while (p < end && is_digit(*p))
                                        p++;
                        }
                        s->p = p;
                        return;
                }
        }
        if (p < end && *p == 'L') { /* 64-bit: libconfig reads it right */
                p++;
                if (p < end && *p == 'L')
                        p++;
                s->p = p;
                return;
        }
        s->p = p;

        while (digits < p && *digits == '0')
                digits++;
        n = (size_t)(p - digits);
        if (hex) /* read as unsigned, then cast: past 0x7fffffff it is wrong */
                *ret_overflow = n > 8 || (n == 8 && *digits >= '8');
        else
                *ret_overflow = n > 10 ||
                                (n == 10 && memcmp(digits, negative ? "2147483648" : "2147483647", 10) > 0);
}

static void scan_source(const char *text, size_t len, SourceFacts *ret) {
        Scanner s = {.p = text, .end = text + len, .line = 1};
        Key current = KEY_INVALID; /* the root setting being read */
        bool want_element = false;
        size_t element = 0;
        int depth = 0;

        *ret = (SourceFacts){};

        for (;;) {
                bool closer;
                char c;

                skip_blanks_and_comments(&s);
                if (s.p >= s.end)
                        break;
                c = *s.p;
                closer = c == '}' || c == ']' || c == ')';

                /* The first token of each element of 'listen'. */
                if (want_element && depth == 1 && current == KEY_LISTEN && !closer) {
                        if (element < CONFIG_LISTEN_MAX)
                                ret->listen_lines[element] = s.line;
                        element++;
                        want_element = false;
                }

                if (c == '"')
                        skip_string(&s);
                else if (is_name_start(c)) {
                        const char *name = s.p;
                        Scanner peek;

                        while (s.p < s.end && is_name_char(*s.p))
                                s.p++;
                        peek = s;
                        skip_blanks_and_comments(&peek);
                        if (depth == 0 && peek.p < peek.end && (*peek.p == '=' || *peek.p == ':'))
                                current = key_from_name(name, (size_t)(s.p - name));
                } else if (is_digit(c) || c == '.' ||
                           ((c == '-' || c == '+') && s.p + 1 < s.end &&
                            (is_digit(s.p[1]) || s.p[1] == '.'))) {
                        const char *lit = s.p;
                        bool overflow;

                        scan_number(&s, &overflow);
                        if (overflow && current != KEY_INVALID && !ret->overflow[current].seen) {
                                IntOverflow *o = &ret->overflow[current];
                                size_t n = (size_t)(s.p - lit);

                                o->seen = true;
                                if (n < sizeof(o->text))
                                        memcpy(o->text, lit, n);
                                else
                                        (void)snprintf(o->text, sizeof(o->text), "%.*s...",
                                                       (int)sizeof(o->text) - 4, lit);
                        }
                } else {
                        if (c == '{' || c == '[' || c == '(') {
                                if (depth == 0 && current == KEY_LISTEN) {
                                        want_element = true;
                                        element = 0;
                                }
                                depth++;
                        } else if (closer)
                                depth--;
                        else if (c == ',' && depth == 1 && current == KEY_LISTEN)
                                want_element = true;
                        s.p++;
                }
        }
}

/* ---- Loading ------------------------------------------------------------ */

typedef struct LoadContext {
        const char *path; /* the file as the caller named it */
        const char *dir;  /* its directory: the @include directory */
        char *errbuf;
        size_t errlen;
        SourceFacts facts; /* of 'path' itself */
} LoadContext;

_printf_(3, 4) static int load_error(LoadContext *ctx, int r, const char *fmt, ...) {
        va_list ap;

        if (ctx->errbuf && ctx->errlen > 0) {
                va_start(ap, fmt);
                (void)vsnprintf(ctx->errbuf, ctx->errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* The file a setting (or a libconfig error) comes from, as a path a reader
 * can open: libconfig 1.5 records an @include name as written, relative to
 * the include directory, and NULL for the top-level file. */
static const char *source_path(LoadContext *ctx, const char *file, char *buf, size_t size) {
        if (!file)
                return ctx->path;
        if (file[0] == '/' || streq(ctx->dir, "."))
                return file;
        /* A path libconfig could open fits; a longer one only names the file in a message. */
        (void)snprintf(buf, size, "%s/%s", ctx->dir, file);
        return buf;
}

#define SOURCE_PATH(ctx, file) source_path((ctx), (file), (char[PATH_MAX]){}, PATH_MAX)

/* "FILE:LINE: setting 'NAME': ..." for a setting or one of its elements;
 * 'line' 0 takes libconfig's. */
_printf_(5, 0) static int setting_verror(LoadContext *ctx, const config_setting_t *where, unsigned line,
                                         Key key, const char *fmt, va_list ap) {
        char msg[512];

        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        return load_error(ctx, -EINVAL, "%s:%u: setting '%s': %s",
                          SOURCE_PATH(ctx, config_setting_source_file(where)),
                          line ?: (unsigned)config_setting_source_line(where), key_names[key], msg);
}

_printf_(4, 5) static int setting_error(LoadContext *ctx, const config_setting_t *where, Key key,
                                        const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = setting_verror(ctx, where, 0, key, fmt, ap);
        va_end(ap);
        return r;
}

_printf_(5, 6) static int setting_error_at(LoadContext *ctx, const config_setting_t *where, unsigned line,
                                           Key key, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = setting_verror(ctx, where, line, key, fmt, ap);
        va_end(ap);
        return r;
}

static const char *type_name(int type) {
        switch (type) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
                return "an integer";
        case CONFIG_TYPE_FLOAT:
                return "a floating-point number";
        case CONFIG_TYPE_STRING:
                return "a string";
        case CONFIG_TYPE_BOOL:
                return "a boolean";
        case CONFIG_TYPE_ARRAY:
                return "an array";
        case CONFIG_TYPE_LIST:
                return "a list";
        case CONFIG_TYPE_GROUP:
                return "a group";
        default:
                return "no value";
        }
}

static int type_error(LoadContext *ctx, const config_setting_t *s, Key key, const char *expected) {
        return setting_error(ctx, s, key, "expected %s, got %s", expected,
                             type_name(config_setting_type(s)));
}

/* Reads a whole configuration file (or /dev/null) into a NUL-terminated
 * buffer that ends with a newline. Every failure is reported, but for a
 * missing file when 'missing_ok'. */
static int read_config_file(LoadContext *ctx, const char *path, bool missing_ok, char **ret,
                            size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap;
        struct stat st;

        /* O_NONBLOCK: a FIFO must not hang the daemon at open. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                int e = errno;

                if (e == ENOENT && missing_ok)
                        return -ENOENT;
                return load_error(ctx, -e, "%s: %s", path, strerror(e));
        }
        if (fstat(fd, &st) < 0) {
                int e = errno;
                return load_error(ctx, -e, "%s: %s", path, strerror(e));
        }
        if (S_ISDIR(st.st_mode))
                return load_error(ctx, -EISDIR, "%s: %s", path, strerror(EISDIR));
        if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
                return load_error(ctx, -EINVAL, "%s: not a regular file", path);
        if (st.st_size > CONFIG_FILE_MAX)
                return load_error(ctx, -EFBIG, "%s: larger than %ld bytes, not a configuration file", path,
                                  CONFIG_FILE_MAX);

        cap = (size_t)st.st_size + 2;
        buf = malloc(cap);
        if (!buf)
                return load_error(ctx, -ENOMEM, "%s: out of memory", path);

        for (;;) {
                ssize_t n;

                if (cap - len < 2) {
                        char *nbuf;

                        if (cap > CONFIG_FILE_MAX)
                                return load_error(ctx, -EFBIG,
                                                  "%s: larger than %ld bytes, not a configuration file",
                                                  path, CONFIG_FILE_MAX);
                        nbuf = realloc(buf, cap * 2);
                        if (!nbuf)
                                /* _cleanup_free_ frees buf; clang-tidy 14 does not model
                                 * __attribute__((cleanup)) */
                                /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
                                return load_error(ctx, -ENOMEM, "%s: out of memory", path);
                        buf = nbuf;
                        cap *= 2;
                }
                n = read(fd, buf + len, cap - len - 2);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;
                        return load_error(ctx, -e, "%s: %s", path, strerror(e));
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }

        if (memchr(buf, '\0', len))
                return load_error(ctx, -EINVAL, "%s: contains a NUL byte, not a configuration file", path);
        if (len > 0 && buf[len - 1] != '\n')
                buf[len++] = '\n';
        buf[len] = '\0';

        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/* libconfig 1.5 opens an @include with fopen() and reads it with a flex
 * scanner that calls exit(2) when a read fails: '@include "."' (or any
 * directory) would end the daemon, on a reload too, and a FIFO would hang
 * it. So every file an @include names is read here first, where libconfig
 * will look for it (the include directory, then the name as written, with
 * its \\ and \" escapes), under the main file's rules, and so are the files
 * it includes. A missing one is left for libconfig to report. Returns 0, 1
 * once libconfig will refuse the nesting (nothing after that is read), or a
 * negative error. */
#define INCLUDE_DEPTH_MAX 10 /* libconfig 1.5's limit */

/* NOLINTNEXTLINE(misc-no-recursion): as deep as the @include nesting, at most INCLUDE_DEPTH_MAX */
static int check_includes(LoadContext *ctx, const char *file, const char *text, size_t len, unsigned depth) {
        static const char directive[] = "@include";
        const size_t dlen = sizeof(directive) - 1;
        Scanner s = {.p = text, .end = text + len, .line = 1};

        for (;;) {
                skip_blanks_and_comments(&s);
                if (s.p >= s.end)
                        return 0;
                if (*s.p == '"') {
                        skip_string(&s);
                        continue;
                }

                /* libconfig's pattern: ^[ \t]*@include[ \t]+" */
                const char *p = s.p++, *bol = p;
                while (bol > text && (bol[-1] == ' ' || bol[-1] == '\t'))
                        bol--;
                if ((bol > text && bol[-1] != '\n') || (size_t)(s.end - p) <= dlen ||
                    memcmp(p, directive, dlen) != 0 || (p[dlen] != ' ' && p[dlen] != '\t'))
                        continue;
                unsigned line = s.line;
                for (p += dlen; p < s.end && (*p == ' ' || *p == '\t'); p++)
                        ;
                if (p >= s.end || *p != '"')
                        continue;

                char name[PATH_MAX], path[PATH_MAX], why[PATH_MAX + 128] = "";
                size_t n = 0;
                for (p++; p < s.end && *p != '"'; p++, n++) {
                        if (*p == '\\' && p + 1 < s.end && (p[1] == '\\' || p[1] == '"'))
                                p++;
                        if (n < sizeof(name))
                                name[n] = *p;
                }
                scanner_advance(&s, MIN(p + 1, s.end));

                if (depth + 1 > INCLUDE_DEPTH_MAX)
                        return 1;
                /* A path this long libconfig cannot open either. */
                if (n >= sizeof(name) ||
                    snprintf(path, sizeof(path), "%s/%.*s", ctx->dir, (int)n, name) >= (int)sizeof(path))
                        continue;
                name[n] = '\0';

                LoadContext quiet = {.errbuf = why, .errlen = sizeof(why)};
                _cleanup_free_ char *inc = NULL;
                size_t inc_len = 0;
                int r = read_config_file(&quiet, path, true, &inc, &inc_len);
                if (r == -ENOENT)
                        continue;
                /* 'why' is "PATH: reason"; the name as written reads better. */
                if (r < 0)
                        return load_error(ctx, -EINVAL, "%s:%u: cannot include %s: %s", file, line,
                                          QUOTE(name), why + strlen(path) + 2);
                r = check_includes(ctx, path, inc, inc_len, depth + 1);
                if (r != 0)
                        return r;
        }
}

/* The SourceFacts of the file that setting 's' is in. */
static int source_facts(LoadContext *ctx, const config_setting_t *s, Key key, SourceFacts *ret) {
        const char *file = config_setting_source_file(s), *path;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r;

        if (!file) {
                *ret = ctx->facts;
                return 0;
        }

        /* An @included file: scan it too. */
        path = SOURCE_PATH(ctx, file);
        r = read_config_file(ctx, path, false, &text, &len);
        if (r < 0)
                return setting_error(ctx, s, key, "cannot read %s again: %s", path, strerror(-r));
        scan_source(text, len, ret);
        return 0;
}

static int load_int(LoadContext *ctx, const config_setting_t *s, Key key, long long min, long long max,
                    long long *ret) {
        SourceFacts facts = {};
        long long v;
        int r;

        switch (config_setting_type(s)) {
        case CONFIG_TYPE_INT:
                r = source_facts(ctx, s, key, &facts);
                if (r < 0)
                        return r;
                if (facts.overflow[key].seen)
                        return setting_error(ctx, s, key, "%s is out of range %lld..%lld",
                                             facts.overflow[key].text, min, max);
                v = config_setting_get_int(s);
                break;
        case CONFIG_TYPE_INT64:
                v = config_setting_get_int64(s);
                break;
        default:
                return type_error(ctx, s, key, "an integer");
        }

        if (v < min || v > max)
                return setting_error(ctx, s, key, "%lld is out of range %lld..%lld", v, min, max);

        *ret = v;
        return 0;
}

static int load_bool(LoadContext *ctx, const config_setting_t *s, Key key, bool *ret) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return type_error(ctx, s, key, "a boolean (true or false)");
        *ret = config_setting_get_bool(s);
        return 0;
}

/* A string that must be one of 'names'; returns its index. */
static int load_enum(LoadContext *ctx, const config_setting_t *s, Key key, const char *const *names,
                     size_t n_names, size_t *ret) {
        char allowed[128] = "";
        const char *v;

        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
                v = config_setting_get_string(s);
                for (size_t i = 0; i < n_names; i++)
                        if (streq(v, names[i])) {
                                *ret = i;
                                return 0;
                        }
        }

        /* "a", "b" or "c" (the lists are short: it always fits) */
        for (size_t i = 0, n = 0; i < n_names && n < sizeof(allowed); i++) {
                const char *sep = i == 0 ? "" : i + 1 == n_names ? " or " : ", ";

                n += (size_t)snprintf(allowed + n, sizeof(allowed) - n, "%s\"%s\"", sep, names[i]);
        }

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return setting_error(ctx, s, key, "expected a string (%s), got %s", allowed,
                                     type_name(config_setting_type(s)));
        return setting_error(ctx, s, key, "%s is not one of %s", QUOTE(config_setting_get_string(s)),
                             allowed);
}

static int load_prefix(LoadContext *ctx, const config_setting_t *s, Config *c) {
        const char *v;
        size_t len, off;
        char *copy;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return type_error(ctx, s, KEY_PREFIX, "a string");

        v = config_setting_get_string(s);
        len = strlen(v);
        if (len > CONFIG_PREFIX_MAX)
                return setting_error(ctx, s, KEY_PREFIX, "%zu bytes long, at most %d are allowed", len,
                                     CONFIG_PREFIX_MAX);
        if (prefix_validate(v, &off) < 0) {
                char tmp[5];

                if (v[off] == '\n')
                        return setting_error(ctx, s, KEY_PREFIX,
                                             "a line feed (\\n) at offset %zu would split every message",
                                             off);
                if (v[off + 1] == '\0')
                        return setting_error(
                                ctx, s, KEY_PREFIX,
                                "a lone '%%' at the end (offset %zu); write %%%% for a percent sign", off);
                return setting_error(ctx, s, KEY_PREFIX,
                                     "unknown directive '%%%s' at offset %zu; use %%a, %%i or %%%%",
                                     escape_byte((unsigned char)v[off + 1], tmp), off);
        }

        copy = strdup(v);
        if (!copy)
                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        free(c->prefix);
        c->prefix = copy;
        return 0;
}

static int load_listen(LoadContext *ctx, const config_setting_t *s, Config *c) {
        int type = config_setting_type(s), n, r;
        SourceFacts facts;

        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
                return type_error(ctx, s, KEY_LISTEN, "an array or list of strings");

        n = config_setting_length(s);
        if (n < 1 || n > CONFIG_LISTEN_MAX)
                return setting_error(ctx, s, KEY_LISTEN, "%d addresses given, expected 1..%d", n,
                                     CONFIG_LISTEN_MAX);

        r = source_facts(ctx, s, KEY_LISTEN, &facts);
        if (r < 0)
                return r;

        for (size_t i = 0; i < CONFIG_LISTEN_MAX; i++)
                c->listen_str[i] = mfree(c->listen_str[i]);
        c->n_listen = 0;
        c->listen_is_default = false;

        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
                unsigned line = facts.listen_lines[i];
                const char *v;
                SockAddr a;

                if (config_setting_type(e) != CONFIG_TYPE_STRING)
                        return setting_error_at(ctx, e, line, KEY_LISTEN,
                                                "element %d: expected a string, got %s", i + 1,
                                                type_name(config_setting_type(e)));
                v = config_setting_get_string(e);

                if (addr_parse(v, &a) < 0) {
                        if (v[0] == '/')
                                return setting_error_at(ctx, e, line, KEY_LISTEN,
                                                        "%s: a Unix socket path is at most %zu bytes",
                                                        QUOTE(v), sizeof(a.un.sun_path) - 1);
                        return setting_error_at(ctx, e, line, KEY_LISTEN,
                                                "%s is not an address: expected a.b.c.d:port, [v6]:port, "
                                                "*:port or an absolute path, port 1..65535",
                                                QUOTE(v));
                }

                for (size_t j = 0; j < c->n_listen; j++) {
                        if (addr_same(&a, &c->listen[j])) {
                                if (streq(v, c->listen_str[j]))
                                        return setting_error_at(ctx, e, line, KEY_LISTEN,
                                                                "%s is listed twice", QUOTE(v));
                                return setting_error_at(ctx, e, line, KEY_LISTEN,
                                                        "%s is the same address as %s", QUOTE(v),
                                                        QUOTE(c->listen_str[j]));
                        }
                        if (addr_overlap(&a, &c->listen[j]))
                                return setting_error_at(ctx, e, line, KEY_LISTEN,
                                                        "%s overlaps %s: a wildcard address and another "
                                                        "address it covers cannot both listen on port %u",
                                                        QUOTE(v), QUOTE(c->listen_str[j]),
                                                        (unsigned)addr_port(&a));
                }

                c->listen_str[c->n_listen] = strdup(v);
                if (!c->listen_str[c->n_listen])
                        return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
                c->listen_opts[c->n_listen].has_address = true;
                c->listen[c->n_listen++] = a;
        }

        return 0;
}

static int load_setting(LoadContext *ctx, const config_setting_t *s, Key key, Config *c) {
        long long v = 0;
        size_t idx = 0;
        int r;

        switch (key) {
        case KEY_LISTEN:
                return load_listen(ctx, s, c);
        case KEY_MAX_CLIENTS:
                r = load_int(ctx, s, key, CONFIG_MAX_CLIENTS_MIN, CONFIG_MAX_CLIENTS_MAX, &v);
                if (r >= 0)
                        c->max_clients = (uint32_t)v;
                return r;
        case KEY_MAX_MESSAGE_BYTES:
                r = load_int(ctx, s, key, CONFIG_MAX_MESSAGE_MIN, CONFIG_MAX_MESSAGE_MAX, &v);
                if (r >= 0)
                        c->max_message_bytes = (uint32_t)v;
                return r;
        case KEY_MAX_QUEUE_BYTES:
                r = load_int(ctx, s, key, CONFIG_MAX_QUEUE_MIN, CONFIG_MAX_QUEUE_MAX, &v);
                if (r >= 0)
                        c->max_queue_bytes = (uint64_t)v;
                return r;
        case KEY_SLOW_CLIENT:
                r = load_enum(ctx, s, key, slow_client_names, ARRAY_SIZE(slow_client_names), &idx);
                if (r >= 0)
                        c->slow_client = (SlowClientPolicy)idx;
                return r;
        case KEY_ECHO:
                return load_bool(ctx, s, key, &c->echo);
        case KEY_PREFIX:
                return load_prefix(ctx, s, c);
        case KEY_TCP_KEEPALIVE:
                r = load_int(ctx, s, key, 0, CONFIG_KEEPALIVE_MAX, &v);
                if (r >= 0)
                        c->tcp_keepalive = (uint32_t)v;
                return r;
        case KEY_SHUTDOWN_TIMEOUT:
                r = load_int(ctx, s, key, 0, CONFIG_SHUTDOWN_TIMEOUT_MAX, &v);
                if (r >= 0)
                        c->shutdown_timeout = (uint32_t)v;
                return r;
        case KEY_MAX_PARTIAL_BYTES:
                r = load_int(ctx, s, key, CONFIG_MAX_MESSAGE_MIN, CONFIG_MAX_PARTIAL_MAX, &v);
                if (r >= 0)
                        c->max_partial_bytes = (uint64_t)v;
                return r;
        case KEY_PARTIAL_TIMEOUT:
                r = load_int(ctx, s, key, 0, CONFIG_PARTIAL_TIMEOUT_MAX, &v);
                if (r >= 0)
                        c->partial_timeout = (uint32_t)v;
                return r;
        case KEY_LOG_LEVEL:
                r = load_enum(ctx, s, key, log_level_names, ARRAY_SIZE(log_level_names), &idx);
                if (r >= 0)
                        c->log_level = (LogLevel)(LOG_LEVEL_ERROR + (int)idx);
                return r;
        case N_KEYS:
        case KEY_INVALID:
                break;
        }
        return -EINVAL;
}

static void config_destroyp(config_t *lc) {
        config_destroy(lc);
}

int config_load(const char *path, bool must_exist, Config **ret, bool *ret_used_defaults, char *errbuf,
                size_t errlen) {
        LoadContext ctx = {.path = path, .errbuf = errbuf, .errlen = errlen};
        const config_setting_t *seen[N_KEYS] = {};
        _cleanup_config_ Config *c = NULL;
        _cleanup_free_ char *text = NULL, *dir = NULL;
        const config_setting_t *root;
        const char *slash;
        size_t len = 0;
        int r, n;

        if (!path || !ret)
                return load_error(&ctx, -EINVAL, "no configuration file given");

        r = config_new_default(&c);
        if (r < 0)
                return load_error(&ctx, r, "%s: %s", path, strerror(-r));

        r = read_config_file(&ctx, path, !must_exist, &text, &len);
        if (r == -ENOENT && !must_exist) {
                *ret = TAKE_PTR(c);
                if (ret_used_defaults)
                        *ret_used_defaults = true;
                return 0;
        }
        if (r < 0)
                return r;

        slash = strrchr(path, '/');
        dir = slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
        if (!dir)
                return load_error(&ctx, -ENOMEM, "%s: out of memory", path);
        ctx.dir = dir;

        scan_source(text, len, &ctx.facts);
        r = check_includes(&ctx, path, text, len, 0);
        if (r < 0)
                return r;

        _cleanup_(config_destroyp) config_t lc;
        config_init(&lc);
        config_set_include_dir(&lc, dir);

        if (config_read_string(&lc, text) != CONFIG_TRUE) {
                const char *file = SOURCE_PATH(&ctx, config_error_file(&lc));
                const char *what = config_error_text(&lc) ?: "unknown error";

                if (streq(what, "syntax error"))
                        return load_error(&ctx, -EINVAL, "%s:%d: syntax error", file,
                                          config_error_line(&lc));
                if (streq(what, "cannot open include file"))
                        return load_error(
                                &ctx, -EINVAL,
                                "%s:%d: cannot open include file (@include paths are relative to %s)", file,
                                config_error_line(&lc), dir);
                return load_error(&ctx, -EINVAL, "%s:%d: syntax error: %s", file, config_error_line(&lc),
                                  what);
        }

        root = config_root_setting(&lc);
        n = config_setting_length(root);
        for (int i = 0; i < n; i++) {
                const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
                const char *name = config_setting_name(s);
                Key key = key_from_name(name, strlen(name));

                if (key == KEY_INVALID)
                        return load_error(&ctx, -EINVAL, "%s:%u: unknown setting '%s'",
                                          SOURCE_PATH(&ctx, config_setting_source_file(s)),
                                          (unsigned)config_setting_source_line(s), name);
                seen[key] = s; /* libconfig refuses duplicate names */

                r = load_setting(&ctx, s, key, c);
                if (r < 0)
                        return r;
        }

        if (c->max_queue_bytes < c->max_message_bytes) {
                if (seen[KEY_MAX_QUEUE_BYTES])
                        return setting_error(&ctx, seen[KEY_MAX_QUEUE_BYTES], KEY_MAX_QUEUE_BYTES,
                                             "%" PRIu64 " is less than max_message_bytes (%" PRIu32
                                             "): a client's queue must hold at least one message",
                                             c->max_queue_bytes, c->max_message_bytes);
                return setting_error(&ctx, seen[KEY_MAX_MESSAGE_BYTES], KEY_MAX_QUEUE_BYTES,
                                     "the default %" PRIu64 " is less than max_message_bytes (%" PRIu32
                                     "): raise max_queue_bytes too",
                                     c->max_queue_bytes, c->max_message_bytes);
        }

        if (c->max_partial_bytes < c->max_message_bytes) {
                /* The default is above the largest max_message_bytes: it was set. */
                return setting_error(&ctx, seen[KEY_MAX_PARTIAL_BYTES], KEY_MAX_PARTIAL_BYTES,
                                     "%" PRIu64 " is less than max_message_bytes (%" PRIu32
                                     "): unfinished lines must have room for at least one message",
                                     c->max_partial_bytes, c->max_message_bytes);
        }

        *ret = TAKE_PTR(c);
        if (ret_used_defaults)
                *ret_used_defaults = false;
        return 0;
}

/* ---- Printing ----------------------------------------------------------- */

/* A write error stays on 'f' (ferror): the caller checks it once at the end. */
void config_print(const Config *c, FILE *f) {
        const char *s;

        (void)fputs("# epoll-broadcaster: effective settings (libconfig syntax)\n", f);

        (void)fputs("listen = [ ", f);
        for (size_t i = 0; i < c->n_listen; i++) {
                char buf[ADDR_STR_MAX];

                if (i > 0)
                        (void)fputs(", ", f);
                if (c->listen_str[i])
                        fput_quoted(c->listen_str[i], f);
                else {
                        addr_format_listen(&c->listen[i], buf, sizeof(buf));
                        fput_quoted(buf, f);
                }
        }
        (void)fprintf(f, " ];%s\n", c->listen_is_default ? " # built-in default" : "");

        (void)fprintf(f, "max_clients = %" PRIu32 ";\n", c->max_clients);
        (void)fprintf(f, "max_message_bytes = %" PRIu32 ";\n", c->max_message_bytes);
        /* libconfig 1.5 needs the L suffix past INT_MAX. */
        (void)fprintf(f, "max_queue_bytes = %" PRIu64 "%s;\n", c->max_queue_bytes,
                      c->max_queue_bytes > INT_MAX ? "L" : "");
        s = slow_client_policy_to_string(c->slow_client);
        (void)fprintf(f, "slow_client = \"%s\";\n", s ?: "invalid");
        (void)fprintf(f, "echo = %s;\n", c->echo ? "true" : "false");
        (void)fputs("prefix = ", f);
        fput_quoted(c->prefix ?: "", f);
        (void)fputs(";\n", f);
        (void)fprintf(f, "tcp_keepalive = %" PRIu32 ";\n", c->tcp_keepalive);
        (void)fprintf(f, "shutdown_timeout = %" PRIu32 ";\n", c->shutdown_timeout);
        (void)fprintf(f, "max_partial_bytes = %" PRIu64 "%s;\n", c->max_partial_bytes,
                      c->max_partial_bytes > INT_MAX ? "L" : "");
        (void)fprintf(f, "partial_timeout = %" PRIu32 ";\n", c->partial_timeout);
        s = log_level_to_string(c->log_level);
        (void)fprintf(f, "log_level = \"%s\";\n", s ?: "invalid");
}
