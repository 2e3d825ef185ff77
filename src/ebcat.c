/* ebcat: the command-line client of ebcat(1). It connects to one server
 * address, copies standard input to the socket and the socket to standard
 * output, and ends the session cleanly.
 *
 * Invariants:
 *  - One poll() loop over stdin, the socket and stdout. poll(), not epoll:
 *    stdin and stdout may be regular files, which epoll refuses. Only the
 *    socket is non-blocking; stdin and stdout keep their blocking mode (their
 *    file descriptions may be shared with the shell), so stdin is read only
 *    after POLLIN (a read then returns what is there), and stdout is written
 *    only after POLLOUT, at most PIPE_BUF bytes at a time unless it is a
 *    regular file (a pipe then takes the write whole without blocking).
 *  - Memory is bounded: two fixed buffers, 'up' (stdin → socket) and 'down'
 *    (socket → stdout). A full 'up' stops reading stdin; a full 'down' stops
 *    reading the socket. In --send-only mode received bytes are discarded at
 *    once, so the server never sees a slow reader.
 *  - Bytes are relayed as they come: the server does the framing, and a last
 *    line without LF is sent as is (the server appends the LF).
 *  - End of input: once stdin is at EOF and 'up' is empty, shutdown(SHUT_WR);
 *    then keep reading until the server closes (at most LINGER_MSEC), so
 *    close() never resets a connection with unread data in it.
 *  - SIGPIPE is ignored: sends use MSG_NOSIGNAL, and EPIPE on stdout (its
 *    reader went away, as in `ebcat -l | head -1`) ends ebcat quietly with
 *    status 0.
 *  - With --tls the same loop runs over an OpenSSL connection on the same
 *    non-blocking socket, after a handshake of its own (bounded by
 *    HANDSHAKE_MSEC). Either direction may need the other readiness
 *    (SSL_ERROR_WANT_READ from SSL_write, WANT_WRITE from SSL_read): each
 *    side remembers what it waits for and polls for that. An SSL_write that
 *    has to be repeated is repeated with the same length (the bytes at the
 *    head of 'up' do not change until it succeeds; they may move, which
 *    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows). Records OpenSSL has
 *    already read raise no poll event, so SSL_read is repeated until it
 *    wants to read (tls_read_more keeps the next round from sleeping while
 *    it has not). End of input sends close_notify (SSL_shutdown) and then
 *    shutdown(SHUT_WR); the server's close_notify is its end of data, and a
 *    connection closed without one is lost, unless ours was already sent.
 *
 * Exit status: 0 normal end, 1 connection, TLS or I/O error, 2 usage error. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "addr.h"
#include "build-config.h"
#include "util.h"

#define DEFAULT_ADDRESS "127.0.0.1:7878"
#define BUFFER_SIZE ((size_t)64 * 1024)
/* How long to wait for the server to close after our shutdown(SHUT_WR). */
#define LINGER_MSEC 5000
/* How long the TLS handshake may take, from the TCP connection on. */
#define HANDSHAKE_MSEC 10000

#define EXIT_USAGE 2

typedef enum Mode {
        MODE_BOTH,
        MODE_LISTEN,
        MODE_SEND,
} Mode;

static Mode arg_mode = MODE_BOTH;
static const char *arg_address = DEFAULT_ADDRESS;
/* The parsed ADDRESS: arg_host and arg_port when it needs a name lookup,
 * arg_sockaddr otherwise. */
static SockAddr arg_sockaddr;
static char *arg_host, *arg_port;
/* --tls and its options. */
static bool arg_tls, arg_insecure;
static const char *arg_ca, *arg_cert, *arg_key;

/* A fixed byte queue: data[start..end) is pending. */
typedef struct Buffer {
        size_t start, end;
        char data[BUFFER_SIZE];
} Buffer;

typedef struct Session {
        int sock;
        Mode mode;
        Buffer up;           /* stdin → socket */
        Buffer down;         /* socket → stdout */
        size_t stdout_chunk; /* largest single write(2) to stdout */
        bool stdin_eof;
        bool sock_eof;    /* the server closed (or we gave up waiting) */
        bool send_failed; /* stop sending; the reading side tells why */
        int send_error;
        bool shut_wr;         /* our FIN is queued */
        bool stdout_gone;     /* stdout's reader went away: end quietly */
        int64_t linger_until; /* CLOCK_MONOTONIC ms, valid once shut_wr */
        /* --tls: NULL without. */
        SSL *ssl;
        bool tls_read_more;        /* SSL_read may have data without a poll event */
        bool tls_read_wants_write; /* SSL_read waits for POLLOUT */
        bool tls_write_wants_read; /* SSL_write waits for POLLIN */
        size_t tls_write_len;      /* length of the SSL_write to repeat, 0 = none */
        int tls_shutdown_events;   /* close_notify not yet handed to the socket:
                                    * what SSL_shutdown waits for, else 0 */
        bool tls_fatal;            /* OpenSSL failed: no SSL_shutdown any more */
        bool tls_truncated;        /* the server closed without close_notify */
} Session;

_printf_(1, 2) static void log_error(const char *fmt, ...) {
        va_list ap;

        /* stderr is where failures are reported: nowhere left to report its own. */
        (void)fputs("ebcat: ", stderr);
        va_start(ap, fmt);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void)fputc('\n', stderr);
}

/* Logs with errno set to 'error' (for %m); returns -error. */
#define log_error_errno(error, ...)                                                                         \
        ({                                                                                                  \
                int _e = (error);                                                                           \
                errno = _e;                                                                                 \
                log_error(__VA_ARGS__);                                                                     \
                -_e;                                                                                        \
        })

_printf_(1, 2) static int log_usage(const char *fmt, ...) {
        va_list ap;

        (void)fputs("ebcat: ", stderr);
        va_start(ap, fmt);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void)fputs(" (see 'ebcat --help')\n", stderr);
        return -EINVAL;
}

static int64_t now_msec(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t buffer_used(const Buffer *b) {
        return b->end - b->start;
}

static bool buffer_empty(const Buffer *b) {
        return b->start == b->end;
}

static bool buffer_full(const Buffer *b) {
        return buffer_used(b) == sizeof(b->data);
}

/* Room at the tail, after moving pending bytes to the front if that helps. */
static size_t buffer_room(Buffer *b) {
        if (b->start > 0 && b->end == sizeof(b->data)) {
                memmove(b->data, b->data + b->start, buffer_used(b));
                b->end -= b->start;
                b->start = 0;
        }
        return sizeof(b->data) - b->end;
}

static void buffer_consume(Buffer *b, size_t n) {
        b->start += n;
        if (b->start == b->end)
                b->start = b->end = 0;
}

static int parse_port(const char *s, uint16_t *ret) {
        unsigned long v;
        char *end;

        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t)v;
        return 0;
}

/* Splits "HOST:PORT" or "[HOST]:PORT" (a name, or an address addr_parse()
 * does not take, such as one with a zone index) for getaddrinfo(). Returns 0,
 * or -EINVAL when it is not of that shape. */
static int split_host_port(const char *s, char **ret_host, char **ret_port) {
        _cleanup_free_ char *host = NULL;
        const char *colon;
        uint16_t port;

        if (s[0] == '[') {
                const char *rbracket = strchr(s, ']');

                if (!rbracket || rbracket[1] != ':' || rbracket == s + 1)
                        return -EINVAL;
                host = strndup(s + 1, (size_t)(rbracket - s - 1));
                colon = rbracket + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon || colon == s || memchr(s, ':', (size_t)(colon - s)))
                        return -EINVAL;
                host = strndup(s, (size_t)(colon - s));
        }
        if (!host)
                return -ENOMEM;
        if (parse_port(colon + 1, &port) < 0)
                /* _cleanup_free_ frees host; clang-tidy 14 does not model __attribute__((cleanup)) */
                /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
                return -EINVAL;

        char *p = strdup(colon + 1);
        if (!p)
                return -ENOMEM;
        *ret_host = TAKE_PTR(host);
        *ret_port = p;
        return 0;
}

/* Checks ADDRESS at option time, so that a malformed one is a usage error:
 * either a numeric address for addr_parse(), or HOST:PORT for getaddrinfo(). */
static int parse_address(const char *s) {
        int r;

        if (addr_parse(s, &arg_sockaddr) >= 0) {
                if (arg_sockaddr.any)
                        return log_usage("'%s' is a wildcard to listen on, not an address to connect to", s);
                return 0;
        }
        if (s[0] == '/')
                return log_usage("invalid Unix socket path '%s'", s);

        r = split_host_port(s, &arg_host, &arg_port);
        if (r == -ENOMEM)
                return log_error_errno(ENOMEM, "%m");
        if (r < 0)
                return log_usage(
                        "invalid address '%s': expected a.b.c.d:PORT, [IPv6]:PORT, HOST:PORT or /path", s);
        return 0;
}

static void help(void) {
        printf("Usage: ebcat [OPTION]... [ADDRESS]\n"
               "Relay lines between standard input/output and an epoll-broadcaster server.\n"
               "\n"
               "Lines read from standard input are sent to the server; messages from the\n"
               "other clients are written to standard output as they arrive.\n"
               "\n"
               "  -l, --listen-only  only receive: never read standard input, run until\n"
               "                     the server closes the connection\n"
               "  -s, --send-only    only send: send standard input, then close; whatever\n"
               "                     the server sends meanwhile is read and discarded\n"
               "      --tls          speak TLS, verifying the server's certificate and the\n"
               "                     host name or IP address of ADDRESS\n"
               "      --ca FILE      trust the CA certificates in FILE (PEM) instead of\n"
               "                     the system's\n"
               "      --cert FILE    present the client certificate (chain) in FILE (PEM)\n"
               "      --key FILE     the unencrypted private key of --cert (PEM)\n"
               "      --insecure     do not verify the server's certificate\n"
               "  -h, --help         show this help and exit\n"
               "  -V, --version      show the version and exit\n"
               "\n"
               "ADDRESS is a.b.c.d:PORT, [IPv6]:PORT, HOST:PORT or the absolute path of a\n"
               "Unix socket (default: %s). Over a Unix socket, --tls verifies the\n"
               "certificate chain but no name.\n"
               "\n"
               "Without -l or -s both directions are relayed, and the end of standard input\n"
               "ends the session once everything read has been sent. When the reader of\n"
               "standard output goes away (ebcat -l | head -1), ebcat ends quietly.\n"
               "\n"
               "Exit status: 0 on a normal end (also when the server closes the connection,\n"
               "except in --send-only mode before all input was sent), 1 on a connection,\n"
               "TLS or I/O error, 2 on a usage error.\n",
               DEFAULT_ADDRESS);
}

enum {
        ARG_TLS = 0x100,
        ARG_CA,
        ARG_CERT,
        ARG_KEY,
        ARG_INSECURE,
};

/* Returns 1 to go on, 0 to exit successfully (--help, --version), -EINVAL on
 * a usage error (already reported). */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                {"listen-only", no_argument, NULL, 'l'},       {"send-only", no_argument, NULL, 's'},
                {"tls", no_argument, NULL, ARG_TLS},           {"ca", required_argument, NULL, ARG_CA},
                {"cert", required_argument, NULL, ARG_CERT},   {"key", required_argument, NULL, ARG_KEY},
                {"insecure", no_argument, NULL, ARG_INSECURE}, {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},           {},
        };
        bool listen_only = false, send_only = false;
        int c, r;

        opterr = 0; /* one line of our own instead of getopt's message */
        while ((c = getopt_long(argc, argv, "lshV", options, NULL)) >= 0) {
                switch (c) {
                case 'l':
                        listen_only = true;
                        break;
                case 's':
                        send_only = true;
                        break;
                case ARG_TLS:
                        arg_tls = true;
                        break;
                case ARG_CA:
                        arg_ca = optarg;
                        break;
                case ARG_CERT:
                        arg_cert = optarg;
                        break;
                case ARG_KEY:
                        arg_key = optarg;
                        break;
                case ARG_INSECURE:
                        arg_insecure = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("ebcat %s\n", PACKAGE_VERSION);
                        return 0;
                case '?':
                        if (optopt == ARG_CA || optopt == ARG_CERT || optopt == ARG_KEY)
                                return log_usage("option '%s' needs an argument", argv[optind - 1]);
                        if (optopt >= ARG_TLS)
                                return log_usage("option '%s' takes no argument", argv[optind - 1]);
                        if (optopt != 0)
                                return log_usage("unknown option '-%c'", optopt);
                        return log_usage("unknown option '%s'", argv[optind - 1]);
                default:
                        return log_usage("unexpected option");
                }
        }

        if (listen_only && send_only)
                return log_usage("--listen-only and --send-only exclude each other");
        arg_mode = listen_only ? MODE_LISTEN : send_only ? MODE_SEND : MODE_BOTH;

        if (!arg_tls) {
                const char *given = arg_ca         ? "--ca"
                                    : arg_cert     ? "--cert"
                                    : arg_key      ? "--key"
                                    : arg_insecure ? "--insecure"
                                                   : NULL;
                if (given)
                        return log_usage("%s needs --tls", given);
        }
        if (!arg_cert != !arg_key)
                return log_usage("--cert and --key go together");
        if (arg_insecure && arg_ca)
                return log_usage("--insecure and --ca exclude each other");

        if (optind < argc)
                arg_address = argv[optind++];
        if (optind < argc)
                return log_usage("unexpected argument '%s'", argv[optind]);

        r = parse_address(arg_address);
        if (r < 0)
                return r;
        return 1;
}

static int connect_sockaddr(const struct sockaddr *sa, socklen_t len, int *ret_fd) {
        _cleanup_close_ int fd = -1;

        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, sa, len) < 0)
                return -errno;

        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                return -errno;
        if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
                /* Lines are small and latency matters more than segment count;
                 * sends are already batched by the buffer. */
                int one = 1;
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }

        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Resolves host:port and tries each address in turn. */
static int connect_name(const char *host, const char *port, int *ret_fd) {
        const struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_NUMERICSERV,
        };
        struct addrinfo *list = NULL;
        int r;

        r = getaddrinfo(host, port, &hints, &list);
        if (r != 0) {
                if (r == EAI_SYSTEM)
                        return log_error_errno(errno, "cannot connect to %s: %m", arg_address);
                log_error("cannot connect to %s: %s", arg_address, gai_strerror(r));
                return -EHOSTUNREACH;
        }

        r = -EHOSTUNREACH;
        for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
                r = connect_sockaddr(ai->ai_addr, ai->ai_addrlen, ret_fd);
                if (r >= 0)
                        break;
        }
        freeaddrinfo(list);

        if (r < 0)
                return log_error_errno(-r, "cannot connect to %s: %m", arg_address);
        return 0;
}

/* Returns 0 with *ret_fd connected and non-blocking, or -errno (reported). */
static int connect_address(int *ret_fd) {
        int r;

        if (arg_host)
                return connect_name(arg_host, arg_port, ret_fd);

        r = connect_sockaddr(&arg_sockaddr.sa, arg_sockaddr.len, ret_fd);
        if (r < 0)
                return log_error_errno(-r, "cannot connect to %s: %m", arg_address);
        return 0;
}

/* --- TLS ------------------------------------------------------------------ */

/* The reason of the oldest error in OpenSSL's queue, for a message. */
static const char *tls_reason(char *buf, size_t size) {
        unsigned long e = ERR_peek_error();
        const char *reason;

        if (e == 0)
                return "unknown TLS error";
        if (ERR_SYSTEM_ERROR(e)) /* a failed fopen() and the like: errno */
                return strerror(ERR_GET_REASON(e));
        reason = ERR_reason_error_string(e);
        if (reason)
                return reason;
        ERR_error_string_n(e, buf, size);
        return buf;
}

/* Never prompt for a passphrase (the terminal may be ebcat's input): an
 * encrypted key fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        (void)buf;
        (void)size;
        (void)rwflag;
        (void)userdata;
        return -1;
}

/* The context of every connection: verification and the client certificate.
 * Files are loaded here, before connecting. Returns 0 or -EIO (reported). */
static int tls_context_new(SSL_CTX **ret) {
        char buf[256];
        SSL_CTX *ctx;

        ERR_clear_error();
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) {
                log_error("cannot set up TLS: %s", tls_reason(buf, sizeof(buf)));
                return -EIO;
        }
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
                log_error("cannot set up TLS: %s", tls_reason(buf, sizeof(buf)));
                goto fail;
        }
        /* The head of 'up' may move (buffer_room) between an SSL_write that
         * wants to be repeated and its repetition. */
        (void)SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);

        if (arg_insecure) {
                SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        } else {
                if (arg_ca) {
                        if (SSL_CTX_load_verify_file(ctx, arg_ca) != 1) {
                                log_error("cannot load CA certificates from %s: %s", arg_ca,
                                          tls_reason(buf, sizeof(buf)));
                                goto fail;
                        }
                } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
                        log_error("cannot load the system's CA certificates: %s",
                                  tls_reason(buf, sizeof(buf)));
                        goto fail;
                }
                SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        }

        if (arg_cert) {
                if (SSL_CTX_use_certificate_chain_file(ctx, arg_cert) != 1) {
                        log_error("cannot load the certificate %s: %s", arg_cert,
                                  tls_reason(buf, sizeof(buf)));
                        goto fail;
                }
                if (SSL_CTX_use_PrivateKey_file(ctx, arg_key, SSL_FILETYPE_PEM) != 1) {
                        log_error("cannot load the private key %s: %s", arg_key,
                                  tls_reason(buf, sizeof(buf)));
                        goto fail;
                }
                if (SSL_CTX_check_private_key(ctx) != 1) {
                        log_error("the private key %s does not match the certificate %s", arg_key, arg_cert);
                        goto fail;
                }
        }
        *ret = ctx;
        return 0;

fail:
        SSL_CTX_free(ctx);
        return -EIO;
}

/* What the server's certificate must name, from ADDRESS: an IP address
 * (ret_ip, textual), a host name (ret_name, also sent as SNI), or nothing
 * (a Unix socket). */
static void tls_peer_identity(char ret_ip[static INET6_ADDRSTRLEN], const char **ret_name) {
        ret_ip[0] = '\0';
        *ret_name = NULL;

        if (!arg_host) {
                const void *a = NULL;

                if (arg_sockaddr.sa.sa_family == AF_INET)
                        a = &arg_sockaddr.in.sin_addr;
                else if (arg_sockaddr.sa.sa_family == AF_INET6)
                        a = &arg_sockaddr.in6.sin6_addr;
                if (a && !inet_ntop(arg_sockaddr.sa.sa_family, a, ret_ip, INET6_ADDRSTRLEN))
                        ret_ip[0] = '\0'; /* cannot happen: the buffer fits any address */
                return;
        }

        /* A literal getaddrinfo() is to take ("[fe80::1%eth0]"): the
         * certificate names the address, without the zone. */
        size_t len = strcspn(arg_host, "%");
        if (len < INET6_ADDRSTRLEN) {
                unsigned char bin[sizeof(struct in6_addr)];

                memcpy(ret_ip, arg_host, len);
                ret_ip[len] = '\0';
                if (inet_pton(AF_INET, ret_ip, bin) == 1 || inet_pton(AF_INET6, ret_ip, bin) == 1)
                        return;
        }
        ret_ip[0] = '\0';
        *ret_name = arg_host;
}

/* A TLS connection over the connected socket, set up to check the server's
 * identity. Returns 0 or -EIO (reported). */
static int tls_new(SSL_CTX *ctx, int fd, SSL **ret) {
        char ip[INET6_ADDRSTRLEN], buf[256];
        const char *name;
        SSL *ssl;

        ERR_clear_error();
        ssl = SSL_new(ctx);
        if (!ssl) {
                log_error("cannot set up TLS: %s", tls_reason(buf, sizeof(buf)));
                return -EIO;
        }
        if (SSL_set_fd(ssl, fd) != 1)
                goto fail;

        tls_peer_identity(ip, &name);
        if (name) {
                /* SNI for names only (RFC 6066: not for literal addresses). */
                if (SSL_set_tlsext_host_name(ssl, name) != 1)
                        goto fail;
                if (!arg_insecure) {
                        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                        if (SSL_set1_host(ssl, name) != 1)
                                goto fail;
                }
        } else if (ip[0] != '\0' && !arg_insecure) {
                if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1)
                        goto fail;
        }
        SSL_set_connect_state(ssl);
        *ret = ssl;
        return 0;

fail:
        log_error("cannot set up TLS for %s: %s", arg_address, tls_reason(buf, sizeof(buf)));
        SSL_free(ssl);
        return -EIO;
}

/* Reports a failed SSL_connect (ssl_error from SSL_get_error, error the
 * errno it left). */
static int tls_handshake_failed(Session *s, int ssl_error, int error) {
        char buf[256];
        long verify = SSL_get_verify_result(s->ssl);

        s->tls_fatal = true;
        if (!arg_insecure && verify != X509_V_OK) {
                log_error("cannot connect to %s: certificate verification failed: %s", arg_address,
                          X509_verify_cert_error_string(verify));
                return -EIO;
        }
        if (ssl_error == SSL_ERROR_SYSCALL && error != 0)
                return log_error_errno(error, "cannot connect to %s: TLS handshake failed: %m", arg_address);
        if (ssl_error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
                log_error("cannot connect to %s: TLS handshake failed: the server closed the connection",
                          arg_address);
                return -ECONNRESET;
        }
        log_error("cannot connect to %s: TLS handshake failed: %s", arg_address,
                  tls_reason(buf, sizeof(buf)));
        return -EIO;
}

/* The handshake, on the non-blocking socket, within HANDSHAKE_MSEC. Returns 0
 * or -errno (reported). */
static int tls_handshake(Session *s) {
        int64_t deadline = now_msec() + HANDSHAKE_MSEC;

        for (;;) {
                struct pollfd p = {.fd = s->sock};
                int r, e, error, left;

                ERR_clear_error();
                errno = 0;
                r = SSL_connect(s->ssl);
                if (r == 1)
                        break;
                error = errno;
                e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                        p.events = POLLIN;
                else if (e == SSL_ERROR_WANT_WRITE)
                        p.events = POLLOUT;
                else
                        return tls_handshake_failed(s, e, error);

                left = (int)MAX(deadline - now_msec(), 0);
                if (left == 0) {
                        log_error("cannot connect to %s: TLS handshake timed out", arg_address);
                        return -ETIMEDOUT;
                }
                if (poll(&p, 1, left) < 0 && errno != EINTR)
                        return log_error_errno(errno, "poll failed: %m");
        }
        /* The server may have sent data right behind its last handshake
         * message: it is read before the first poll. */
        s->tls_read_more = true;
        return 0;
}

/* After an SSL_* call on the connection: records OpenSSL already holds are
 * to be read without waiting for the socket. */
static void tls_note_pending(Session *s) {
        if (SSL_has_pending(s->ssl))
                s->tls_read_more = true;
}

/* SSL_read until it wants to read, 'down' is full, or one buffer's worth
 * has come in this round (so that a fast server cannot hold the loop). */
static int session_recv_tls(Session *s) {
        Buffer *b = &s->down;
        size_t total = 0;
        char buf[256];

        s->tls_read_wants_write = false;
        s->tls_read_more = false;
        while (total < BUFFER_SIZE) {
                size_t room = buffer_room(b), n = 0;
                int r, e, error;

                if (room == 0) {
                        s->tls_read_more = true; /* once stdout made room */
                        return 0;
                }
                ERR_clear_error();
                errno = 0;
                r = SSL_read_ex(s->ssl, b->data + b->end, room, &n);
                error = errno;
                if (r == 1) {
                        total += n;
                        if (s->mode != MODE_SEND)
                                b->end += n;
                        continue;
                }

                e = SSL_get_error(s->ssl, r);
                switch (e) {
                case SSL_ERROR_WANT_READ:
                        return 0;
                case SSL_ERROR_WANT_WRITE:
                        s->tls_read_wants_write = true;
                        return 0;
                case SSL_ERROR_ZERO_RETURN: /* the server's close_notify */
                        s->sock_eof = true;
                        return 0;
                case SSL_ERROR_SYSCALL:
                        s->tls_fatal = true;
                        if (error != 0)
                                return log_error_errno(error, "connection to %s lost: %m", arg_address);
                        if (ERR_peek_error() == 0)
                                break; /* an EOF that OpenSSL did not name */
                        log_error("connection to %s lost: %s", arg_address, tls_reason(buf, sizeof(buf)));
                        return -EIO;
                case SSL_ERROR_SSL:
                        s->tls_fatal = true;
                        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                                break;
                        log_error("connection to %s lost: %s", arg_address, tls_reason(buf, sizeof(buf)));
                        return -EIO;
                default:
                        s->tls_fatal = true;
                        log_error("connection to %s lost: %s", arg_address, tls_reason(buf, sizeof(buf)));
                        return -EIO;
                }

                /* The connection ended without the server's close_notify: what
                 * came may be cut short, unless the session was over (our
                 * close_notify sent, only the server's end awaited). What came
                 * is written out first, as at any end. */
                s->sock_eof = true;
                s->tls_truncated = !s->shut_wr;
                return 0;
        }
        s->tls_read_more = true; /* more may be there: next round, without waiting */
        return 0;
}

static int session_send_tls(Session *s) {
        Buffer *b = &s->up;
        /* A repeated SSL_write must have the same length as the first try. */
        size_t len = s->tls_write_len > 0 ? s->tls_write_len : buffer_used(b), n = 0;
        char buf[256];
        int r, e, error;

        s->tls_write_wants_read = false;
        ERR_clear_error();
        errno = 0;
        r = SSL_write_ex(s->ssl, b->data + b->start, len, &n);
        error = errno;
        e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
        tls_note_pending(s);
        switch (e) {
        case SSL_ERROR_NONE:
                s->tls_write_len = 0;
                buffer_consume(b, n);
                return 0;
        case SSL_ERROR_WANT_READ:
                s->tls_write_wants_read = true;
                s->tls_write_len = len;
                return 0;
        case SSL_ERROR_WANT_WRITE:
                s->tls_write_len = len;
                return 0;
        case SSL_ERROR_ZERO_RETURN: /* after the server's close_notify */
                break;
        case SSL_ERROR_SYSCALL:
                s->tls_fatal = true;
                if (error != 0 && error != EPIPE && error != ECONNRESET)
                        return log_error_errno(error, "connection to %s lost: %m", arg_address);
                break;
        default:
                s->tls_fatal = true;
                log_error("connection to %s lost: %s", arg_address, tls_reason(buf, sizeof(buf)));
                return -EIO;
        }

        /* As without TLS: the reading side tells how the server ended. */
        s->send_failed = true;
        s->send_error = error != 0 ? error : EPIPE;
        s->tls_write_len = 0;
        b->start = b->end = 0;
        return 0;
}

/* close_notify: returns 1 once handed to the socket; 0 to try again when
 * the socket is ready for tls_shutdown_events, or with send_failed set when
 * the server is gone already; -errno (reported) on an error. */
static int session_shutdown_tls(Session *s) {
        char buf[256];
        int r, e, error;

        ERR_clear_error();
        errno = 0;
        r = SSL_shutdown(s->ssl);
        error = errno;
        e = r >= 0 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
        tls_note_pending(s);
        s->tls_shutdown_events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : e == SSL_ERROR_WANT_READ ? POLLIN : 0;
        if (e == SSL_ERROR_NONE)
                return 1;
        if (s->tls_shutdown_events != 0)
                return 0;
        s->tls_fatal = true;
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
                if (error != 0 && error != EPIPE && error != ECONNRESET)
                        return log_error_errno(error, "connection to %s lost: %m", arg_address);
                s->send_failed = true;
                s->send_error = error != 0 ? error : EPIPE;
                return 0;
        }
        log_error("connection to %s lost: %s", arg_address, tls_reason(buf, sizeof(buf)));
        return -EIO;
}

/* At a normal end, a close_notify of ours unless it went already: the server
 * then knows nothing was cut. One try, without waiting: the session is over
 * whatever comes of it. */
static void session_close_tls(Session *s) {
        if (s->tls_fatal || (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN))
                return;
        if (SSL_shutdown(s->ssl) < 0)
                ERR_clear_error(); /* nothing more to do about it */
}

static int session_read_stdin(Session *s) {
        Buffer *b = &s->up;
        ssize_t n;

        n = read(STDIN_FILENO, b->data + b->end, buffer_room(b));
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 0;
                return log_error_errno(errno, "error reading standard input: %m");
        }
        if (n == 0)
                s->stdin_eof = true;
        b->end += (size_t)n;
        return 0;
}

static int session_send(Session *s) {
        Buffer *b = &s->up;
        ssize_t n;

        if (s->ssl)
                return session_send_tls(s);

        n = send(s->sock, b->data + b->start, buffer_used(b), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 0;
                if (errno != EPIPE && errno != ECONNRESET)
                        return log_error_errno(errno, "connection to %s lost: %m", arg_address);
                /* The server is gone. Whether it closed (a normal end) or
                 * reset is told by the reading side: stop sending, go on
                 * reading until EOF or an error. */
                s->send_failed = true;
                s->send_error = errno;
                b->start = b->end = 0;
                return 0;
        }
        buffer_consume(b, (size_t)n);
        return 0;
}

static int session_recv(Session *s) {
        Buffer *b = &s->down;
        ssize_t n;

        if (s->ssl)
                return session_recv_tls(s);

        n = recv(s->sock, b->data + b->end, buffer_room(b), MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 0;
                return log_error_errno(errno, "connection to %s lost: %m", arg_address);
        }
        if (n == 0)
                s->sock_eof = true;
        else if (s->mode != MODE_SEND)
                b->end += (size_t)n;
        return 0;
}

static int session_write_stdout(Session *s) {
        Buffer *b = &s->down;
        ssize_t n;

        n = write(STDOUT_FILENO, b->data + b->start, MIN(buffer_used(b), s->stdout_chunk));
        if (n < 0) {
                if (errno == EINTR || errno == EAGAIN)
                        return 0;
                if (errno == EPIPE) {
                        s->stdout_gone = true;
                        return 0;
                }
                return log_error_errno(errno, "error writing standard output: %m");
        }
        buffer_consume(b, (size_t)n);
        return 0;
}

/* Everything read has been sent: half-close (after close_notify with TLS),
 * then wait for the server. */
static int session_maybe_shutdown(Session *s) {
        int r;

        if (s->mode == MODE_LISTEN || s->shut_wr || s->send_failed || !s->stdin_eof || !buffer_empty(&s->up))
                return 0;

        if (s->ssl) {
                r = session_shutdown_tls(s);
                if (r <= 0)
                        return r;
        }
        if (shutdown(s->sock, SHUT_WR) < 0) {
                if (errno != ENOTCONN)
                        return log_error_errno(errno, "connection to %s lost: %m", arg_address);
                s->send_failed = true;
                s->send_error = errno;
                return 0;
        }
        s->shut_wr = true;
        s->linger_until = now_msec() + LINGER_MSEC;
        return 0;
}

/* Returns 1 while the session goes on, 0 at a normal end, -errno on an error
 * (reported). */
static int session_check_end(Session *s) {
        if (s->stdout_gone)
                return 0;
        if (s->shut_wr && !s->sock_eof && now_msec() >= s->linger_until)
                s->sock_eof = true; /* the server did not close: stop waiting */
        if (!s->sock_eof || !buffer_empty(&s->down))
                return 1;

        if (s->tls_truncated) {
                log_error("connection to %s lost: closed without a TLS close_notify", arg_address);
                return -ECONNRESET;
        }

        if (s->mode == MODE_SEND && !s->shut_wr) {
                if (s->send_failed)
                        return log_error_errno(s->send_error, "connection to %s lost: %m", arg_address);
                log_error("%s closed the connection before all input was sent", arg_address);
                return -ECONNRESET;
        }
        return 0;
}

static int session_run(Session *s) {
        enum { P_STDIN, P_SOCK, P_STDOUT, N_POLLFDS };
        bool tls = s->ssl != NULL;

        for (;;) {
                struct pollfd p[N_POLLFDS] = {};
                bool want_stdin, want_recv, want_send, in_ready, out_ready, recv_ready, send_ready;
                int sock_events = 0, rev, timeout = -1, r;

                r = session_maybe_shutdown(s);
                if (r < 0)
                        return r;
                r = session_check_end(s);
                if (r <= 0)
                        return r;

                want_stdin =
                        s->mode != MODE_LISTEN && !s->stdin_eof && !s->send_failed && !buffer_full(&s->up);
                want_recv = !s->sock_eof && (s->mode == MODE_SEND || !buffer_full(&s->down));
                want_send = !s->send_failed && !buffer_empty(&s->up);

                /* With TLS either side may wait for the other readiness. */
                if (want_recv)
                        sock_events |= tls && s->tls_read_wants_write ? POLLOUT : POLLIN;
                if (want_send)
                        sock_events |= tls && s->tls_write_wants_read ? POLLIN : POLLOUT;
                sock_events |= s->tls_shutdown_events;

                p[P_STDIN] = (struct pollfd){.fd = want_stdin ? STDIN_FILENO : -1, .events = POLLIN};
                p[P_SOCK] = (struct pollfd){.fd = sock_events ? s->sock : -1, .events = (short)sock_events};
                p[P_STDOUT] = (struct pollfd){
                        .fd = buffer_empty(&s->down) ? -1 : STDOUT_FILENO,
                        .events = POLLOUT,
                };
                if (s->shut_wr && !s->sock_eof)
                        timeout = (int)MAX(s->linger_until - now_msec(), 0);
                if (want_recv && s->tls_read_more)
                        timeout = 0; /* OpenSSL holds data: no event will tell */

                if (poll(p, N_POLLFDS, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "poll failed: %m");
                }

                rev = p[P_SOCK].revents;
                in_ready = rev & (POLLIN | POLLHUP | POLLERR);
                out_ready = rev & (POLLOUT | POLLHUP | POLLERR);
                /* With TLS each side is ready when what OpenSSL waits for is. */
                recv_ready = (tls && s->tls_read_wants_write ? out_ready : in_ready) || s->tls_read_more;
                send_ready = tls && s->tls_write_wants_read ? in_ready : out_ready;

                if (p[P_STDIN].revents) {
                        r = session_read_stdin(s);
                        if (r < 0)
                                return r;
                }
                if (want_recv && recv_ready) {
                        r = session_recv(s);
                        if (r < 0)
                                return r;
                }
                if (want_send && send_ready && !s->send_failed) {
                        r = session_send(s);
                        if (r < 0)
                                return r;
                }
                if (p[P_STDOUT].revents) {
                        r = session_write_stdout(s);
                        if (r < 0)
                                return r;
                }
        }
}

/* A closed fd 0, 1 or 2 would be reused by the socket: point it at /dev/null. */
static int ensure_std_fds(void) {
        for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
                if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
                        continue;
                int nfd = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
                if (nfd < 0)
                        return -errno;
                if (nfd != fd)
                        return -EBADF;
        }
        return 0;
}

static size_t stdout_chunk_size(void) {
        struct stat st;

        /* A regular file takes any write at once; a pipe, a terminal or a
         * socket that polled writable takes PIPE_BUF bytes without blocking. */
        if (fstat(STDOUT_FILENO, &st) >= 0 && S_ISREG(st.st_mode))
                return BUFFER_SIZE;
        return PIPE_BUF;
}

int main(int argc, char *argv[]) {
        Session *s;
        SSL_CTX *ctx = NULL;
        int r;

        if (ensure_std_fds() < 0)
                return EXIT_FAILURE;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : EXIT_SUCCESS;

        (void)signal(SIGPIPE, SIG_IGN);

        s = calloc(1, sizeof(*s));
        if (!s) {
                log_error_errno(ENOMEM, "%m");
                return EXIT_FAILURE;
        }
        s->mode = arg_mode;
        s->sock = -1;
        s->stdout_chunk = stdout_chunk_size();

        if (arg_tls) {
                if (arg_insecure)
                        log_error("warning: --insecure: the server's certificate is not verified");
                r = tls_context_new(&ctx);
                if (r < 0)
                        goto finish;
        }

        r = connect_address(&s->sock);
        if (r < 0)
                goto finish;

        if (ctx) {
                r = tls_new(ctx, s->sock, &s->ssl);
                if (r < 0)
                        goto finish;
                r = tls_handshake(s);
                if (r < 0)
                        goto finish;
        }

        r = session_run(s);
        if (r >= 0 && s->ssl)
                session_close_tls(s);

finish:
        SSL_free(s->ssl);
        SSL_CTX_free(ctx);
        if (s->sock >= 0)
                (void)close(s->sock);
        free(s);
        free(arg_host);
        free(arg_port);

        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
