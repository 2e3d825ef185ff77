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
 *
 * Exit status: 0 normal end, 1 connection or I/O error, 2 usage error. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include "addr.h"
#include "build-config.h"
#include "util.h"

#define DEFAULT_ADDRESS "127.0.0.1:7878"
#define BUFFER_SIZE ((size_t)64 * 1024)
/* How long to wait for the server to close after our shutdown(SHUT_WR). */
#define LINGER_MSEC 5000

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
               "  -h, --help         show this help and exit\n"
               "  -V, --version      show the version and exit\n"
               "\n"
               "ADDRESS is a.b.c.d:PORT, [IPv6]:PORT, HOST:PORT or the absolute path of a\n"
               "Unix socket (default: %s).\n"
               "\n"
               "Without -l or -s both directions are relayed, and the end of standard input\n"
               "ends the session once everything read has been sent. When the reader of\n"
               "standard output goes away (ebcat -l | head -1), ebcat ends quietly.\n"
               "\n"
               "Exit status: 0 on a normal end (also when the server closes the connection,\n"
               "except in --send-only mode before all input was sent), 1 on a connection\n"
               "or I/O error, 2 on a usage error.\n",
               DEFAULT_ADDRESS);
}

/* Returns 1 to go on, 0 to exit successfully (--help, --version), -EINVAL on
 * a usage error (already reported). */
static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {{"listen-only", no_argument, NULL, 'l'},
                                                {"send-only", no_argument, NULL, 's'},
                                                {"help", no_argument, NULL, 'h'},
                                                {"version", no_argument, NULL, 'V'},
                                                {}};
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
                case 'h':
                        help();
                        return 0;
                case 'V':
                        printf("ebcat %s\n", PACKAGE_VERSION);
                        return 0;
                case '?':
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

/* Everything read has been sent: half-close, then wait for the server. */
static int session_maybe_shutdown(Session *s) {
        if (s->mode == MODE_LISTEN || s->shut_wr || s->send_failed || !s->stdin_eof || !buffer_empty(&s->up))
                return 0;

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

        for (;;) {
                struct pollfd p[N_POLLFDS] = {};
                bool want_stdin, want_recv, want_send;
                int timeout = -1, r;

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

                p[P_STDIN] = (struct pollfd){.fd = want_stdin ? STDIN_FILENO : -1, .events = POLLIN};
                p[P_SOCK] = (struct pollfd){
                        .fd = want_recv || want_send ? s->sock : -1,
                        .events = (short)((want_recv ? POLLIN : 0) | (want_send ? POLLOUT : 0)),
                };
                p[P_STDOUT] = (struct pollfd){
                        .fd = buffer_empty(&s->down) ? -1 : STDOUT_FILENO,
                        .events = POLLOUT,
                };
                if (s->shut_wr && !s->sock_eof)
                        timeout = (int)MAX(s->linger_until - now_msec(), 0);

                if (poll(p, N_POLLFDS, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        return log_error_errno(errno, "poll failed: %m");
                }

                if (p[P_STDIN].revents) {
                        r = session_read_stdin(s);
                        if (r < 0)
                                return r;
                }
                if (want_recv && (p[P_SOCK].revents & (POLLIN | POLLHUP | POLLERR))) {
                        r = session_recv(s);
                        if (r < 0)
                                return r;
                }
                if (want_send && (p[P_SOCK].revents & (POLLOUT | POLLHUP | POLLERR))) {
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
        _cleanup_free_ Session *s = NULL;
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
        s->stdout_chunk = stdout_chunk_size();

        r = connect_address(&s->sock);
        if (r < 0)
                /* _cleanup_free_ frees s; clang-tidy 14 does not model __attribute__((cleanup)) */
                /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
                return EXIT_FAILURE;

        r = session_run(s);
        (void)close(s->sock);
        free(arg_host);
        free(arg_port);

        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
