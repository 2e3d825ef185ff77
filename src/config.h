/* The settings of epoll-broadcaster.conf(5): defaults, loading /etc/epoll-broadcaster.conf with
 * libconfig, validation with file:line:setting errors. The only module that
 * includes <libconfig.h>. Pure apart from reading the file: never logs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"

#define CONFIG_EXIT_CODE 78 /* EX_CONFIG */

typedef enum SlowClientPolicy {
        SLOW_CLIENT_DISCONNECT,
        SLOW_CLIENT_DROP,
} SlowClientPolicy;

/* Values are syslog priorities (LOG_ERR .. LOG_DEBUG). */
typedef enum LogLevel {
        LOG_LEVEL_ERROR = 3,
        LOG_LEVEL_WARNING = 4,
        LOG_LEVEL_NOTICE = 5,
        LOG_LEVEL_INFO = 6,
        LOG_LEVEL_DEBUG = 7,
} LogLevel;

/* Documented ranges (also in epoll-broadcaster.conf(5)). */
#define CONFIG_LISTEN_MAX 64
#define CONFIG_MAX_CLIENTS_MIN 1
#define CONFIG_MAX_CLIENTS_MAX 1000000
#define CONFIG_MAX_MESSAGE_MIN 2
#define CONFIG_MAX_MESSAGE_MAX (16LL * 1024 * 1024)
#define CONFIG_MAX_QUEUE_MIN 1024 /* and at least max_message_bytes */
#define CONFIG_MAX_QUEUE_MAX (1024LL * 1024 * 1024)
#define CONFIG_PREFIX_MAX 256      /* template length in bytes */
#define CONFIG_KEEPALIVE_MAX 32767 /* Linux TCP_KEEPIDLE limit */
#define CONFIG_SHUTDOWN_TIMEOUT_MAX 3600
#define CONFIG_MAX_PARTIAL_MAX (64LL * 1024 * 1024 * 1024) /* and at least max_message_bytes */
#define CONFIG_PARTIAL_TIMEOUT_MAX 3600
#define CONFIG_PING_INTERVAL_MAX 3600
#define CONFIG_REQUEST_TIMEOUT_MIN 1
#define CONFIG_REQUEST_TIMEOUT_MAX 3600

/* epoll-broadcaster.conf(5), listener groups. */
typedef enum ListenProtocol {
        LISTEN_PROTOCOL_LINE,
        LISTEN_PROTOCOL_WEBSOCKET,
        LISTEN_PROTOCOL_METRICS,
        N_LISTEN_PROTOCOLS,
} ListenProtocol;

typedef enum ListenRole {
        LISTEN_ROLE_BOTH,
        LISTEN_ROLE_SUBSCRIBE, /* receives; what it sends is read and discarded */
        LISTEN_ROLE_PUBLISH,   /* sends; receives nothing */
} ListenRole;

/* What a 'listen' entry says besides its address: a string entry has the
 * defaults (line protocol, no TLS, role both, no name). */
typedef struct ListenOptions {
        bool has_address; /* false: a group with only a 'name' (socket activation) */
        char *name;       /* FileDescriptorName= it matches, "" = none */
        ListenProtocol protocol;
        bool tls;
        ListenRole role;
        char **origins; /* websocket only; "*" allows any */
        size_t n_origins;
        bool history; /* default true */
} ListenOptions;

typedef enum TlsClientAuth {
        TLS_CLIENT_AUTH_NONE,
        TLS_CLIENT_AUTH_OPTIONAL,
        TLS_CLIENT_AUTH_REQUIRE,
} TlsClientAuth;

typedef enum TlsVersion {
        TLS_VERSION_1_2,
        TLS_VERSION_1_3,
} TlsVersion;

#define CONFIG_HANDSHAKE_TIMEOUT_MIN 1
#define CONFIG_HANDSHAKE_TIMEOUT_MAX 3600

/* The 'tls' group. Paths are as the daemon opens them: a relative path in
 * the file is made absolute against the directory of the configuration
 * file. Whether the files are usable is tls.c's to check. */
typedef struct TlsConfig {
        bool present;    /* the group was given */
        char *cert_file; /* "" = not given */
        char *key_file;
        char *ca_file;
        TlsClientAuth client_auth;
        TlsVersion min_version;
        char *ciphers; /* "" = OpenSSL's default */
        char *ciphersuites;
        uint32_t handshake_timeout; /* seconds */
        unsigned line;              /* where the group is, for messages (0: unknown) */
        char *source;               /* the file it is in, for messages */
        /* The line of each key, for messages about its value (0: not in the
         * group; 'line' is the group's). In 'source', unless an @include
         * inside the group put the key in another file. */
        unsigned cert_file_line, key_file_line, ca_file_line, ciphers_line, ciphersuites_line;
} TlsConfig;

typedef struct Config {
        SockAddr listen[CONFIG_LISTEN_MAX];  /* valid where listen_opts[i].has_address */
        char *listen_str[CONFIG_LISTEN_MAX]; /* the address as written ("" for a name-only group) */
        ListenOptions listen_opts[CONFIG_LISTEN_MAX];
        size_t n_listen;
        bool listen_is_default; /* no 'listen' in the file */
        uint32_t max_clients;
        uint32_t max_message_bytes;
        uint64_t max_queue_bytes;
        SlowClientPolicy slow_client;
        bool echo;
        char *prefix;               /* validated template, "" = none */
        uint32_t tcp_keepalive;     /* seconds, 0 = off */
        uint32_t shutdown_timeout;  /* seconds */
        uint64_t max_partial_bytes; /* unfinished lines of all clients together */
        uint32_t partial_timeout;   /* seconds an unfinished line may wait, 0 = forever */
        uint32_t ping_interval;     /* WebSocket: seconds of silence before a ping, 0 = never */
        uint32_t request_timeout;   /* seconds an HTTP request head may take */
        LogLevel log_level;
        TlsConfig tls;
} Config;

/* The built-in defaults. Returns 0 or -ENOMEM. */
int config_new_default(Config **ret);

/* Loads 'path'. When 'must_exist' is false and the file does not exist, the
 * defaults are returned and *ret_used_defaults is set. On failure returns a
 * negative errno-style code (-EINVAL for any content error, -ENOENT, -EACCES,
 * ...) and writes one line to errbuf: "FILE:LINE: setting 'NAME': what is
 * wrong" (or "FILE: reason" when no line applies). */
int config_load(const char *path, bool must_exist, Config **ret, bool *ret_used_defaults, char *errbuf,
                size_t errlen);

/* Prints the effective settings in libconfig syntax (a valid config file). */
void config_print(const Config *c, FILE *f);

/* True when the two configurations have the same 'listen' entries, in any
 * order: the same addresses (or names, for a group without an address) with
 * the same options. Anything else needs a restart to apply. */
bool config_listen_equal(const Config *a, const Config *b);

const char *slow_client_policy_to_string(SlowClientPolicy p);
const char *log_level_to_string(LogLevel l);
/* The names the file uses ("line", "subscribe", "require", "1.3"), NULL for
 * a value out of range. */
const char *listen_protocol_to_string(ListenProtocol p);
const char *listen_role_to_string(ListenRole r);
const char *tls_client_auth_to_string(TlsClientAuth a);
const char *tls_version_to_string(TlsVersion v);

Config *config_free(Config *c);
static inline void config_freep(Config **c) {
        config_free(*c);
}
#define _cleanup_config_ _cleanup_(config_freep)
