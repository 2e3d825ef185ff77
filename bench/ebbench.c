/* ebbench: load generator for epoll-broadcaster and the servers it is
 * compared with (Redis pub/sub, NATS, ncat --broker).
 *
 * One process, one epoll loop, non-blocking sockets. S subscribers and P
 * publishers; every message carries its publisher, a sequence number and a
 * CLOCK_MONOTONIC timestamp, so each subscriber checks that it gets every
 * message exactly once, whole and in order, and how late. Publishers either
 * keep a bounded window in flight (full speed: as fast as the slowest
 * subscriber drains) or send at a fixed rate. The server's CPU time and RSS
 * come from /proc/PID. Idle mode opens N connections and reports the RSS
 * they cost the server.
 *
 * With --tls every connection speaks TLS (OpenSSL): a non-blocking client
 * handshake after the TCP connect (NATS: after the server's plaintext INFO),
 * then the same load through SSL_read_ex/SSL_write_ex. The server's
 * certificate is not checked unless --ca names a CA file: the benchmark needs
 * the encryption, not the authentication.
 *
 * The last line of output is machine-readable: "RESULT key=value ...". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef enum Proto { PROTO_LINE, PROTO_RESP, PROTO_NATS } Proto;

/* Payload layout: "PPPP SSSSSSSSSSSSSSSS TTTTTTTTTTTTTTTT " then filler.
 * Fixed-width hex parses without scanning. */
#define PAYLOAD_HEADER 39
#define MIN_MESSAGE_BYTES (PAYLOAD_HEADER + 2)
#define MAX_MESSAGE_BYTES (1024L * 1024)
#define CONTROL_MAX 4096 /* longest control line kept across reads (NATS INFO) */
#define READ_BUFFER_SIZE ((size_t)256 * 1024)
#define SEND_BATCH_BYTES ((size_t)64 * 1024)
#define CONNECTS_IN_FLIGHT 256 /* below any listen backlog: no SYN is dropped */
#define SYNC_LINE "SYNC\n"
#define CHANNEL "eb"
/* A server that has not taken every connection by then never will. */
#define SETUP_TIMEOUT_NS (20 * 1000000000ull)
/* No delivery for this long after sending ended: what is missing is lost. */
#define STALL_TIMEOUT_NS (5 * 1000000000ull)
/* --tls: OpenSSL reads ahead into a buffer this large (several records per
 * read(2)), so a subscriber drains a busy socket in few system calls. */
#define TLS_READ_AHEAD_BYTES ((size_t)64 * 1024)

/* How far a connection is from carrying traffic (connect_all). */
typedef enum Setup {
        SETUP_TCP,  /* connect(2) in progress */
        SETUP_INFO, /* --tls, NATS: waiting for the plaintext INFO line */
        SETUP_TLS,  /* --tls: client handshake in progress */
} Setup;

typedef struct Conn {
        int fd;
        bool publisher;
        bool ready;     /* subscribed (RESP, NATS) or saw a sync line (line) */
        bool connected; /* set up: connected, and with --tls handshaken */
        bool closed;
        /* --tls: what the last SSL call waits for besides its own direction */
        bool read_wants_write, write_wants_read;
        uint8_t setup;    /* a Setup, until connected */
        uint32_t watched; /* the epoll events asked for */
        SSL *ssl;         /* --tls; NULL on a plain connection */
        uint32_t idx;     /* index among subscribers or publishers */
        char *pending;    /* unfinished frame carried to the next read */
        uint32_t pending_len;
        uint64_t received; /* messages (subscribers) */
        /* Publishers: frames built but not yet written. */
        char *out;
        size_t out_len, out_off;
        uint64_t sent; /* messages built into out */
} Conn;

typedef struct Options {
        const char *target;
        Proto proto;
        uint32_t subscribers, publishers, bytes;
        uint64_t messages;   /* per publisher; 0: until the duration ends */
        double duration;     /* seconds of sending */
        double rate;         /* messages/s over all publishers; 0: window */
        size_t window_bytes; /* in flight per publisher, full speed */
        uint32_t idle;       /* idle mode: open this many connections */
        uint32_t backlog;    /* connections left waiting for accept() at most */
        pid_t server_pid;
        bool quiet;
        bool foreign; /* line protocol: skip lines that are not ours */
        bool tls;
        const char *ca_file;      /* --tls: verify the server against these CAs */
        const char *ciphersuites; /* --tls: TLS 1.3 suites offered; NULL: OpenSSL's */
} Options;

static Options opt = {
        .proto = PROTO_LINE,
        .subscribers = 10,
        .publishers = 1,
        .bytes = 64,
        .duration = 2.0,
        .window_bytes = (size_t)256 * 1024,
        .backlog = 256,
};

static int epfd = -1;
static Conn *subs, *pubs;
static uint64_t *next_seq; /* [sub * publishers + pub]: what sub expects next */
static char read_buf[READ_BUFFER_SIZE + CONTROL_MAX + MAX_MESSAGE_BYTES + 64];
static char *template_frame; /* one data frame as a subscriber receives it */
static size_t frame_len, frame_header_len, payload_len;
static char *publish_frame; /* one data frame as a publisher sends it */
static size_t publish_len, publish_header_len;
static uint64_t errors, deliveries, foreign_lines;
static char first_error[256];
static SSL_CTX *tls_ctx;      /* --tls */
static char tls_params[128];  /* --tls: the version and cipher first negotiated */
static char target_host[256]; /* HOST of HOST:PORT, for SNI and --ca */

/* Latency histogram: 32 linear steps per power of two (≈3 % resolution). */
#define HIST_BUCKETS (64 + 58 * 32)
static uint64_t hist[HIST_BUCKETS];
static uint64_t lat_max;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        (void)fputs("ebbench: ", stderr);
        (void)vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void)fputc('\n', stderr);
        exit(2);
}

/* die() with OpenSSL's reason: its error queue, else the certificate check's
 * verdict on ssl, else errno. */
static void die_tls(SSL *ssl, const char *what) __attribute__((noreturn));
static void die_tls(SSL *ssl, const char *what) {
        unsigned long e = ERR_get_error();
        char reason[256];
        long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
        if (verify != X509_V_OK)
                (void)snprintf(reason, sizeof(reason), "certificate: %s",
                               X509_verify_cert_error_string(verify));
        else if (e)
                ERR_error_string_n(e, reason, sizeof(reason));
        else
                (void)snprintf(reason, sizeof(reason), "%s", errno ? strerror(errno) : "connection closed");
        die("%s: %s", what, reason);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
        if (errors++ == 0) {
                va_list ap;
                va_start(ap, fmt);
                (void)vsnprintf(first_error, sizeof(first_error), fmt, ap);
                va_end(ap);
        }
}

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hist_add(uint64_t v) {
        size_t i;
        if (v < 64) {
                i = v;
        } else {
                unsigned msb = 63u - (unsigned)__builtin_clzll(v);
                i = 64 + (msb - 6) * 32 + ((v >> (msb - 5)) & 31);
        }
        hist[i]++;
        if (v > lat_max)
                lat_max = v;
}

static uint64_t hist_bucket_value(size_t i) {
        if (i < 64)
                return i;
        unsigned msb = (unsigned)(i - 64) / 32 + 6;
        uint64_t step = 1ull << (msb - 5);
        return (1ull << msb) + ((i - 64) % 32) * step + step / 2;
}

static double hist_percentile_us(double p) {
        uint64_t total = 0;
        for (size_t i = 0; i < HIST_BUCKETS; i++)
                total += hist[i];
        if (total == 0)
                return 0;
        uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)total), seen = 0;
        for (size_t i = 0; i < HIST_BUCKETS; i++) {
                seen += hist[i];
                if (seen >= rank && hist[i])
                        return (double)hist_bucket_value(i) / 1000.0;
        }
        return (double)lat_max / 1000.0;
}

/* ---- the server, from /proc ---------------------------------------------- */

static double server_cpu_seconds(void) {
        char path[64], buf[1024];
        (void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)opt.server_pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return NAN;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        (void)fclose(f);
        buf[n] = 0;
        /* Fields after the parenthesised name; utime and stime are 14 and 15. */
        char *p = strrchr(buf, ')');
        if (!p)
                return NAN;
        for (int field = 2; field < 14 && p; field++)
                p = strchr(p + 1, ' ');
        if (!p)
                return NAN;
        char *end;
        unsigned long utime = strtoul(p + 1, &end, 10), stime = strtoul(end, NULL, 10);
        return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static long server_rss_kib(void) {
        char path[64], line[256];
        (void)snprintf(path, sizeof(path), "/proc/%d/status", (int)opt.server_pid);
        FILE *f = fopen(path, "re");
        if (!f)
                return -1;
        long kib = -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "VmRSS:", 6) == 0) {
                        kib = strtol(line + 6, NULL, 10);
                        break;
                }
        (void)fclose(f);
        return kib;
}

static long server_fd_count(void) {
        char path[64];
        (void)snprintf(path, sizeof(path), "/proc/%d/fd", (int)opt.server_pid);
        DIR *d = opendir(path);
        if (!d)
                return -1;
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
                n += e->d_name[0] != '.';
        closedir(d);
        return n;
}

/* ---- frames ----------------------------------------------------------------- */

static const char hex_digits[] = "0123456789abcdef";
static void put_hex(char *p, uint64_t v, int width) {
        for (int i = width - 1; i >= 0; i--, v >>= 4)
                p[i] = hex_digits[v & 15];
}

/* The three protocols' framing of one payload, as sent and as received. */
static void frames_init(void) {
        payload_len = opt.bytes - 1; /* the line protocol's LF makes up B */
        char *payload = malloc(payload_len);
        if (!payload)
                die("out of memory");
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): frames are bytes, not C strings
        memcpy(payload, "0000 0000000000000000 0000000000000000 ", PAYLOAD_HEADER);
        for (size_t i = PAYLOAD_HEADER; i < payload_len; i++)
                payload[i] = (char)('a' + i % 26);

        char rx_header[128], tx_header[128];
        const char *trailer = "\r\n";
        switch (opt.proto) {
        case PROTO_LINE:
                rx_header[0] = tx_header[0] = 0;
                trailer = "\n";
                break;
        case PROTO_RESP:
                (void)snprintf(rx_header, sizeof(rx_header), "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n",
                               strlen(CHANNEL), CHANNEL, payload_len);
                (void)snprintf(tx_header, sizeof(tx_header), "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n",
                               strlen(CHANNEL), CHANNEL, payload_len);
                break;
        case PROTO_NATS:
                (void)snprintf(rx_header, sizeof(rx_header), "MSG %s 1 %zu\r\n", CHANNEL, payload_len);
                (void)snprintf(tx_header, sizeof(tx_header), "PUB %s %zu\r\n", CHANNEL, payload_len);
                break;
        }
        frame_header_len = strlen(rx_header);
        frame_len = frame_header_len + payload_len + strlen(trailer);
        publish_header_len = strlen(tx_header);
        publish_len = publish_header_len + payload_len + strlen(trailer);
        template_frame = malloc(frame_len);
        publish_frame = malloc(publish_len);
        if (!template_frame || !publish_frame)
                die("out of memory");
        memcpy(template_frame, rx_header, frame_header_len);
        memcpy(template_frame + frame_header_len, payload, payload_len);
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): frames are bytes, not C strings
        memcpy(template_frame + frame_header_len + payload_len, trailer, strlen(trailer));
        memcpy(publish_frame, tx_header, publish_header_len);
        memcpy(publish_frame + publish_header_len, payload, payload_len);
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): frames are bytes, not C strings
        memcpy(publish_frame + publish_header_len + payload_len, trailer, strlen(trailer));
        free(payload);
}

/* ---- connections -------------------------------------------------------------- */

static struct sockaddr_storage target;
static socklen_t target_len;

static void resolve_target(const char *spec) {
        char host[256];
        const char *colon = strrchr(spec, ':');
        if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
                die("target must be HOST:PORT, not '%s'", spec);
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = 0;
        char *h = host;
        if (h[0] == '[' && h[strlen(h) - 1] == ']') {
                h[strlen(h) - 1] = 0;
                h++;
        }
        (void)snprintf(target_host, sizeof(target_host), "%s", h);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
        int r = getaddrinfo(h, colon + 1, &hints, &ai);
        if (r != 0)
                die("%s: %s", spec, gai_strerror(r));
        memcpy(&target, ai->ai_addr, ai->ai_addrlen);
        target_len = ai->ai_addrlen;
        freeaddrinfo(ai);
}

/* Connections spread over 127.0.0.1-8 as their source, so that 19,000 of
 * them never run out of ephemeral ports. */
static int conn_socket(uint32_t n) {
        int fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                die("socket: %m (raise the open file limit?)");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (target.ss_family == AF_INET &&
            (ntohl(((struct sockaddr_in *)&target)->sin_addr.s_addr) >> 24) == 127) {
                struct sockaddr_in src = {.sin_family = AF_INET,
                                          .sin_addr.s_addr = htonl(0x7f000001u + n % 8)};
                setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
                if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
                        die("bind 127.0.0.%u: %m", 1 + n % 8);
        }
        if (connect(fd, (struct sockaddr *)&target, target_len) < 0 && errno != EINPROGRESS)
                die("connect %s: %m", opt.target);
        return fd;
}

static void conn_closed(Conn *c, const char *why);

static void conn_watch(Conn *c, uint32_t events) {
        struct epoll_event ev = {.events = events, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0 &&
            (errno != ENOENT || epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0))
                die("epoll_ctl: %m");
        c->watched = events;
}

/* ---- TLS ------------------------------------------------------------------------ */

static bool is_ip_literal(const char *host) {
        unsigned char addr[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static void tls_init(void) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx)
                die_tls(NULL, "SSL_CTX_new");
        if (SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION) != 1)
                die_tls(NULL, "SSL_CTX_set_min_proto_version");
        if (opt.ciphersuites && SSL_CTX_set_ciphersuites(tls_ctx, opt.ciphersuites) != 1)
                die_tls(NULL, "--ciphersuites");
        if (opt.ca_file) {
                if (SSL_CTX_load_verify_locations(tls_ctx, opt.ca_file, NULL) != 1)
                        die_tls(NULL, opt.ca_file);
                X509_VERIFY_PARAM *param = SSL_CTX_get0_param(tls_ctx);
                int ok = is_ip_literal(target_host) ? X509_VERIFY_PARAM_set1_ip_asc(param, target_host)
                                                    : X509_VERIFY_PARAM_set1_host(param, target_host, 0);
                if (ok != 1)
                        die_tls(NULL, "X509_VERIFY_PARAM");
                SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
        } else {
                SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
        }
        /* The publisher retries a write with the same bytes, perhaps more of
         * them and after a realloc (a NATS PONG queued behind). */
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* Idle connections: no buffers held between records, as a server
         * would do; under load they would cost a malloc per record. */
        if (opt.idle)
                SSL_CTX_set_mode(tls_ctx, SSL_MODE_RELEASE_BUFFERS);
        else {
                SSL_CTX_set_read_ahead(tls_ctx, 1);
                SSL_CTX_set_default_read_buffer_len(tls_ctx, TLS_READ_AHEAD_BYTES);
        }
        (void)SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
}

static void tls_new(Conn *c) {
        if (!(c->ssl = SSL_new(tls_ctx)) || SSL_set_fd(c->ssl, c->fd) != 1)
                die_tls(NULL, "SSL_new");
        SSL_set_connect_state(c->ssl);
        if (!is_ip_literal(target_host) && SSL_set_tlsext_host_name(c->ssl, target_host) != 1)
                die_tls(NULL, "SSL_set_tlsext_host_name");
}

/* The events c needs now: readable always; writable while a write waits
 * for room, or a read does. Asked for only when that changes. */
static void tls_watch(Conn *c) {
        uint32_t events = EPOLLIN;
        if ((c->out_off < c->out_len && !c->write_wants_read) || c->read_wants_write)
                events |= EPOLLOUT;
        if (events != c->watched)
                conn_watch(c, events);
}

/* The outcome of a failed SSL_read_ex/SSL_write_ex on c, e its
 * SSL_get_error() and err its errno, both taken at once (another SSL call
 * on c, such as a PONG written, changes what SSL_get_error() says): true
 * to try again when the socket is ready (*want_other: for the other
 * direction), false when the connection is over (reported). */
static bool tls_retry(Conn *c, int e, int err, bool reading, bool *want_other) {
        *want_other = false;
        switch (e) {
        case SSL_ERROR_WANT_READ:
                *want_other = !reading;
                return true;
        case SSL_ERROR_WANT_WRITE:
                *want_other = reading;
                return true;
        case SSL_ERROR_ZERO_RETURN:
                conn_closed(c, "closed by the server (TLS close_notify)");
                break;
        default:
                if (ERR_peek_error() == 0) { /* SSL_ERROR_SYSCALL, nothing queued */
                        conn_closed(c, err ? strerror(err) : "closed by the server (no TLS close_notify)");
                } else {
                        char reason[256];
                        ERR_error_string_n(ERR_peek_error(), reason, sizeof(reason));
                        conn_closed(c, reason);
                }
                break;
        }
        ERR_clear_error();
        return false;
}

/* One step in setting c up, on an event for it: the TCP connect, then with
 * --tls NATS's plaintext INFO and the TLS handshake. True when c is ready
 * for traffic; else it waits for the events it watches. */
static bool conn_setup(Conn *c) {
        if (c->setup == SETUP_TCP) {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        die("getsockopt: %m");
                if (err)
                        die("connect %s: %s", opt.target, strerror(err));
                if (!tls_ctx)
                        return true;
                tls_new(c);
                /* NATS greets in plaintext and then expects the ClientHello. */
                c->setup = opt.proto == PROTO_NATS ? SETUP_INFO : SETUP_TLS;
                if (c->setup == SETUP_INFO) {
                        conn_watch(c, EPOLLIN);
                        return false;
                }
        }
        if (c->setup == SETUP_INFO) {
                char b[CONTROL_MAX];
                ssize_t n = read(c->fd, b, sizeof(b));
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return false;
                if (n <= 0)
                        die("%s: %s before its INFO", opt.target, n < 0 ? strerror(errno) : "closed");
                /* Nothing follows the INFO line until the handshake starts. */
                if (!memchr(b, '\n', (size_t)n))
                        return false;
                c->setup = SETUP_TLS;
        }
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r == 1) {
                if (!tls_params[0])
                        (void)snprintf(tls_params, sizeof(tls_params), "%s/%s", SSL_get_version(c->ssl),
                                       SSL_get_cipher_name(c->ssl));
                return true;
        }
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
                conn_watch(c, EPOLLIN);
                return false;
        case SSL_ERROR_WANT_WRITE:
                conn_watch(c, EPOLLOUT);
                return false;
        default:
                die_tls(c->ssl, "TLS handshake");
        }
}

/* Opens conns[0..n), at most CONNECTS_IN_FLIGHT at a time, and waits
 * until each is connected. With --pid, also never more than --backlog
 * beyond what the server has accepted: a server with a short listen
 * backlog (ncat's is 10) would drop the rest's handshakes and leave them to
 * retransmission timers. */
static void connect_all(Conn *conns, uint32_t n, uint32_t first_source) {
        struct epoll_event evs[256];
        uint32_t started = 0, done = 0;
        long fds0 = opt.server_pid ? server_fd_count() : -1, accepted = 0;
        uint64_t deadline = now_ns() + SETUP_TIMEOUT_NS;
        while (done < n) {
                bool paced = false;
                for (; started < n && started - done < CONNECTS_IN_FLIGHT; started++) {
                        if (fds0 >= 0 && (long)started - accepted >= (long)opt.backlog) {
                                accepted = server_fd_count() - fds0;
                                if ((paced = (long)started - accepted >= (long)opt.backlog))
                                        break;
                        }
                        conns[started].fd = conn_socket(first_source + started);
                        conn_watch(&conns[started], EPOLLOUT);
                }
                int k = epoll_wait(epfd, evs, 256, paced ? 1 : 1000);
                if (k < 0 && errno != EINTR)
                        die("epoll_wait: %m");
                for (int i = 0; i < k; i++) {
                        Conn *c = evs[i].data.ptr;
                        if (!c->connected && conn_setup(c)) {
                                c->connected = true;
                                done++;
                                conn_watch(c, EPOLLIN);
                        }
                }
                if (now_ns() > deadline)
                        die("only %u of %u connections completed in %llu s", done, n,
                            SETUP_TIMEOUT_NS / 1000000000ull);
        }
}

static void send_all(Conn *c, const char *s, size_t len) {
        /* Only for short control commands on a fresh socket: they fit. */
        if (c->ssl) {
                size_t written = 0;
                ERR_clear_error();
                if (SSL_write_ex(c->ssl, s, len, &written) != 1 || written != len)
                        die_tls(c->ssl, "TLS write");
                return;
        }
        ssize_t n = write(c->fd, s, len);
        if (n != (ssize_t)len)
                die("write: %s", n < 0 ? strerror(errno) : "short write");
}

/* ---- receiving ------------------------------------------------------------------ */

/* Eight lowercase hex digits to their value, without a branch or a table:
 * the subscriber's inner loop decodes 36 of them per message. A byte that is
 * not a hex digit yields a wrong value, which the sequence check reports. */
static inline uint32_t hex8(const char *p) {
        uint64_t x;
        memcpy(&x, p, 8);
        x = (x & 0x0f0f0f0f0f0f0f0full) + 9 * ((x >> 6) & 0x0101010101010101ull);
        x = __builtin_bswap64(x); /* first digit in the top byte */
        x = (x | x >> 4) & 0x00ff00ff00ff00ffull;
        x = (x | x >> 8) & 0x0000ffff0000ffffull;
        return (uint32_t)(x | x >> 16);
}

static inline uint64_t hex16(const char *p) {
        return (uint64_t)hex8(p) << 32 | hex8(p + 8);
}

static void subscriber_deliver(Conn *c, const char *payload, uint64_t t_rx) {
        uint64_t p = hex8(payload) >> 16, seq = hex16(payload + 5), ts = hex16(payload + 22);
        if (p >= opt.publishers || payload[4] != ' ' || payload[21] != ' ' || payload[38] != ' ' ||
            memcmp(payload + PAYLOAD_HEADER, template_frame + frame_header_len + PAYLOAD_HEADER,
                   payload_len - PAYLOAD_HEADER) != 0) {
                fail("subscriber %u: malformed message", c->idx);
                return;
        }
        uint64_t *expect = &next_seq[(size_t)c->idx * opt.publishers + p];
        if (seq != *expect) {
                fail("subscriber %u: publisher %" PRIu64 " message %" PRIu64 " arrived, %" PRIu64
                     " expected",
                     c->idx, p, seq, *expect);
                if (seq < *expect)
                        return; /* a duplicate: counted once */
        }
        *expect = seq + 1;
        c->received++;
        deliveries++;
        hist_add(t_rx > ts ? t_rx - ts : 0);
}

/* A control line of the protocol at buf[0..avail): returns its length, 0 if
 * it is not complete yet. */
static size_t subscriber_control(Conn *c, const char *buf, size_t avail) {
        const char *end = memchr(buf, '\n', avail);
        if (!end) {
                if (avail >= CONTROL_MAX)
                        die("subscriber %u: %zu bytes without a line end", c->idx, avail);
                return 0;
        }
        size_t len = (size_t)(end - buf) + 1;
        switch (opt.proto) {
        case PROTO_LINE:
                if (len == strlen(SYNC_LINE) && memcmp(buf, SYNC_LINE, len) == 0)
                        c->ready = true;
                else if (opt.foreign)
                        foreign_lines++;
                else
                        fail("subscriber %u: unexpected line of %zu bytes", c->idx, len);
                return len;
        case PROTO_RESP: {
                /* The SUBSCRIBE reply: *3 $9 subscribe $2 eb :1, as 7 lines. */
                static const char reply[] = "*3\r\n$9\r\nsubscribe\r\n$2\r\n" CHANNEL "\r\n:1\r\n";
                size_t reply_len = sizeof(reply) - 1;
                if (memcmp(buf, reply, avail < reply_len ? avail : reply_len) != 0) {
                        fail("subscriber %u: unexpected reply '%.*s'", c->idx, (int)len - 2, buf);
                        return len;
                }
                if (avail < reply_len)
                        return 0;
                c->ready = true;
                return reply_len;
        }
        case PROTO_NATS:
                if (len >= 4 && memcmp(buf, "PONG", 4) == 0)
                        c->ready = true; /* our PING after SUB: the subscription is in place */
                else if (len >= 4 && memcmp(buf, "PING", 4) == 0)
                        send_all(c, "PONG\r\n", 6);
                else if (len >= 4 && memcmp(buf, "-ERR", 4) == 0)
                        fail("subscriber %u: %.*s", c->idx, (int)len - 2, buf);
                return len; /* INFO, +OK */
        }
        return len;
}

static void subscriber_parse(Conn *c, char *buf, size_t avail, uint64_t t_rx) {
        size_t i = 0;
        while (i < avail) {
                size_t left = avail - i;
                if (left >= frame_len &&
                    (!frame_header_len || memcmp(buf + i, template_frame, frame_header_len) == 0) &&
                    buf[i + frame_len - 1] == '\n') {
                        subscriber_deliver(c, buf + i + frame_header_len, t_rx);
                        i += frame_len;
                        continue;
                }
                bool could_be_data =
                        left < frame_len && memcmp(buf + i, template_frame,
                                                   left < frame_header_len ? left : frame_header_len) == 0;
                if (could_be_data && (opt.proto != PROTO_LINE || buf[i] != 'S'))
                        break;
                size_t n = subscriber_control(c, buf + i, left);
                if (n == 0)
                        break;
                i += n;
        }
        c->pending_len = (uint32_t)(avail - i);
        memcpy(c->pending, buf + i, c->pending_len);
}

static void conn_closed(Conn *c, const char *why) {
        if (c->closed)
                return;
        c->closed = true;
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        if (!c->publisher)
                fail("subscriber %u: connection %s", c->idx, why);
}

static void publisher_pong(Conn *p);
static void publisher_write(Conn *p);

static void conn_read(Conn *c, uint64_t t_rx) {
        if (c->publisher) {
                /* Replies (":N", other publishers' lines) are not measured. */
                ssize_t n = read(c->fd, read_buf, READ_BUFFER_SIZE);
                if (n > 0 && opt.proto == PROTO_NATS && memmem(read_buf, (size_t)n, "PING\r\n", 6))
                        publisher_pong(c);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        conn_closed(c, n == 0 ? "closed by the server" : strerror(errno));
                return;
        }
        memcpy(read_buf, c->pending, c->pending_len);
        ssize_t n = read(c->fd, read_buf + c->pending_len, READ_BUFFER_SIZE);
        if (n > 0)
                subscriber_parse(c, read_buf, c->pending_len + (size_t)n, t_rx);
        else if (n == 0 || errno != EAGAIN)
                conn_closed(c, n == 0 ? "closed by the server" : strerror(errno));
}

/* --tls: everything OpenSSL can give now. Its read-ahead buffer may hold
 * records the socket no longer shows, which raise no epoll event: read
 * until it wants the socket again (SSL_ERROR_WANT_READ). */
static void conn_read_tls(Conn *c, uint64_t t_rx) {
        bool want_write = false;
        ERR_clear_error();
        for (;;) {
                size_t have = 0, n = 0;
                if (!c->publisher) {
                        memcpy(read_buf, c->pending, c->pending_len);
                        have = c->pending_len;
                }
                size_t start = have, end = have + READ_BUFFER_SIZE;
                int ret = 1, e = SSL_ERROR_NONE, err = 0;
                while (have < end && (ret = SSL_read_ex(c->ssl, read_buf + have, end - have, &n)) == 1)
                        have += n;
                if (ret != 1) {
                        err = errno;
                        e = SSL_get_error(c->ssl, ret);
                }
                if (have > start) {
                        if (!c->publisher)
                                subscriber_parse(c, read_buf, have, t_rx);
                        else if (opt.proto == PROTO_NATS && memmem(read_buf, have, "PING\r\n", 6))
                                publisher_pong(c);
                }
                if (c->closed)
                        return;
                if (ret == 1)
                        continue; /* the buffer filled up: OpenSSL may hold more */
                if (!tls_retry(c, e, err, true, &want_write))
                        return;
                break;
        }
        c->read_wants_write = want_write;
        tls_watch(c);
}

/* ---- sending --------------------------------------------------------------------- */

static void publisher_build(Conn *p, uint64_t count, uint64_t t_now) {
        size_t need = p->out_len + count * publish_len;
        p->out = realloc(p->out, need);
        if (!p->out)
                die("out of memory");
        for (uint64_t k = 0; k < count; k++) {
                char *f = p->out + p->out_len;
                memcpy(f, publish_frame, publish_len);
                char *payload = f + publish_header_len;
                put_hex(payload, p->idx, 4);
                put_hex(payload + 5, p->sent++, 16);
                put_hex(payload + 22, t_now, 16);
                p->out_len += publish_len;
        }
}

/* --tls: a write that did not finish is retried with the same bytes, from
 * p->out + p->out_off (SSL_MODE_ENABLE_PARTIAL_WRITE moves out_off on by
 * the records that went). */
static void publisher_write_tls(Conn *p) {
        bool want_read = false;
        ERR_clear_error();
        while (p->out_off < p->out_len) {
                size_t n = 0;
                int ret = SSL_write_ex(p->ssl, p->out + p->out_off, p->out_len - p->out_off, &n);
                if (ret != 1) {
                        int err = errno;
                        if (!tls_retry(p, SSL_get_error(p->ssl, ret), err, false, &want_read))
                                return;
                        break;
                }
                p->out_off += n;
        }
        if (p->out_off == p->out_len)
                p->out_off = p->out_len = 0;
        p->write_wants_read = want_read;
        tls_watch(p);
}

static void publisher_write(Conn *p) {
        if (p->ssl) {
                publisher_write_tls(p);
                return;
        }
        while (p->out_off < p->out_len) {
                ssize_t n = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);
                if (n < 0) {
                        if (errno != EAGAIN)
                                conn_closed(p, strerror(errno));
                        else
                                conn_watch(p, EPOLLIN | EPOLLOUT);
                        return;
                }
                p->out_off += (size_t)n;
        }
        p->out_off = p->out_len = 0;
        conn_watch(p, EPOLLIN);
}

/* NATS's keep-alive answer, queued behind what the publisher has not
 * written yet: never inside a frame. */
static void publisher_pong(Conn *p) {
        p->out = realloc(p->out, p->out_len + 6);
        if (!p->out)
                die("out of memory");
        memcpy(p->out + p->out_len, "PONG\r\n", 6);
        p->out_len += 6;
        publisher_write(p);
}

/* The fewest messages of publisher pi any open subscriber has seen. */
static uint64_t slowest_subscriber(uint32_t pi) {
        uint64_t min = UINT64_MAX;
        for (uint32_t s = 0; s < opt.subscribers; s++)
                if (!subs[s].closed && next_seq[(size_t)s * opt.publishers + pi] < min)
                        min = next_seq[(size_t)s * opt.publishers + pi];
        return min == UINT64_MAX ? 0 : min;
}

/* ---- the phases ------------------------------------------------------------------ */

/* --tls: an event for c. A write that wants the socket readable, or a read
 * that wants it writable, goes on when that comes. */
static void tls_event(Conn *c, uint32_t events, uint64_t t_rx) {
        bool readable = events & (EPOLLIN | EPOLLERR | EPOLLHUP), writable = events & EPOLLOUT;
        if (c->out_off < c->out_len && (writable || (readable && c->write_wants_read)))
                publisher_write_tls(c);
        if (!c->closed && (readable || (writable && c->read_wants_write)))
                conn_read_tls(c, t_rx);
        if (!c->closed)
                tls_watch(c);
}

static void loop_once(int timeout_ms) {
        static struct epoll_event evs[1024];
        int k = epoll_wait(epfd, evs, 1024, timeout_ms);
        if (k < 0 && errno != EINTR)
                die("epoll_wait: %m");
        uint64_t t_rx = now_ns();
        for (int i = 0; i < k; i++) {
                Conn *c = evs[i].data.ptr;
                if (c->closed)
                        continue;
                if (c->ssl) {
                        tls_event(c, evs[i].events, t_rx);
                        continue;
                }
                if (evs[i].events & EPOLLOUT)
                        publisher_write(c);
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                        conn_read(c, t_rx);
        }
}

static uint32_t subscribers_ready(void) {
        uint32_t n = 0;
        for (uint32_t s = 0; s < opt.subscribers; s++)
                n += subs[s].ready;
        return n;
}

static void subscribe_all(void) {
        char cmd[256];
        for (uint32_t s = 0; s < opt.subscribers; s++) {
                if (opt.proto == PROTO_RESP) {
                        (void)snprintf(cmd, sizeof(cmd), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n",
                                       strlen(CHANNEL), CHANNEL);
                        send_all(&subs[s], cmd, strlen(cmd));
                } else if (opt.proto == PROTO_NATS) {
                        (void)snprintf(
                                cmd, sizeof(cmd),
                                "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB %s 1\r\nPING\r\n",
                                CHANNEL);
                        send_all(&subs[s], cmd, strlen(cmd));
                }
        }
        for (uint32_t p = 0; p < opt.publishers; p++)
                if (opt.proto == PROTO_NATS)
                        send_all(
                                &pubs[p],
                                "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n",
                                strlen("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n"));
        /* The line protocol has no subscription: a relayed sync line proves
         * the server has accepted the subscriber. */
        uint64_t deadline = now_ns() + SETUP_TIMEOUT_NS, next_sync = 0;
        while (subscribers_ready() < opt.subscribers) {
                if (errors)
                        die("while subscribing: %s", first_error);
                if (now_ns() > deadline)
                        die("only %u of %u subscribers ready after %llu s", subscribers_ready(),
                            opt.subscribers, SETUP_TIMEOUT_NS / 1000000000ull);
                if (opt.proto == PROTO_LINE && now_ns() >= next_sync) {
                        send_all(&pubs[0], SYNC_LINE, strlen(SYNC_LINE));
                        next_sync = now_ns() + 20 * 1000000ull;
                }
                loop_once(10);
        }
}

typedef struct Result {
        double seconds, cpu_seconds;
        uint64_t sent, lost;
        long rss_kib;
} Result;

static Result run_traffic(void) {
        Result res = {0};
        uint64_t window = opt.window_bytes / opt.bytes ? opt.window_bytes / opt.bytes : 1;
        uint64_t batch = SEND_BATCH_BYTES / publish_len ? SEND_BATCH_BYTES / publish_len : 1;
        double cpu0 = server_cpu_seconds();
        uint64_t t0 = now_ns(), send_end = t0 + (uint64_t)(opt.duration * 1e9), t_last = t0;
        uint64_t total_sent = 0;
        bool sending = true;
        for (;;) {
                uint64_t t = now_ns();
                if (sending &&
                    (t >= send_end || (opt.messages && total_sent >= opt.messages * opt.publishers))) {
                        sending = false;
                }
                uint64_t due = UINT64_MAX;
                if (sending && opt.rate > 0) {
                        uint64_t target_sent = (uint64_t)((double)(t - t0) * 1e-9 * opt.rate) + 1;
                        due = target_sent > total_sent ? target_sent - total_sent : 0;
                }
                for (uint32_t pi = 0; sending && pi < opt.publishers && due > 0; pi++) {
                        Conn *p = &pubs[pi];
                        if (p->closed || p->out_len)
                                continue;
                        uint64_t in_flight = p->sent - slowest_subscriber(pi);
                        uint64_t n = in_flight < window ? window - in_flight : 0;
                        if (opt.rate > 0)
                                n = n < (due + opt.publishers - 1 - pi) / opt.publishers
                                            ? n
                                            : (due + opt.publishers - 1 - pi) / opt.publishers;
                        if (n > batch)
                                n = batch;
                        if (opt.messages && p->sent + n > opt.messages)
                                n = opt.messages - p->sent;
                        if (n == 0)
                                continue;
                        publisher_build(p, n, t);
                        total_sent += n;
                        due -= n < due ? n : due;
                        publisher_write(p);
                }
                if (!sending) {
                        uint64_t missing = 0;
                        for (uint32_t s = 0; s < opt.subscribers; s++)
                                for (uint32_t pi = 0; !subs[s].closed && pi < opt.publishers; pi++)
                                        missing += pubs[pi].sent - next_seq[(size_t)s * opt.publishers + pi];
                        /* Slow servers get all the time they need; a stalled one
                         * is given up on (and its missing messages are lost). */
                        if (missing == 0 || t >= (t_last > send_end ? t_last : send_end) + STALL_TIMEOUT_NS)
                                break;
                }
                uint64_t before = deliveries;
                loop_once(opt.rate > 0 || !sending ? 1 : 100);
                if (deliveries != before)
                        t_last = now_ns();
        }
        res.cpu_seconds = server_cpu_seconds() - cpu0;
        res.rss_kib = server_rss_kib();
        res.seconds = (double)(t_last - t0) * 1e-9;
        for (uint32_t pi = 0; pi < opt.publishers; pi++)
                res.sent += pubs[pi].sent;
        for (uint32_t s = 0; s < opt.subscribers; s++)
                for (uint32_t pi = 0; pi < opt.publishers; pi++)
                        res.lost += pubs[pi].sent - next_seq[(size_t)s * opt.publishers + pi];
        return res;
}

static const char *proto_name(Proto p) {
        return p == PROTO_LINE ? "line" : p == PROTO_RESP ? "resp" : "nats";
}

static int run_idle(void) {
        if (!opt.server_pid)
                die("--idle needs --pid");
        long rss0 = server_rss_kib(), fds0 = server_fd_count();
        Conn *conns = calloc(opt.idle, sizeof(Conn));
        if (!conns)
                die("out of memory");
        connect_all(conns, opt.idle, 0);
        /* Connected is not accepted: wait until the server holds them all. */
        uint64_t deadline = now_ns() + SETUP_TIMEOUT_NS;
        long fds;
        while ((fds = server_fd_count()) < fds0 + (long)opt.idle) {
                if (now_ns() > deadline) {
                        printf("RESULT mode=idle proto=%s conns=%u accepted=%ld held=no tls=%s\n",
                               proto_name(opt.proto), opt.idle, fds - fds0, tls_ctx ? tls_params : "no");
                        return 1;
                }
                struct timespec ts = {0, 50L * 1000000};
                nanosleep(&ts, NULL);
        }
        /* Let the server finish whatever it does on accept. */
        struct timespec settle = {1, 0};
        nanosleep(&settle, NULL);
        bool alive = true;
        for (uint32_t i = 0; i < opt.idle; i++) {
                char b[4096];
                if (!conns[i].ssl) {
                        if (read(conns[i].fd, b, sizeof(b)) == 0)
                                alive = false;
                        continue;
                }
                /* Session tickets, perhaps: read until OpenSSL wants more. */
                size_t n;
                ERR_clear_error();
                while (SSL_read_ex(conns[i].ssl, b, sizeof(b), &n) == 1)
                        ;
                int e = SSL_get_error(conns[i].ssl, 0);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                        alive = false;
                ERR_clear_error();
        }
        long rss1 = server_rss_kib();
        double per_conn = (double)(rss1 - rss0) * 1024.0 / opt.idle;
        if (!opt.quiet)
                (void)fprintf(stderr,
                              "%u idle %sconnections: server RSS %ld -> %ld KiB, %.0f B per connection\n",
                              opt.idle, tls_ctx ? "TLS " : "", rss0, rss1, per_conn);
        printf("RESULT mode=idle proto=%s conns=%u held=%s rss0_kib=%ld rss_kib=%ld bytes_per_conn=%.0f "
               "tls=%s\n",
               proto_name(opt.proto), opt.idle, alive ? "yes" : "no", rss0, rss1, per_conn,
               tls_ctx ? tls_params : "no");
        for (uint32_t i = 0; i < opt.idle; i++) {
                SSL_free(conns[i].ssl);
                (void)close(conns[i].fd);
        }
        free(conns);
        return alive ? 0 : 1;
}

static void usage(FILE *f) {
        (void)fputs("Usage: ebbench [OPTION]... HOST:PORT\n"
                    "Load generator for epoll-broadcaster, Redis pub/sub, NATS and line relays.\n\n"
                    "  -p, --protocol=line|resp|nats  what the server speaks (default line)\n"
                    "  -s, --subscribers=S            subscriber connections (default 10)\n"
                    "  -P, --publishers=P             publisher connections (default 1)\n"
                    "  -b, --bytes=B                  message size, LF included (default 64, at least 41)\n"
                    "  -m, --messages=M               messages per publisher (default: until -d ends)\n"
                    "  -d, --duration=SECONDS         how long publishers send (default 2)\n"
                    "  -r, --rate=R                   send R messages/s in all (default: full speed)\n"
                    "  -w, --window=BYTES             full speed: bytes in flight per publisher (default "
                    "262144)\n"
                    "  -i, --idle=N                   open N idle connections, report server RSS per "
                    "connection\n"
                    "      --pid=PID                  the server's PID, for its CPU time and RSS\n"
                    "      --backlog=N                with --pid: at most N connections waiting for\n"
                    "                                 the server to accept them (default 256)\n"
                    "      --foreign                  line protocol: skip other clients' lines (shorter\n"
                    "                                 than 4 KiB) instead of failing on them\n"
                    "      --tls                      TLS on every connection (OpenSSL); the server's\n"
                    "                                 certificate is not verified unless --ca is given\n"
                    "      --ca=FILE                  verify the server's certificate against the CAs in\n"
                    "                                 FILE (PEM) and HOST; implies --tls\n"
                    "      --ciphersuites=LIST        TLS 1.3 suites to offer, OpenSSL syntax (default:\n"
                    "                                 OpenSSL's; the server picks among them)\n"
                    "  -q, --quiet                    only the RESULT line\n"
                    "  -h, --help\n\n"
                    "Exit status: 0 when every message arrived exactly once, whole and in order;\n"
                    "1 when not; 2 on a usage or setup error.\n",
                    f);
}

static unsigned long parse_number(const char *s, const char *what, unsigned long min, unsigned long max) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v < min || v > max || s[0] == '-')
                die("%s must be a number from %lu to %lu, not '%s'", what, min, max, s);
        return v;
}

static void parse_options(int argc, char **argv) {
        static const struct option longopts[] = {
                {"protocol", required_argument, NULL, 'p'},
                {"subscribers", required_argument, NULL, 's'},
                {"publishers", required_argument, NULL, 'P'},
                {"bytes", required_argument, NULL, 'b'},
                {"messages", required_argument, NULL, 'm'},
                {"duration", required_argument, NULL, 'd'},
                {"rate", required_argument, NULL, 'r'},
                {"window", required_argument, NULL, 'w'},
                {"idle", required_argument, NULL, 'i'},
                {"pid", required_argument, NULL, 'I'},
                {"backlog", required_argument, NULL, 'B'},
                {"foreign", no_argument, NULL, 'F'},
                {"tls", no_argument, NULL, 'T'},
                {"ca", required_argument, NULL, 'C'},
                {"ciphersuites", required_argument, NULL, 'S'},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        int ch;
        while ((ch = getopt_long(argc, argv, "p:s:P:b:m:d:r:w:i:qh", longopts, NULL)) != -1) {
                switch (ch) {
                case 'p':
                        if (!strcmp(optarg, "line"))
                                opt.proto = PROTO_LINE;
                        else if (!strcmp(optarg, "resp"))
                                opt.proto = PROTO_RESP;
                        else if (!strcmp(optarg, "nats"))
                                opt.proto = PROTO_NATS;
                        else
                                die("protocol must be line, resp or nats, not '%s'", optarg);
                        break;
                case 's':
                        opt.subscribers = (uint32_t)parse_number(optarg, "--subscribers", 1, 100000);
                        break;
                case 'P':
                        opt.publishers = (uint32_t)parse_number(optarg, "--publishers", 1, 1000);
                        break;
                case 'b':
                        opt.bytes = (uint32_t)parse_number(optarg, "--bytes", MIN_MESSAGE_BYTES,
                                                           MAX_MESSAGE_BYTES);
                        break;
                case 'm':
                        opt.messages = parse_number(optarg, "--messages", 1, ULONG_MAX);
                        break;
                case 'd':
                        opt.duration = strtod(optarg, NULL);
                        if (!(opt.duration > 0 && opt.duration < 3600))
                                die("--duration must be between 0 and 3600 seconds, not '%s'", optarg);
                        break;
                case 'r':
                        opt.rate = (double)parse_number(optarg, "--rate", 1, 100000000);
                        break;
                case 'w':
                        opt.window_bytes = parse_number(optarg, "--window", 1, 1ul << 32);
                        break;
                case 'i':
                        opt.idle = (uint32_t)parse_number(optarg, "--idle", 1, 1000000);
                        break;
                case 'B':
                        opt.backlog = (uint32_t)parse_number(optarg, "--backlog", 1, 65535);
                        break;
                case 'I':
                        opt.server_pid = (pid_t)parse_number(optarg, "--pid", 1, INT_MAX);
                        break;
                case 'q':
                        opt.quiet = true;
                        break;
                case 'F':
                        opt.foreign = true;
                        break;
                case 'T':
                        opt.tls = true;
                        break;
                case 'C':
                        opt.tls = true;
                        opt.ca_file = optarg;
                        break;
                case 'S':
                        opt.ciphersuites = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        usage(stderr);
                        exit(2);
                }
        }
        if (optind + 1 != argc) {
                usage(stderr);
                exit(2);
        }
        opt.target = argv[optind];
}

int main(int argc, char **argv) {
        parse_options(argc, argv);
        (void)signal(SIGPIPE, SIG_IGN);
        /* Thousands of sockets: take all the descriptors we may. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        resolve_target(opt.target);
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0)
                die("epoll_create1: %m");
        if (opt.tls)
                tls_init();
        if (opt.idle)
                return run_idle();

        frames_init();
        subs = calloc(opt.subscribers, sizeof(Conn));
        pubs = calloc(opt.publishers, sizeof(Conn));
        next_seq = calloc((size_t)opt.subscribers * opt.publishers, sizeof(uint64_t));
        if (!subs || !pubs || !next_seq)
                die("out of memory");
        size_t pending_cap = frame_len > CONTROL_MAX ? frame_len : CONTROL_MAX;
        for (uint32_t s = 0; s < opt.subscribers; s++) {
                subs[s].idx = s;
                if (!(subs[s].pending = malloc(pending_cap)))
                        die("out of memory");
        }
        for (uint32_t p = 0; p < opt.publishers; p++) {
                pubs[p].idx = p;
                pubs[p].publisher = true;
        }
        connect_all(subs, opt.subscribers, 0);
        connect_all(pubs, opt.publishers, opt.subscribers);
        subscribe_all();

        Result r = run_traffic();
        uint64_t expected = r.sent * opt.subscribers;
        double dps = r.seconds > 0 ? (double)deliveries / r.seconds : 0;
        double cpu_per_m = deliveries ? r.cpu_seconds * 1e6 / (double)deliveries : 0;
        if (!opt.quiet) {
                (void)fprintf(stderr,
                              "%s%s: %u subscribers, %u publishers, %u-byte messages%s: %" PRIu64
                              " sent, %" PRIu64 " of %" PRIu64 " delivered in %.3f s = %.0f deliveries/s\n"
                              "latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
                              proto_name(opt.proto), tls_ctx ? " over TLS" : "", opt.subscribers,
                              opt.publishers, opt.bytes, opt.rate > 0 ? " at a fixed rate" : "", r.sent,
                              deliveries, expected, r.seconds, dps, hist_percentile_us(50),
                              hist_percentile_us(99), hist_percentile_us(99.9), (double)lat_max / 1000.0);
                if (opt.server_pid)
                        (void)fprintf(stderr,
                                      "server: %.3f s CPU = %.3f s per million deliveries, RSS %ld KiB\n",
                                      r.cpu_seconds, cpu_per_m, r.rss_kib);
                if (r.lost || errors)
                        (void)fprintf(stderr, "FAILED: %" PRIu64 " lost, %" PRIu64 " errors%s%s\n", r.lost,
                                      errors, errors ? "; first: " : "", first_error);
        }
        printf("RESULT mode=%s proto=%s subs=%u pubs=%u bytes=%u sent=%" PRIu64 " deliveries=%" PRIu64
               " seconds=%.4f dps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f lost=%" PRIu64
               " errors=%" PRIu64 " foreign=%" PRIu64 " cpu_s=%.3f cpu_s_per_M=%.4f rss_kib=%ld tls=%s\n",
               opt.rate > 0 ? "rate" : "full", proto_name(opt.proto), opt.subscribers, opt.publishers,
               opt.bytes, r.sent, deliveries, r.seconds, dps, hist_percentile_us(50), hist_percentile_us(99),
               hist_percentile_us(99.9), (double)lat_max / 1000.0, r.lost, errors, foreign_lines,
               opt.server_pid ? r.cpu_seconds : 0.0, opt.server_pid ? cpu_per_m : 0.0,
               opt.server_pid ? r.rss_kib : 0L, tls_ctx ? tls_params : "no");
        return r.lost || errors ? 1 : 0;
}
