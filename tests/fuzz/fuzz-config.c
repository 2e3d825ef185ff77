/* Fuzz target: the configuration loader (src/config.h) on arbitrary files.
 *
 * Property: config_load() either fails with one line in the error buffer
 * that names the file (or the file it included), or returns a Config whose
 * every setting is within its documented range and whose settings agree
 * with each other (a TLS listener has a certificate and key, names are
 * unique, tls paths are absolute); config_print() of that Config is a file
 * that loads back to the same settings, 'listen' entries and the tls group
 * included. Never a crash, an exit or a leak (LeakSanitizer).
 *
 * Input: the file; after a NUL byte (which no configuration file may hold),
 * the content of a second file, inc.conf, next to it for @include. An
 * @include line naming a path with a '/' is not tried: it could reach any
 * file on the machine (devices, /proc), and what is tried here, every name
 * in the file's own directory, exercises the same code. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static char dir[PATH_MAX];
static char main_path[PATH_MAX + 16], inc_path[PATH_MAX + 16], print_path[PATH_MAX + 16];

/* libconfig 1.5's parser drops a string token it was holding when it meets
 * a syntax error (e.g. 'z "a"') without freeing it: a leak of at most the
 * file's size per failed load, inside libconfig, which config.c cannot
 * free. Only the scanner's two allocation sites of token strings (the empty
 * string comes straight from the scanner) are suppressed, so a config_t or
 * Config that config.c fails to free is still reported. What they leak
 * still adds up: a long run's RSS grows (some 400 MB in 5 minutes). */
/* NOLINTNEXTLINE(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp): LeakSanitizer's hook */
const char *__lsan_default_suppressions(void);

/* NOLINTNEXTLINE(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp): LeakSanitizer's hook */
const char *__lsan_default_suppressions(void) {
        return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static void remove_dir(void) {
        unlink(main_path);
        unlink(inc_path);
        unlink(print_path);
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_) {
        /* A crash skips atexit(): tests/fuzz/run points TMPDIR at what it
         * removes anyway. */
        const char *tmp = getenv("TMPDIR");
        (void)snprintf(dir, sizeof(dir), "%s/fuzz-config.XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
        if (!mkdtemp(dir))
                abort();
        (void)snprintf(main_path, sizeof(main_path), "%s/main.conf", dir);
        (void)snprintf(inc_path, sizeof(inc_path), "%s/inc.conf", dir);
        (void)snprintf(print_path, sizeof(print_path), "%s/print.conf", dir);
        if (atexit(remove_dir) != 0)
                abort();
        return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) < 0)
                abort();
}

static bool includes_a_path(const uint8_t *p, size_t n) {
        static const char directive[] = "@include";
        for (const uint8_t *end = p + n; (p = memmem(p, (size_t)(end - p), directive, strlen(directive)));) {
                p += strlen(directive);
                const uint8_t *eol = memchr(p, '\n', (size_t)(end - p)) ?: end;
                if (memchr(p, '/', (size_t)(eol - p)))
                        return true;
        }
        return false;
}

static bool is_path(const char *p) {
        return p && (p[0] == '\0' || p[0] == '/');
}

static void check_listen_options(const Config *c, size_t i) {
        const ListenOptions *o = &c->listen_opts[i];

        if (!o->name || strlen(o->name) > 255 || strpbrk(o->name, ": \t\n") ||
            !listen_protocol_to_string(o->protocol) || !listen_role_to_string(o->role) ||
            (o->n_origins > 0 && o->protocol != LISTEN_PROTOCOL_WEBSOCKET) ||
            (o->n_origins > 0) != !!o->origins)
                abort();
        /* A name-only group has a name and an empty address string. */
        if (!o->has_address && (!o->name[0] || c->listen_str[i][0]))
                abort();
        /* A listener with TLS has a certificate and key to use. */
        if (o->tls && (!c->tls.present || !c->tls.cert_file[0] || !c->tls.key_file[0]))
                abort();
        for (size_t j = 0; j < i; j++)
                if (o->name[0] && strcmp(o->name, c->listen_opts[j].name) == 0)
                        abort();
}

static void check_tls(const TlsConfig *t) {
        if (!is_path(t->cert_file) || !is_path(t->key_file) || !is_path(t->ca_file) || !t->ciphers ||
            !t->ciphersuites || !t->source || !tls_client_auth_to_string(t->client_auth) ||
            !tls_version_to_string(t->min_version) || t->handshake_timeout < CONFIG_HANDSHAKE_TIMEOUT_MIN ||
            t->handshake_timeout > CONFIG_HANDSHAKE_TIMEOUT_MAX)
                abort();
        if (t->present && t->client_auth != TLS_CLIENT_AUTH_NONE && !t->ca_file[0])
                abort();
        if (t->present != (t->line > 0))
                abort();
}

static void check_ranges(const Config *c) {
        if (c->n_listen < 1 || c->n_listen > CONFIG_LISTEN_MAX)
                abort();
        for (size_t i = 0; i < CONFIG_LISTEN_MAX; i++) {
                if (!c->listen_str[i] != (i >= c->n_listen) || !c->listen_opts[i].name != (i >= c->n_listen))
                        abort();
                if (i < c->n_listen)
                        check_listen_options(c, i);
        }
        check_tls(&c->tls);
        if (c->max_clients < CONFIG_MAX_CLIENTS_MIN || c->max_clients > CONFIG_MAX_CLIENTS_MAX ||
            c->max_message_bytes < CONFIG_MAX_MESSAGE_MIN || c->max_message_bytes > CONFIG_MAX_MESSAGE_MAX ||
            c->max_queue_bytes < CONFIG_MAX_QUEUE_MIN || c->max_queue_bytes > CONFIG_MAX_QUEUE_MAX ||
            c->max_queue_bytes < c->max_message_bytes || !slow_client_policy_to_string(c->slow_client) ||
            !c->prefix || strlen(c->prefix) > CONFIG_PREFIX_MAX || strchr(c->prefix, '\n') ||
            c->tcp_keepalive > CONFIG_KEEPALIVE_MAX || c->shutdown_timeout > CONFIG_SHUTDOWN_TIMEOUT_MAX ||
            c->max_partial_bytes < c->max_message_bytes || c->max_partial_bytes > CONFIG_MAX_PARTIAL_MAX ||
            c->partial_timeout > CONFIG_PARTIAL_TIMEOUT_MAX || !log_level_to_string(c->log_level))
                abort();
}

/* Where the settings came from (tls.line, tls.source, the key lines)
 * aside. */
static bool same_tls(const TlsConfig *a, const TlsConfig *b) {
        return a->present == b->present && strcmp(a->cert_file, b->cert_file) == 0 &&
               strcmp(a->key_file, b->key_file) == 0 && strcmp(a->ca_file, b->ca_file) == 0 &&
               a->client_auth == b->client_auth && a->min_version == b->min_version &&
               strcmp(a->ciphers, b->ciphers) == 0 && strcmp(a->ciphersuites, b->ciphersuites) == 0 &&
               a->handshake_timeout == b->handshake_timeout;
}

/* config_listen_equal() compares 'listen' as a set: the print keeps the
 * order too, entry by entry. */
static bool same_listen_entry(const Config *a, const Config *b, size_t i) {
        const ListenOptions *x = &a->listen_opts[i], *y = &b->listen_opts[i];

        if (strcmp(a->listen_str[i], b->listen_str[i]) != 0 || x->has_address != y->has_address ||
            strcmp(x->name, y->name) != 0 || x->protocol != y->protocol || x->tls != y->tls ||
            x->role != y->role || x->history != y->history || x->n_origins != y->n_origins)
                return false;
        for (size_t k = 0; k < x->n_origins; k++)
                if (strcmp(x->origins[k], y->origins[k]) != 0)
                        return false;
        return true;
}

static bool same_settings(const Config *a, const Config *b) {
        if (!config_listen_equal(a, b) || !config_listen_equal(b, a))
                return false;
        for (size_t i = 0; i < a->n_listen; i++)
                if (!same_listen_entry(a, b, i))
                        return false;
        return a->max_clients == b->max_clients && a->max_message_bytes == b->max_message_bytes &&
               a->max_queue_bytes == b->max_queue_bytes && a->slow_client == b->slow_client &&
               a->echo == b->echo && strcmp(a->prefix, b->prefix) == 0 &&
               a->tcp_keepalive == b->tcp_keepalive && a->shutdown_timeout == b->shutdown_timeout &&
               a->max_partial_bytes == b->max_partial_bytes && a->partial_timeout == b->partial_timeout &&
               a->log_level == b->log_level && same_tls(&a->tls, &b->tls);
}

static void check_error(int r, const char *err) {
        if (r >= 0 || err[0] == '\0' || strchr(err, '\n') || strncmp(err, dir, strlen(dir)) != 0) {
                (void)fprintf(stderr, "bad error %d: \"%s\"\n", r, err);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (includes_a_path(data, size))
                return 0;

        const uint8_t *nul = memchr(data, '\0', size);
        size_t main_len = nul ? (size_t)(nul - data) : size;
        write_file(main_path, data, main_len);
        if (nul)
                write_file(inc_path, nul + 1, size - main_len - 1);
        else if (unlink(inc_path) < 0 && errno != ENOENT)
                abort();

        _cleanup_config_ Config *c = NULL;
        char err[1024] = "";
        int r = config_load(main_path, true, &c, NULL, err, sizeof(err));
        if (r < 0) {
                check_error(r, err);
                return 0;
        }
        check_ranges(c);

        FILE *f = fopen(print_path, "we");
        if (!f)
                abort();
        config_print(c, f);
        if (fclose(f) != 0)
                abort();
        _cleanup_config_ Config *again = NULL;
        if (config_load(print_path, true, &again, NULL, err, sizeof(err)) < 0) {
                (void)fprintf(stderr, "the printed settings do not load: %s\n", err);
                abort();
        }
        if (!same_settings(c, again)) {
                (void)fprintf(stderr, "the printed settings load as different ones\n");
                abort();
        }
        return 0;
}
