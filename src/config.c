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
 *    is checked with config_setting_type(); so are the keys of the groups
 *    (the 'tls' group, a group in 'listen'), each against its own list;
 *  - an integer literal without an L suffix is converted with atoi(), so
 *    5000000000 silently becomes 705032704, and an array element gets the
 *    line of the token after it: scan_source() takes a second look at the
 *    same bytes to refuse such literals and to find each element's line
 *    (of 'listen', and of the 'origins' of its groups);
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
        KEY_PING_INTERVAL,
        KEY_REQUEST_TIMEOUT,
        KEY_LOG_LEVEL,
        KEY_TLS,
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
        [KEY_PING_INTERVAL] = "ping_interval",
        [KEY_REQUEST_TIMEOUT] = "request_timeout",
        [KEY_LOG_LEVEL] = "log_level",
        [KEY_TLS] = "tls",
};

/* The keys of a group in 'listen'. */
typedef enum ListenKey {
        LISTEN_KEY_ADDRESS,
        LISTEN_KEY_NAME,
        LISTEN_KEY_PROTOCOL,
        LISTEN_KEY_TLS,
        LISTEN_KEY_ROLE,
        LISTEN_KEY_ORIGINS,
        LISTEN_KEY_HISTORY,
        N_LISTEN_KEYS,
} ListenKey;

static const char *const listen_key_names[N_LISTEN_KEYS] = {
        [LISTEN_KEY_ADDRESS] = "address", [LISTEN_KEY_NAME] = "name", [LISTEN_KEY_PROTOCOL] = "protocol",
        [LISTEN_KEY_TLS] = "tls",         [LISTEN_KEY_ROLE] = "role", [LISTEN_KEY_ORIGINS] = "origins",
        [LISTEN_KEY_HISTORY] = "history",
};

/* The keys of the 'tls' group, as messages name them. */
typedef enum TlsKey {
        TLS_KEY_CERT_FILE,
        TLS_KEY_KEY_FILE,
        TLS_KEY_CA_FILE,
        TLS_KEY_CLIENT_AUTH,
        TLS_KEY_MIN_VERSION,
        TLS_KEY_CIPHERS,
        TLS_KEY_CIPHERSUITES,
        TLS_KEY_HANDSHAKE_TIMEOUT,
        N_TLS_KEYS,
} TlsKey;

#define TLS_PREFIX_LEN 4 /* "tls." */
static const char *const tls_key_names[N_TLS_KEYS] = {
        [TLS_KEY_CERT_FILE] = "tls.cert_file",       [TLS_KEY_KEY_FILE] = "tls.key_file",
        [TLS_KEY_CA_FILE] = "tls.ca_file",           [TLS_KEY_CLIENT_AUTH] = "tls.client_auth",
        [TLS_KEY_MIN_VERSION] = "tls.min_version",   [TLS_KEY_CIPHERS] = "tls.ciphers",
        [TLS_KEY_CIPHERSUITES] = "tls.ciphersuites", [TLS_KEY_HANDSHAKE_TIMEOUT] = "tls.handshake_timeout",
};

/* Where scan_source() files an integer literal it found: the root setting
 * whose value it is in, or for the 'tls' group the key. */
#define N_SLOTS (N_KEYS + N_TLS_KEYS)
#define TLS_SLOT(k) (N_KEYS + (k))

static const char *const default_listen[] = {"127.0.0.1:7878", "[::1]:7878"};

static const char *const slow_client_names[] = {
        [SLOW_CLIENT_DISCONNECT] = "disconnect",
        [SLOW_CLIENT_DROP] = "drop",
};

/* Indexed by LogLevel - LOG_LEVEL_ERROR. */
static const char *const log_level_names[] = {
        "error", "warning", "notice", "info", "debug",
};

static const char *const protocol_names[] = {
        [LISTEN_PROTOCOL_LINE] = "line",
        [LISTEN_PROTOCOL_WEBSOCKET] = "websocket",
        [LISTEN_PROTOCOL_METRICS] = "metrics",
};

static const char *const role_names[] = {
        [LISTEN_ROLE_BOTH] = "both",
        [LISTEN_ROLE_SUBSCRIBE] = "subscribe",
        [LISTEN_ROLE_PUBLISH] = "publish",
};

static const char *const client_auth_names[] = {
        [TLS_CLIENT_AUTH_NONE] = "none",
        [TLS_CLIENT_AUTH_OPTIONAL] = "optional",
        [TLS_CLIENT_AUTH_REQUIRE] = "require",
};

static const char *const tls_version_names[] = {
        [TLS_VERSION_1_2] = "1.2",
        [TLS_VERSION_1_3] = "1.3",
};

#define CONFIG_NAME_MAX 255 /* FileDescriptorName= */
#define CONFIG_HANDSHAKE_TIMEOUT_DEFAULT 10

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

const char *listen_protocol_to_string(ListenProtocol p) {
        switch (p) {
        case LISTEN_PROTOCOL_LINE:
        case LISTEN_PROTOCOL_WEBSOCKET:
        case LISTEN_PROTOCOL_METRICS:
                return protocol_names[p];
        case N_LISTEN_PROTOCOLS:
                break;
        }
        return NULL;
}

const char *listen_role_to_string(ListenRole r) {
        switch (r) {
        case LISTEN_ROLE_BOTH:
        case LISTEN_ROLE_SUBSCRIBE:
        case LISTEN_ROLE_PUBLISH:
                return role_names[r];
        }
        return NULL;
}

const char *tls_client_auth_to_string(TlsClientAuth a) {
        switch (a) {
        case TLS_CLIENT_AUTH_NONE:
        case TLS_CLIENT_AUTH_OPTIONAL:
        case TLS_CLIENT_AUTH_REQUIRE:
                return client_auth_names[a];
        }
        return NULL;
}

const char *tls_version_to_string(TlsVersion v) {
        switch (v) {
        case TLS_VERSION_1_2:
        case TLS_VERSION_1_3:
                return tls_version_names[v];
        }
        return NULL;
}

/* The index of 'name' (of 'len' bytes) in 'names', or -1. */
static int name_index(const char *const *names, size_t n_names, const char *name, size_t len) {
        for (size_t k = 0; k < n_names; k++)
                if (strlen(names[k]) == len && memcmp(names[k], name, len) == 0)
                        return (int)k;
        return -1;
}

static Key key_from_name(const char *name, size_t len) {
        int k = name_index(key_names, N_KEYS, name, len);
        return k < 0 ? KEY_INVALID : (Key)k;
}

static int tls_key_from_name(const char *name, size_t len) {
        for (size_t k = 0; k < N_TLS_KEYS; k++)
                if (strlen(tls_key_names[k] + TLS_PREFIX_LEN) == len &&
                    memcmp(tls_key_names[k] + TLS_PREFIX_LEN, name, len) == 0)
                        return (int)k;
        return -1;
}

static void listen_options_clear(ListenOptions *o) {
        free(o->name);
        for (size_t k = 0; k < o->n_origins; k++)
                free(o->origins[k]);
        free(o->origins);
        *o = (ListenOptions){};
}

/* What a string entry has. Returns 0 or -ENOMEM. */
static int listen_options_default(ListenOptions *o) {
        *o = (ListenOptions){
                .has_address = true,
                .protocol = LISTEN_PROTOCOL_LINE,
                .role = LISTEN_ROLE_BOTH,
                .history = true,
                .name = strdup(""),
        };
        return o->name ? 0 : -ENOMEM;
}

/* A string entry says as much. */
static bool listen_options_plain(const ListenOptions *o) {
        return o->has_address && (!o->name || !o->name[0]) && o->protocol == LISTEN_PROTOCOL_LINE &&
               !o->tls && o->role == LISTEN_ROLE_BOTH && o->n_origins == 0 && o->history;
}

static void tls_config_clear(TlsConfig *t) {
        free(t->cert_file);
        free(t->key_file);
        free(t->ca_file);
        free(t->ciphers);
        free(t->ciphersuites);
        free(t->source);
        *t = (TlsConfig){};
}

static int tls_config_default(TlsConfig *t) {
        *t = (TlsConfig){
                .client_auth = TLS_CLIENT_AUTH_NONE,
                .min_version = TLS_VERSION_1_2,
                .handshake_timeout = CONFIG_HANDSHAKE_TIMEOUT_DEFAULT,
                .cert_file = strdup(""),
                .key_file = strdup(""),
                .ca_file = strdup(""),
                .ciphers = strdup(""),
                .ciphersuites = strdup(""),
                .source = strdup(""),
        };
        if (!t->cert_file || !t->key_file || !t->ca_file || !t->ciphers || !t->ciphersuites || !t->source)
                return -ENOMEM;
        return 0;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CONFIG_LISTEN_MAX; i++) {
                free(c->listen_str[i]);
                listen_options_clear(&c->listen_opts[i]);
        }
        free(c->prefix);
        tls_config_clear(&c->tls);
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
                if (!c->listen_str[i] || listen_options_default(&c->listen_opts[i]) < 0)
                        return -ENOMEM;
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
        c->ping_interval = 30;
        c->request_timeout = 10;
        c->log_level = LOG_LEVEL_NOTICE;
        if (tls_config_default(&c->tls) < 0)
                return -ENOMEM;

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

static bool str_same(const char *a, const char *b) {
        return streq(a ?: "", b ?: "");
}

/* The same entry: the same address, or for groups without one the same
 * name, and the same options. */
static bool listen_entry_same(const Config *a, size_t i, const Config *b, size_t j) {
        const ListenOptions *x = &a->listen_opts[i], *y = &b->listen_opts[j];

        if (x->has_address != y->has_address)
                return false;
        if (x->has_address &&
            !(addr_same(&a->listen[i], &b->listen[j]) && a->listen[i].any == b->listen[j].any))
                return false;
        if (!str_same(x->name, y->name) || x->protocol != y->protocol || x->tls != y->tls ||
            x->role != y->role || x->history != y->history || x->n_origins != y->n_origins)
                return false;
        for (size_t k = 0; k < x->n_origins; k++)
                if (!str_same(x->origins[k], y->origins[k]))
                        return false;
        return true;
}

bool config_listen_equal(const Config *a, const Config *b) {
        if (!a || !b)
                return a == b;
        if (a->n_listen != b->n_listen)
                return false;
        /* As sets: the order of 'listen' does not change what is bound.
         * Duplicate addresses and names are refused at load time. */
        for (size_t i = 0; i < a->n_listen; i++) {
                bool found = false;
                for (size_t j = 0; j < b->n_listen && !found; j++)
                        found = listen_entry_same(a, i, b, j);
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
 * ']'), and each element of the 'origins' of a group in 'listen'. Found by a
 * light scan of the very bytes libconfig parsed without error, so only valid
 * syntax needs to be understood. (The named settings inside groups get
 * their right line from libconfig.) */

/* An integer literal without an L suffix that libconfig 1.5 truncated to
 * int, remembered for the root setting whose value it is in (for the 'tls'
 * group: for its key). */
typedef struct IntOverflow {
        bool seen;
        char text[32];
} IntOverflow;

/* The 'origins' elements whose lines are kept, per 'listen' element; the
 * line of any further one is libconfig's. */
#define SCAN_ORIGINS_MAX 32

typedef struct SourceFacts {
        IntOverflow overflow[N_SLOTS];
        unsigned listen_lines[CONFIG_LISTEN_MAX]; /* 0: not known */
        unsigned origin_lines[CONFIG_LISTEN_MAX][SCAN_ORIGINS_MAX];
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
        int tls_key = -1;          /* in 'tls': the key being read */
        /* In 'listen': looking for the start of an element; in a group
         * element; in its 'origins' (depth 2), looking for the start of one
         * of those. */
        bool want_element = false, in_group = false, in_origins = false, want_origin = false;
        size_t element = 0, origin = 0;
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

                /* The first token of each element of 'listen', and of each
                 * 'origins' element of the groups in it. */
                if (current == KEY_LISTEN && !closer) {
                        if (want_element && depth == 1) {
                                if (element < CONFIG_LISTEN_MAX)
                                        ret->listen_lines[element] = s.line;
                                element++;
                                want_element = false;
                        } else if (want_origin && depth == 3) {
                                if (element - 1 < CONFIG_LISTEN_MAX && origin < SCAN_ORIGINS_MAX)
                                        ret->origin_lines[element - 1][origin] = s.line;
                                origin++;
                                want_origin = false;
                        }
                }

                if (c == '"')
                        skip_string(&s);
                else if (is_name_start(c)) {
                        const char *name = s.p;
                        size_t n;
                        Scanner peek;

                        while (s.p < s.end && is_name_char(*s.p))
                                s.p++;
                        n = (size_t)(s.p - name);
                        peek = s;
                        skip_blanks_and_comments(&peek);
                        if (peek.p < peek.end && (*peek.p == '=' || *peek.p == ':')) {
                                if (depth == 0) {
                                        current = key_from_name(name, n);
                                        tls_key = -1;
                                } else if (depth == 1 && current == KEY_TLS)
                                        tls_key = tls_key_from_name(name, n);
                                else if (depth == 2 && current == KEY_LISTEN && in_group)
                                        in_origins =
                                                n == strlen("origins") && memcmp(name, "origins", n) == 0;
                        }
                } else if (is_digit(c) || c == '.' ||
                           ((c == '-' || c == '+') && s.p + 1 < s.end &&
                            (is_digit(s.p[1]) || s.p[1] == '.'))) {
                        const char *lit = s.p;
                        int slot = current == KEY_TLS && depth >= 1 && tls_key >= 0 ? TLS_SLOT(tls_key)
                                                                                    : (int)current;
                        bool overflow;

                        scan_number(&s, &overflow);
                        if (overflow && slot >= 0 && !ret->overflow[slot].seen) {
                                IntOverflow *o = &ret->overflow[slot];
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
                                if (current == KEY_LISTEN) {
                                        if (depth == 0) {
                                                want_element = true;
                                                element = 0;
                                        } else if (depth == 1) {
                                                in_group = c == '{';
                                                in_origins = false;
                                        } else if (depth == 2 && in_group && in_origins && c != '{') {
                                                want_origin = true;
                                                origin = 0;
                                        }
                                }
                                depth++;
                        } else if (closer)
                                depth--;
                        else if (c == ',' && current == KEY_LISTEN) {
                                if (depth == 1)
                                        want_element = true;
                                else if (depth == 3 && in_group && in_origins)
                                        want_origin = true;
                        }
                        s.p++;
                }
        }
}

/* ---- Loading ------------------------------------------------------------ */

typedef struct LoadContext {
        const char *path; /* the file as the caller named it */
        const char *dir;  /* its directory: the @include directory */
        char *abs_dir;    /* the same made absolute, once needed */
        char *errbuf;
        size_t errlen;
        SourceFacts facts; /* of 'path' itself */
        /* For the checks across settings, made once all are read. */
        const config_setting_t *listen_tls[CONFIG_LISTEN_MAX]; /* the 'tls' key of each group */
        const config_setting_t *tls_group, *tls_keys[N_TLS_KEYS];
} LoadContext;

/* What an error message is about: "setting 'NAME': WHAT...". */
typedef struct Subject {
        const char *name; /* "max_clients", "listen", "tls.ciphers" */
        int slot;         /* where scan_source() files its int literals */
        const char *what; /* said first: "" or "element 2: key 'tls': " */
        unsigned line;    /* 0: libconfig's line of the setting */
} Subject;

#define ROOT(k) (&(Subject){.name = key_names[k], .slot = (int)(k), .what = ""})
#define TLS_KEY(k) (&(Subject){.name = tls_key_names[k], .slot = TLS_SLOT(k), .what = ""})

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

/* "FILE:LINE: setting 'NAME': WHAT..." for a setting, one of its elements
 * or one of its keys; the file is that of 'where'. */
_printf_(4, 0) static int subject_verror(LoadContext *ctx, const config_setting_t *where, const Subject *sub,
                                         const char *fmt, va_list ap) {
        char msg[512];

        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        return load_error(ctx, -EINVAL, "%s:%u: setting '%s': %s%s",
                          SOURCE_PATH(ctx, config_setting_source_file(where)),
                          sub->line ?: (unsigned)config_setting_source_line(where), sub->name, sub->what,
                          msg);
}

_printf_(4, 5) static int subject_error(LoadContext *ctx, const config_setting_t *where, const Subject *sub,
                                        const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = subject_verror(ctx, where, sub, fmt, ap);
        va_end(ap);
        return r;
}

_printf_(4, 5) static int setting_error(LoadContext *ctx, const config_setting_t *where, Key key,
                                        const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = subject_verror(ctx, where, ROOT(key), fmt, ap);
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

static int type_error(LoadContext *ctx, const config_setting_t *s, const Subject *sub,
                      const char *expected) {
        return subject_error(ctx, s, sub, "expected %s, got %s", expected,
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
static int source_facts(LoadContext *ctx, const config_setting_t *s, const Subject *sub, SourceFacts *ret) {
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
                return subject_error(ctx, s, sub, "cannot read %s again: %s", path, strerror(-r));
        scan_source(text, len, ret);
        return 0;
}

static int load_int(LoadContext *ctx, const config_setting_t *s, const Subject *sub, long long min,
                    long long max, long long *ret) {
        SourceFacts facts = {};
        long long v;
        int r;

        switch (config_setting_type(s)) {
        case CONFIG_TYPE_INT:
                r = source_facts(ctx, s, sub, &facts);
                if (r < 0)
                        return r;
                if (facts.overflow[sub->slot].seen)
                        return subject_error(ctx, s, sub, "%s is out of range %lld..%lld",
                                             facts.overflow[sub->slot].text, min, max);
                v = config_setting_get_int(s);
                break;
        case CONFIG_TYPE_INT64:
                v = config_setting_get_int64(s);
                break;
        default:
                return type_error(ctx, s, sub, "an integer");
        }

        if (v < min || v > max)
                return subject_error(ctx, s, sub, "%lld is out of range %lld..%lld", v, min, max);

        *ret = v;
        return 0;
}

static int load_bool(LoadContext *ctx, const config_setting_t *s, const Subject *sub, bool *ret) {
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return type_error(ctx, s, sub, "a boolean (true or false)");
        *ret = config_setting_get_bool(s);
        return 0;
}

/* A string that must be one of 'names'; returns its index. */
static int load_enum(LoadContext *ctx, const config_setting_t *s, const Subject *sub,
                     const char *const *names, size_t n_names, size_t *ret) {
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
                return subject_error(ctx, s, sub, "expected a string (%s), got %s", allowed,
                                     type_name(config_setting_type(s)));
        return subject_error(ctx, s, sub, "%s is not one of %s", QUOTE(config_setting_get_string(s)),
                             allowed);
}

static int load_prefix(LoadContext *ctx, const config_setting_t *s, Config *c) {
        const char *v;
        size_t len, off;
        char *copy;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return type_error(ctx, s, ROOT(KEY_PREFIX), "a string");

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
                                     "unknown directive '%%%s' at offset %zu; use %%a, %%i, %%u or %%%%",
                                     escape_byte((unsigned char)v[off + 1], tmp), off);
        }

        copy = strdup(v);
        if (!copy)
                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        free(c->prefix);
        c->prefix = copy;
        return 0;
}

/* ---- listen and tls ------------------------------------------------------ */

/* One address of 'listen', a string or a group's 'address'. */
static int parse_address(LoadContext *ctx, const config_setting_t *where, const Subject *sub, const char *v,
                         SockAddr *ret) {
        if (addr_parse(v, ret) >= 0)
                return 0;
        if (v[0] == '/')
                return subject_error(ctx, where, sub, "%s: a Unix socket path is at most %zu bytes",
                                     QUOTE(v), sizeof(ret->un.sun_path) - 1);
        return subject_error(ctx, where, sub,
                             "%s is not an address: expected a.b.c.d:port, [v6]:port, *:port or an absolute "
                             "path, port 1..65535",
                             QUOTE(v));
}

/* What systemd accepts as FileDescriptorName=. */
static bool socket_name_valid(const char *v) {
        size_t len = strlen(v);

        if (len < 1 || len > CONFIG_NAME_MAX)
                return false;
        for (; *v; v++)
                if (*v <= ' ' || *v >= 0x7f || *v == ':')
                        return false;
        return true;
}

static int load_string(LoadContext *ctx, const config_setting_t *s, const Subject *sub, char **ret) {
        char *copy;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return type_error(ctx, s, sub, "a string");
        copy = strdup(config_setting_get_string(s));
        if (!copy)
                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        free(*ret);
        *ret = copy;
        return 0;
}

/* A group's 'origins': an array (or list) of strings, each non-empty and
 * without whitespace. 'element' is the group's index in 'listen'. */
static int load_origins(LoadContext *ctx, const config_setting_t *s, const Subject *sub, int element,
                        const SourceFacts *facts, ListenOptions *o) {
        int type = config_setting_type(s), n;

        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
                return type_error(ctx, s, sub, "an array of strings");

        n = config_setting_length(s);
        if (n > 0) {
                o->origins = calloc((size_t)n, sizeof(char *));
                if (!o->origins)
                        return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        }
        for (int m = 0; m < n; m++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned)m);
                char what[400];
                Subject es = *sub;
                const char *v;

                (void)snprintf(what, sizeof(what), "%selement %d: ", sub->what, m + 1);
                es.what = what;
                es.line = m < SCAN_ORIGINS_MAX ? facts->origin_lines[element][m] : 0;

                if (config_setting_type(e) != CONFIG_TYPE_STRING)
                        return type_error(ctx, e, &es, "a string");
                v = config_setting_get_string(e);
                if (!v[0])
                        return subject_error(ctx, e, &es, "an origin cannot be empty");
                if (strpbrk(v, " \t\n\r\f\v"))
                        return subject_error(ctx, e, &es, "%s contains whitespace", QUOTE(v));
                o->origins[m] = strdup(v);
                if (!o->origins[m])
                        return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
                o->n_origins++;
        }
        return 0;
}

/* A group in 'listen', its element 'i' (and slot i of c's arrays); the keys
 * it has go to 'keys' for the messages about the entry as a whole. */
static int load_listen_group(LoadContext *ctx, const config_setting_t *e, int i, const SourceFacts *facts,
                             Config *c, const config_setting_t *keys[static N_LISTEN_KEYS]) {
        ListenOptions *o = &c->listen_opts[i];
        int n = config_setting_length(e), r;
        char what[320];
        Subject sub = {.name = key_names[KEY_LISTEN], .slot = KEY_LISTEN, .what = what};
        size_t idx = 0;

        if (listen_options_default(o) < 0)
                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        o->has_address = false;

        for (int k = 0; k < n; k++) {
                const config_setting_t *ks = config_setting_get_elem(e, (unsigned)k);
                const char *name = config_setting_name(ks), *v;
                int lk = name_index(listen_key_names, N_LISTEN_KEYS, name, strlen(name));

                (void)snprintf(what, sizeof(what), "element %d: key '%s': ", i + 1, name);
                if (lk < 0)
                        return subject_error(ctx, ks, &sub,
                                             "unknown (the keys are address, name, protocol, tls, role, "
                                             "origins and history)");
                keys[lk] = ks;

                switch ((ListenKey)lk) {
                case LISTEN_KEY_ADDRESS:
                        if (config_setting_type(ks) != CONFIG_TYPE_STRING)
                                return type_error(ctx, ks, &sub, "a string");
                        v = config_setting_get_string(ks);
                        r = parse_address(ctx, ks, &sub, v, &c->listen[i]);
                        if (r < 0)
                                return r;
                        r = load_string(ctx, ks, &sub, &c->listen_str[i]);
                        if (r < 0)
                                return r;
                        o->has_address = true;
                        break;
                case LISTEN_KEY_NAME:
                        if (config_setting_type(ks) != CONFIG_TYPE_STRING)
                                return type_error(ctx, ks, &sub, "a string");
                        v = config_setting_get_string(ks);
                        if (!socket_name_valid(v))
                                return subject_error(ctx, ks, &sub,
                                                     "%s is not a socket name: 1 to %d printable ASCII "
                                                     "characters, no ':' or whitespace",
                                                     QUOTE(v), CONFIG_NAME_MAX);
                        r = load_string(ctx, ks, &sub, &o->name);
                        if (r < 0)
                                return r;
                        break;
                case LISTEN_KEY_PROTOCOL:
                        r = load_enum(ctx, ks, &sub, protocol_names, ARRAY_SIZE(protocol_names), &idx);
                        if (r < 0)
                                return r;
                        o->protocol = (ListenProtocol)idx;
                        break;
                case LISTEN_KEY_TLS:
                        r = load_bool(ctx, ks, &sub, &o->tls);
                        if (r < 0)
                                return r;
                        ctx->listen_tls[i] = ks;
                        break;
                case LISTEN_KEY_ROLE:
                        r = load_enum(ctx, ks, &sub, role_names, ARRAY_SIZE(role_names), &idx);
                        if (r < 0)
                                return r;
                        o->role = (ListenRole)idx;
                        break;
                case LISTEN_KEY_ORIGINS:
                        r = load_origins(ctx, ks, &sub, i, facts, o);
                        if (r < 0)
                                return r;
                        break;
                case LISTEN_KEY_HISTORY:
                        r = load_bool(ctx, ks, &sub, &o->history);
                        if (r < 0)
                                return r;
                        break;
                case N_LISTEN_KEYS:
                        break;
                }
        }

        if (!keys[LISTEN_KEY_ADDRESS] && !keys[LISTEN_KEY_NAME]) {
                (void)snprintf(what, sizeof(what), "element %d: ", i + 1);
                sub.line = facts->listen_lines[i];
                return subject_error(ctx, e, &sub,
                                     "a group needs an 'address' (or a 'name', for a socket passed by "
                                     "systemd)");
        }
        if (keys[LISTEN_KEY_ORIGINS] && o->protocol != LISTEN_PROTOCOL_WEBSOCKET) {
                (void)snprintf(what, sizeof(what), "element %d: key 'origins': ", i + 1);
                return subject_error(ctx, keys[LISTEN_KEY_ORIGINS], &sub,
                                     "only a listener with protocol \"websocket\" has origins");
        }
        if (keys[LISTEN_KEY_ROLE] && o->protocol == LISTEN_PROTOCOL_METRICS) {
                (void)snprintf(what, sizeof(what), "element %d: key 'role': ", i + 1);
                return subject_error(ctx, keys[LISTEN_KEY_ROLE], &sub,
                                     "a metrics listener neither sends nor receives messages");
        }
        if (!o->has_address) {
                c->listen_str[i] = strdup("");
                if (!c->listen_str[i])
                        return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        }
        return 0;
}

static int load_listen(LoadContext *ctx, const config_setting_t *s, Config *c) {
        int type = config_setting_type(s), n, r;
        SourceFacts facts;

        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
                return type_error(ctx, s, ROOT(KEY_LISTEN), "an array or list of strings and groups");

        n = config_setting_length(s);
        if (n < 1 || n > CONFIG_LISTEN_MAX)
                return setting_error(ctx, s, KEY_LISTEN, "%d entries given, expected 1..%d", n,
                                     CONFIG_LISTEN_MAX);

        r = source_facts(ctx, s, ROOT(KEY_LISTEN), &facts);
        if (r < 0)
                return r;

        for (size_t i = 0; i < CONFIG_LISTEN_MAX; i++) {
                c->listen_str[i] = mfree(c->listen_str[i]);
                listen_options_clear(&c->listen_opts[i]);
                ctx->listen_tls[i] = NULL;
        }
        c->n_listen = 0;
        c->listen_is_default = false;

        /* Element i goes to slot i. */
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned)i), *where = e;
                const config_setting_t *keys[N_LISTEN_KEYS] = {};
                const ListenOptions *o = &c->listen_opts[i];
                char what[64] = "";
                Subject sub = {.name = key_names[KEY_LISTEN],
                               .slot = KEY_LISTEN,
                               .what = what,
                               .line = facts.listen_lines[i]};
                const char *v;

                switch (config_setting_type(e)) {
                case CONFIG_TYPE_STRING:
                        v = config_setting_get_string(e);
                        r = parse_address(ctx, e, &sub, v, &c->listen[i]);
                        if (r < 0)
                                return r;
                        c->listen_str[i] = strdup(v);
                        if (!c->listen_str[i] || listen_options_default(&c->listen_opts[i]) < 0)
                                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
                        break;
                case CONFIG_TYPE_GROUP:
                        r = load_listen_group(ctx, e, i, &facts, c, keys);
                        if (r < 0)
                                return r;
                        if (keys[LISTEN_KEY_ADDRESS]) {
                                where = keys[LISTEN_KEY_ADDRESS];
                                (void)snprintf(what, sizeof(what), "element %d: key 'address': ", i + 1);
                                sub.line = 0;
                        }
                        break;
                default:
                        (void)snprintf(what, sizeof(what), "element %d: ", i + 1);
                        return subject_error(ctx, e, &sub, "expected a string or a group, got %s",
                                             type_name(config_setting_type(e)));
                }
                v = c->listen_str[i];

                for (int j = 0; j < i && o->has_address; j++) {
                        if (!c->listen_opts[j].has_address)
                                continue;
                        if (addr_same(&c->listen[i], &c->listen[j])) {
                                if (streq(v, c->listen_str[j]))
                                        return subject_error(ctx, where, &sub, "%s is listed twice",
                                                             QUOTE(v));
                                return subject_error(ctx, where, &sub, "%s is the same address as %s",
                                                     QUOTE(v), QUOTE(c->listen_str[j]));
                        }
                        if (addr_overlap(&c->listen[i], &c->listen[j]))
                                return subject_error(ctx, where, &sub,
                                                     "%s overlaps %s: a wildcard address and another "
                                                     "address it covers cannot both listen on port %u",
                                                     QUOTE(v), QUOTE(c->listen_str[j]),
                                                     (unsigned)addr_port(&c->listen[i]));
                }

                for (int j = 0; j < i && o->name[0]; j++)
                        if (streq(o->name, c->listen_opts[j].name)) {
                                (void)snprintf(what, sizeof(what), "element %d: key 'name': ", i + 1);
                                sub.line = 0;
                                return subject_error(ctx, keys[LISTEN_KEY_NAME], &sub,
                                                     "%s is the name of element %d too", QUOTE(o->name),
                                                     j + 1);
                        }

                c->n_listen++;
        }

        return 0;
}

/* A file name as the daemon opens it: a relative one is made absolute
 * against the directory of the configuration file (the @include
 * directory). "" stays "" (not given). */
static int load_path(LoadContext *ctx, const config_setting_t *s, const Subject *sub, char **ret) {
        const char *v;
        char *p = NULL;
        size_t n;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return type_error(ctx, s, sub, "a string");
        v = config_setting_get_string(s);
        if (!v[0] || v[0] == '/')
                return load_string(ctx, s, sub, ret);

        if (!ctx->abs_dir) {
                char cwd[PATH_MAX];

                if (ctx->dir[0] == '/')
                        ctx->abs_dir = strdup(ctx->dir);
                else if (!getcwd(cwd, sizeof(cwd)))
                        return subject_error(ctx, s, sub, "cannot make %s absolute: %s", QUOTE(v),
                                             strerror(errno));
                else if (streq(ctx->dir, "."))
                        ctx->abs_dir = strdup(cwd);
                else if (asprintf(&ctx->abs_dir, "%s%s%s", cwd, streq(cwd, "/") ? "" : "/", ctx->dir) < 0)
                        ctx->abs_dir = NULL;
                if (!ctx->abs_dir)
                        return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        }
        n = strlen(ctx->abs_dir);
        if (asprintf(&p, "%s%s%s", ctx->abs_dir, n > 0 && ctx->abs_dir[n - 1] == '/' ? "" : "/", v) < 0)
                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        free(*ret);
        *ret = p;
        return 0;
}

static int load_tls(LoadContext *ctx, const config_setting_t *s, Config *c) {
        TlsConfig *t = &c->tls;
        long long v = 0;
        size_t idx = 0;
        char *source;
        int n, r = 0;

        if (config_setting_type(s) != CONFIG_TYPE_GROUP)
                return type_error(ctx, s, ROOT(KEY_TLS), "a group");
        ctx->tls_group = s;

        n = config_setting_length(s);
        for (int k = 0; k < n; k++) {
                const config_setting_t *ks = config_setting_get_elem(s, (unsigned)k);
                const char *name = config_setting_name(ks);
                unsigned line = (unsigned)config_setting_source_line(ks);
                int tk = tls_key_from_name(name, strlen(name));

                if (tk < 0)
                        return load_error(ctx, -EINVAL, "%s:%u: unknown setting 'tls.%s'",
                                          SOURCE_PATH(ctx, config_setting_source_file(ks)), line, name);
                ctx->tls_keys[tk] = ks;

                switch ((TlsKey)tk) {
                case TLS_KEY_CERT_FILE:
                        r = load_path(ctx, ks, TLS_KEY(tk), &t->cert_file);
                        t->cert_file_line = line;
                        break;
                case TLS_KEY_KEY_FILE:
                        r = load_path(ctx, ks, TLS_KEY(tk), &t->key_file);
                        t->key_file_line = line;
                        break;
                case TLS_KEY_CA_FILE:
                        r = load_path(ctx, ks, TLS_KEY(tk), &t->ca_file);
                        t->ca_file_line = line;
                        break;
                case TLS_KEY_CLIENT_AUTH:
                        r = load_enum(ctx, ks, TLS_KEY(tk), client_auth_names, ARRAY_SIZE(client_auth_names),
                                      &idx);
                        t->client_auth = (TlsClientAuth)idx;
                        break;
                case TLS_KEY_MIN_VERSION:
                        r = load_enum(ctx, ks, TLS_KEY(tk), tls_version_names, ARRAY_SIZE(tls_version_names),
                                      &idx);
                        t->min_version = (TlsVersion)idx;
                        break;
                case TLS_KEY_CIPHERS:
                        r = load_string(ctx, ks, TLS_KEY(tk), &t->ciphers);
                        t->ciphers_line = line;
                        break;
                case TLS_KEY_CIPHERSUITES:
                        r = load_string(ctx, ks, TLS_KEY(tk), &t->ciphersuites);
                        t->ciphersuites_line = line;
                        break;
                case TLS_KEY_HANDSHAKE_TIMEOUT:
                        r = load_int(ctx, ks, TLS_KEY(tk), CONFIG_HANDSHAKE_TIMEOUT_MIN,
                                     CONFIG_HANDSHAKE_TIMEOUT_MAX, &v);
                        t->handshake_timeout = (uint32_t)v;
                        break;
                case N_TLS_KEYS:
                        break;
                }
                if (r < 0)
                        return r;
        }

        source = strdup(SOURCE_PATH(ctx, config_setting_source_file(s)));
        if (!source)
                return load_error(ctx, -ENOMEM, "%s: out of memory", ctx->path);
        free(t->source);
        t->source = source;
        t->line = (unsigned)config_setting_source_line(s);
        t->present = true;
        return 0;
}

/* What needs more than one setting: a listener with TLS needs a
 * certificate and its key; a client certificate is checked against
 * ca_file. Whether the files are usable is checked where they are opened. */
static int check_tls(LoadContext *ctx, const Config *c) {
        const TlsConfig *t = &c->tls;

        for (size_t i = 0; i < c->n_listen; i++) {
                char what[64];

                if (!c->listen_opts[i].tls)
                        continue;
                if (!t->present) {
                        (void)snprintf(what, sizeof(what), "element %zu: key 'tls': ", i + 1);
                        return subject_error(
                                ctx, ctx->listen_tls[i],
                                &(Subject){.name = key_names[KEY_LISTEN], .slot = KEY_LISTEN, .what = what},
                                "true needs a 'tls' group with cert_file and key_file");
                }
                if (!t->cert_file[0])
                        return subject_error(ctx, ctx->tls_keys[TLS_KEY_CERT_FILE] ?: ctx->tls_group,
                                             TLS_KEY(TLS_KEY_CERT_FILE),
                                             "not set, and element %zu of 'listen' has tls = true", i + 1);
                if (!t->key_file[0])
                        return subject_error(ctx, ctx->tls_keys[TLS_KEY_KEY_FILE] ?: ctx->tls_group,
                                             TLS_KEY(TLS_KEY_KEY_FILE),
                                             "not set, and element %zu of 'listen' has tls = true", i + 1);
                break;
        }

        if (t->present && t->client_auth != TLS_CLIENT_AUTH_NONE && !t->ca_file[0])
                return subject_error(ctx, ctx->tls_keys[TLS_KEY_CLIENT_AUTH], TLS_KEY(TLS_KEY_CLIENT_AUTH),
                                     "\"%s\" needs ca_file, the CAs whose client certificates are accepted",
                                     client_auth_names[t->client_auth]);
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
                r = load_int(ctx, s, ROOT(key), CONFIG_MAX_CLIENTS_MIN, CONFIG_MAX_CLIENTS_MAX, &v);
                if (r >= 0)
                        c->max_clients = (uint32_t)v;
                return r;
        case KEY_MAX_MESSAGE_BYTES:
                r = load_int(ctx, s, ROOT(key), CONFIG_MAX_MESSAGE_MIN, CONFIG_MAX_MESSAGE_MAX, &v);
                if (r >= 0)
                        c->max_message_bytes = (uint32_t)v;
                return r;
        case KEY_MAX_QUEUE_BYTES:
                r = load_int(ctx, s, ROOT(key), CONFIG_MAX_QUEUE_MIN, CONFIG_MAX_QUEUE_MAX, &v);
                if (r >= 0)
                        c->max_queue_bytes = (uint64_t)v;
                return r;
        case KEY_SLOW_CLIENT:
                r = load_enum(ctx, s, ROOT(key), slow_client_names, ARRAY_SIZE(slow_client_names), &idx);
                if (r >= 0)
                        c->slow_client = (SlowClientPolicy)idx;
                return r;
        case KEY_ECHO:
                return load_bool(ctx, s, ROOT(key), &c->echo);
        case KEY_PREFIX:
                return load_prefix(ctx, s, c);
        case KEY_TCP_KEEPALIVE:
                r = load_int(ctx, s, ROOT(key), 0, CONFIG_KEEPALIVE_MAX, &v);
                if (r >= 0)
                        c->tcp_keepalive = (uint32_t)v;
                return r;
        case KEY_SHUTDOWN_TIMEOUT:
                r = load_int(ctx, s, ROOT(key), 0, CONFIG_SHUTDOWN_TIMEOUT_MAX, &v);
                if (r >= 0)
                        c->shutdown_timeout = (uint32_t)v;
                return r;
        case KEY_MAX_PARTIAL_BYTES:
                r = load_int(ctx, s, ROOT(key), CONFIG_MAX_MESSAGE_MIN, CONFIG_MAX_PARTIAL_MAX, &v);
                if (r >= 0)
                        c->max_partial_bytes = (uint64_t)v;
                return r;
        case KEY_PARTIAL_TIMEOUT:
                r = load_int(ctx, s, ROOT(key), 0, CONFIG_PARTIAL_TIMEOUT_MAX, &v);
                if (r >= 0)
                        c->partial_timeout = (uint32_t)v;
                return r;
        case KEY_PING_INTERVAL:
                r = load_int(ctx, s, ROOT(key), 0, CONFIG_PING_INTERVAL_MAX, &v);
                if (r >= 0)
                        c->ping_interval = (uint32_t)v;
                return r;
        case KEY_REQUEST_TIMEOUT:
                r = load_int(ctx, s, ROOT(key), CONFIG_REQUEST_TIMEOUT_MIN, CONFIG_REQUEST_TIMEOUT_MAX, &v);
                if (r >= 0)
                        c->request_timeout = (uint32_t)v;
                return r;
        case KEY_LOG_LEVEL:
                r = load_enum(ctx, s, ROOT(key), log_level_names, ARRAY_SIZE(log_level_names), &idx);
                if (r >= 0)
                        c->log_level = (LogLevel)(LOG_LEVEL_ERROR + (int)idx);
                return r;
        case KEY_TLS:
                return load_tls(ctx, s, c);
        case N_KEYS:
        case KEY_INVALID:
                break;
        }
        return -EINVAL;
}

static void config_destroyp(config_t *lc) {
        config_destroy(lc);
}

static void load_context_done(LoadContext *ctx) {
        free(ctx->abs_dir);
}

int config_load(const char *path, bool must_exist, Config **ret, bool *ret_used_defaults, char *errbuf,
                size_t errlen) {
        _cleanup_(load_context_done) LoadContext ctx = {.path = path, .errbuf = errbuf, .errlen = errlen};
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

        r = check_tls(&ctx, c);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        if (ret_used_defaults)
                *ret_used_defaults = false;
        return 0;
}

/* ---- Printing ----------------------------------------------------------- */

static void fput_setting_string(const char *name, const char *v, const char *end, FILE *f) {
        (void)fprintf(f, "%s = ", name);
        fput_quoted(v ?: "", f);
        (void)fputs(end, f);
}

/* An entry of 'listen': the address alone when it has the options of a
 * string entry, else a group with every key that applies. */
static void print_listen_entry(const Config *c, size_t i, FILE *f) {
        const ListenOptions *o = &c->listen_opts[i];
        const char *s, *addr = c->listen_str[i];
        char buf[ADDR_STR_MAX];

        if (!addr) {
                addr_format_listen(&c->listen[i], buf, sizeof(buf));
                addr = buf;
        }
        if (listen_options_plain(o)) {
                fput_quoted(addr, f);
                return;
        }

        (void)fputs("{ ", f);
        if (o->has_address)
                fput_setting_string("address", addr, "; ", f);
        if (o->name && o->name[0])
                fput_setting_string("name", o->name, "; ", f);
        s = listen_protocol_to_string(o->protocol);
        (void)fprintf(f, "protocol = \"%s\"; tls = %s; ", s ?: "invalid", o->tls ? "true" : "false");
        s = listen_role_to_string(o->role);
        if (o->protocol != LISTEN_PROTOCOL_METRICS)
                (void)fprintf(f, "role = \"%s\"; ", s ?: "invalid");
        if (o->protocol == LISTEN_PROTOCOL_WEBSOCKET) {
                (void)fputs("origins = [", f);
                for (size_t k = 0; k < o->n_origins; k++) {
                        (void)fputs(k > 0 ? ", " : " ", f);
                        fput_quoted(o->origins[k], f);
                }
                (void)fputs(o->n_origins > 0 ? " ]; " : "]; ", f);
        }
        (void)fprintf(f, "history = %s; }", o->history ? "true" : "false");
}

static void print_tls(const TlsConfig *t, FILE *f) {
        const char *s;

        (void)fputs("tls = {\n", f);
        fput_setting_string("  cert_file", t->cert_file, ";\n", f);
        fput_setting_string("  key_file", t->key_file, ";\n", f);
        fput_setting_string("  ca_file", t->ca_file, ";\n", f);
        s = tls_client_auth_to_string(t->client_auth);
        (void)fprintf(f, "  client_auth = \"%s\";\n", s ?: "invalid");
        s = tls_version_to_string(t->min_version);
        (void)fprintf(f, "  min_version = \"%s\";\n", s ?: "invalid");
        fput_setting_string("  ciphers", t->ciphers, ";\n", f);
        fput_setting_string("  ciphersuites", t->ciphersuites, ";\n", f);
        (void)fprintf(f, "  handshake_timeout = %" PRIu32 ";\n", t->handshake_timeout);
        (void)fputs("};\n", f);
}

/* A write error stays on 'f' (ferror): the caller checks it once at the end. */
void config_print(const Config *c, FILE *f) {
        const char *remark = c->listen_is_default ? " # built-in default" : "";
        bool plain = true;
        const char *s;

        (void)fputs("# epoll-broadcaster: effective settings (libconfig syntax)\n", f);

        /* Addresses alone on one line, as an array; with any group, a list
         * of one entry per line. */
        for (size_t i = 0; i < c->n_listen; i++)
                plain = plain && listen_options_plain(&c->listen_opts[i]);
        if (plain) {
                (void)fputs("listen = [ ", f);
                for (size_t i = 0; i < c->n_listen; i++) {
                        if (i > 0)
                                (void)fputs(", ", f);
                        print_listen_entry(c, i, f);
                }
                (void)fprintf(f, " ];%s\n", remark);
        } else {
                (void)fputs("listen = (\n", f);
                for (size_t i = 0; i < c->n_listen; i++) {
                        (void)fputs("  ", f);
                        print_listen_entry(c, i, f);
                        (void)fputs(i + 1 < c->n_listen ? ",\n" : "\n", f);
                }
                (void)fprintf(f, ");%s\n", remark);
        }

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
        (void)fprintf(f, "ping_interval = %" PRIu32 ";\n", c->ping_interval);
        (void)fprintf(f, "request_timeout = %" PRIu32 ";\n", c->request_timeout);
        s = log_level_to_string(c->log_level);
        (void)fprintf(f, "log_level = \"%s\";\n", s ?: "invalid");
        if (c->tls.present)
                print_tls(&c->tls, f);
}
