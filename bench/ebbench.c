/* ebbench: load generator for epoll-broadcaster and the servers it is
 * compared with (Redis pub/sub, NATS, ncat --broker, Mosquitto's MQTT).
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
 * With --ws every connection is a WebSocket client (RFC 6455): after TCP
 * (and TLS) an HTTP upgrade with a random key, the 101 and its
 * Sec-WebSocket-Accept checked; every frame sent is masked. The line
 * protocol over WebSocket is epoll-broadcaster's: one text message a
 * message, without the LF, each checked to be exactly one message. A message
 * may come in fragments (the daemon splits one whose header would hold an LF
 * byte): they are put together and count as the one message they are. Pongs
 * are ignored (ebbench never pings; the daemon follows every message with an
 * unsolicited one, payload "\n"). NATS and MQTT are byte streams inside
 * binary frames, which may cut or join their packets anywhere: their frames
 * are unwrapped into a stream first.
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
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef enum Proto { PROTO_LINE, PROTO_RESP, PROTO_NATS, PROTO_MQTT } Proto;

/* Payload layout: "PPPP SSSSSSSSSSSSSSSS TTTTTTTTTTTTTTTT " then filler.
 * Fixed-width hex parses without scanning. */
#define PAYLOAD_HEADER 39
#define MIN_MESSAGE_BYTES (PAYLOAD_HEADER + 2)
#define MAX_MESSAGE_BYTES (1024L * 1024)
#define CONTROL_MAX 4096 /* longest control line kept across reads (NATS INFO) */
#define READ_BUFFER_SIZE ((size_t)256 * 1024)
/* A publisher builds at most this much per write, in messages of B bytes as
 * the window counts them (not in bytes of its protocol's framing): every
 * protocol sends the same messages a write, and a 64 KiB window one write. */
#define SEND_BATCH_BYTES ((size_t)64 * 1024)
#define CONNECTS_IN_FLIGHT 256 /* below any listen backlog: no SYN is dropped */
#define SYNC_WORD "SYNC"
#define SYNC_LINE SYNC_WORD "\n"
#define CHANNEL "eb"
/* A server that has not taken every connection by then never will. */
#define SETUP_TIMEOUT_NS (20 * 1000000000ull)
/* No delivery for this long after sending ended: what is missing is lost. */
#define STALL_TIMEOUT_NS (5 * 1000000000ull)
/* --tls: OpenSSL reads ahead into a buffer this large (several records per
 * read(2)), so a subscriber drains a busy socket in few system calls. */
#define TLS_READ_AHEAD_BYTES ((size_t)64 * 1024)
/* --ws: a frame header as a server sends it is at most 10 bytes, a control
 * frame at most 2 + 125: an unfinished one is carried to the next read
 * whole. A client's header adds the 4-byte masking key. */
#define WS_HEADER_MAX 10
#define WS_CARRY_MAX (2 + 125)
#define WS_OP_CONTINUATION 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xa
/* MQTT: a keep-alive longer than any run, so no PINGREQ is ever due
 * (Mosquitto refuses 0, "none", from a 3.1.1 client). */
#define MQTT_KEEPALIVE 0xffff

/* How far a connection is from carrying traffic (connect_all). */
typedef enum Setup {
        SETUP_TCP,  /* connect(2) in progress */
        SETUP_INFO, /* --tls, NATS: waiting for the plaintext INFO line */
        SETUP_TLS,  /* --tls: client handshake in progress */
        SETUP_WS,   /* --ws: upgrade request sent, waiting for the 101 */
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
        /* --ws, stream protocols: what is left of the data frame being
         * unwrapped, and the unfinished frame header or control frame. */
        uint64_t ws_left;
        uint8_t ws_carry_len;
        char ws_carry[WS_CARRY_MAX];
        char ws_accept[32]; /* --ws: the Sec-WebSocket-Accept expected */
        /* --ws, line protocol: the fragmented message being put together
         * (ws_msg_opcode 0: none), in ws_msg (allocated at the first one). */
        uint8_t ws_msg_opcode;
        uint32_t ws_msg_len;
        char *ws_msg;
        uint64_t received; /* messages (subscribers) */
        /* Bytes queued, not yet written: a publisher's messages, and any
         * connection's commands and keep-alive answers. */
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
        bool ws;
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
static char read_buf[READ_BUFFER_SIZE + CONTROL_MAX + MAX_MESSAGE_BYTES + WS_CARRY_MAX + 64];
static char *template_frame; /* one data frame as a subscriber receives it */
static size_t frame_len, frame_header_len, payload_len;
static bool frame_has_trailer; /* it ends in an LF; else its header says how long it is */
static size_t pending_cap;     /* of a subscriber's pending: the longest frame it carries */
static char *publish_frame;    /* one data frame as a publisher sends it */
static size_t publish_len, publish_header_len;
static size_t publish_ws_len; /* --ws: the frame header and masking key before the message */
static uint64_t rng_state;    /* --ws: masking keys and handshake keys */
static uint64_t errors, deliveries, foreign_lines;
static uint64_t ws_fragmented; /* --ws, line: messages that came in more than one frame */
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

/* MQTT's remaining length: 7 bits a byte, least significant first. */
static size_t mqtt_put_length(unsigned char *p, size_t len) {
        size_t n = 0;
        do {
                p[n] = (unsigned char)(len & 127);
                len >>= 7;
                if (len)
                        p[n] |= 128;
                n++;
        } while (len);
        return n;
}

/* An unfragmented frame's header for a payload of len bytes; masked, as a
 * client's, with room for the key after it (ws_mask() fills it). */
static size_t ws_put_header(unsigned char *h, unsigned opcode, uint64_t len, bool masked) {
        size_t n = 2;
        h[0] = (unsigned char)(0x80 | opcode);
        if (len < 126) {
                h[1] = (unsigned char)len;
        } else if (len <= 0xffff) {
                h[1] = 126;
                n = 4;
        } else {
                h[1] = 127;
                n = 10;
        }
        for (size_t i = 2; i < n; i++)
                h[i] = (unsigned char)(len >> (8 * (n - 1 - i)));
        if (masked) {
                h[1] |= 0x80;
                memset(h + n, 0, 4);
                n += 4;
        }
        return n;
}

/* The protocols' framing of one payload, as sent and as received. */
static void frames_init(void) {
        payload_len = opt.bytes - 1; /* the line protocol's LF makes up B */
        char *payload = malloc(payload_len);
        if (!payload)
                die("out of memory");
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): frames are bytes, not C strings
        memcpy(payload, "0000 0000000000000000 0000000000000000 ", PAYLOAD_HEADER);
        for (size_t i = PAYLOAD_HEADER; i < payload_len; i++)
                payload[i] = (char)('a' + i % 26);

        /* tx has room in front for a client's WebSocket header. */
        char rx[128], tx_buf[WS_HEADER_MAX + 4 + 128], *tx = tx_buf + WS_HEADER_MAX + 4;
        size_t rx_len = 0, tx_len = 0, tx_size = sizeof(tx_buf) - (WS_HEADER_MAX + 4);
        const char *trailer = "\r\n";
        switch (opt.proto) {
        case PROTO_LINE:
                trailer = "\n";
                break;
        case PROTO_RESP:
                rx_len = (size_t)snprintf(rx, sizeof(rx), "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%zu\r\n",
                                          strlen(CHANNEL), CHANNEL, payload_len);
                tx_len = (size_t)snprintf(tx, tx_size, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n",
                                          strlen(CHANNEL), CHANNEL, payload_len);
                break;
        case PROTO_NATS:
                rx_len = (size_t)snprintf(rx, sizeof(rx), "MSG %s 1 %zu\r\n", CHANNEL, payload_len);
                tx_len = (size_t)snprintf(tx, tx_size, "PUB %s %zu\r\n", CHANNEL, payload_len);
                break;
        case PROTO_MQTT:
                /* PUBLISH at QoS 0 (no packet identifier), the same both
                 * ways; its remaining length says where the payload ends. */
                rx[0] = 0x30;
                rx_len = 1 + mqtt_put_length((unsigned char *)rx + 1, 2 + strlen(CHANNEL) + payload_len);
                rx[rx_len++] = 0;
                rx[rx_len++] = (char)strlen(CHANNEL);
                memcpy(rx + rx_len, CHANNEL, strlen(CHANNEL));
                rx_len += strlen(CHANNEL);
                memcpy(tx, rx, rx_len);
                tx_len = rx_len;
                trailer = "";
                break;
        }
        size_t trailer_len = strlen(trailer);
        if (opt.ws && opt.proto == PROTO_LINE) {
                /* A message is a text frame without the LF: its length ends it. */
                trailer_len = 0;
                rx_len = ws_put_header((unsigned char *)rx, WS_OP_TEXT, payload_len, false);
        }
        frame_has_trailer = trailer_len > 0;
        publish_ws_len = 0;
        if (opt.ws) {
                /* A publisher sends each message as one masked frame. */
                unsigned char h[WS_HEADER_MAX + 4];
                publish_ws_len = ws_put_header(h, opt.proto == PROTO_LINE ? WS_OP_TEXT : WS_OP_BINARY,
                                               tx_len + payload_len + trailer_len, true);
                tx -= publish_ws_len;
                memcpy(tx, h, publish_ws_len);
                tx_len += publish_ws_len;
        }
        frame_header_len = rx_len;
        frame_len = frame_header_len + payload_len + trailer_len;
        publish_header_len = tx_len;
        publish_len = publish_header_len + payload_len + trailer_len;
        template_frame = malloc(frame_len);
        publish_frame = malloc(publish_len);
        if (!template_frame || !publish_frame)
                die("out of memory");
        memcpy(template_frame, rx, frame_header_len);
        memcpy(template_frame + frame_header_len, payload, payload_len);
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): frames are bytes, not C strings
        memcpy(template_frame + frame_header_len + payload_len, trailer, trailer_len);
        memcpy(publish_frame, tx, publish_header_len);
        memcpy(publish_frame + publish_header_len, payload, payload_len);
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): frames are bytes, not C strings
        memcpy(publish_frame + publish_header_len + payload_len, trailer, trailer_len);
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

static bool ws_request(Conn *c);
static bool ws_response(Conn *c);

/* One step in setting c up, on an event for it: the TCP connect, then with
 * --tls NATS's plaintext INFO and the TLS handshake, then with --ws the
 * upgrade. True when c is ready for traffic; else it waits for the events
 * it watches. */
static bool conn_setup(Conn *c) {
        if (c->setup == SETUP_TCP) {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        die("getsockopt: %m");
                if (err)
                        die("connect %s: %s", opt.target, strerror(err));
                if (!tls_ctx)
                        return ws_request(c);
                tls_new(c);
                /* NATS greets in plaintext and then expects the ClientHello
                 * (over WebSocket its INFO comes after the upgrade). */
                c->setup = opt.proto == PROTO_NATS && !opt.ws ? SETUP_INFO : SETUP_TLS;
                if (c->setup == SETUP_INFO) {
                        conn_watch(c, EPOLLIN);
                        return false;
                }
        }
        if (c->setup == SETUP_WS)
                return ws_response(c);
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
                return ws_request(c);
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
        /* Only for the upgrade request on a fresh socket: it fits. */
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

/* ---- WebSocket ----------------------------------------------------------------- */

/* xorshift64*, seeded from the kernel: masking keys must be unpredictable
 * to what sits between client and server (RFC 6455 10.3), which is all a
 * load generator needs of them; the kernel's generator per frame would
 * cost a system call a message. */
static uint32_t rng_next(void) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* Draws a masking key into key[0..4) and masks the n bytes after it, eight
 * at a time (the key repeats every four bytes, so twice in a word). */
static void ws_mask(char *key, size_t n) {
        uint32_t k = rng_next();
        memcpy(key, &k, 4);
        uint64_t k8 = (uint64_t)k << 32 | k;
        char *p = key + 4;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
                uint64_t x;
                memcpy(&x, p + i, 8);
                x ^= k8;
                memcpy(p + i, &x, 8);
        }
        for (; i < n; i++)
                p[i] = (char)(p[i] ^ key[i & 3]);
}

/* --ws: the upgrade request with a fresh random key; the
 * Sec-WebSocket-Accept the server must answer with is kept in c. False: c
 * waits for the 101. Without --ws, true: c is ready. */
static bool ws_request(Conn *c) {
        if (!opt.ws)
                return true;
        unsigned char key[16], digest[EVP_MAX_MD_SIZE];
        for (size_t i = 0; i < sizeof(key); i += 4) {
                uint32_t r = rng_next();
                memcpy(key + i, &r, 4);
        }
        char key64[32], concat[96], req[512];
        (void)EVP_EncodeBlock((unsigned char *)key64, key, sizeof(key));
        int n = snprintf(concat, sizeof(concat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key64);
        unsigned digest_len = 0;
        if (EVP_Digest(concat, (size_t)n, digest, &digest_len, EVP_sha1(), NULL) != 1)
                die_tls(NULL, "SHA-1");
        (void)EVP_EncodeBlock((unsigned char *)c->ws_accept, digest, (int)digest_len);
        n = snprintf(req, sizeof(req),
                     "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.target, key64, opt.proto == PROTO_MQTT ? "Sec-WebSocket-Protocol: mqtt\r\n" : "");
        send_all(c, req, (size_t)n);
        c->setup = SETUP_WS;
        conn_watch(c, EPOLLIN);
        return false;
}

/* The server's answer to the upgrade, once its head is all there. It is
 * looked at in place (MSG_PEEK, SSL_peek_ex) and taken off only whole, so
 * that what follows it (NATS's INFO) is read as traffic. A head that came
 * in two pieces is looked at again on every epoll round until the rest
 * comes; the servers here write theirs at once. True when upgraded. */
static bool ws_response(Conn *c) {
        char b[CONTROL_MAX];
        size_t n = 0;
        if (c->ssl) {
                ERR_clear_error();
                int r = SSL_peek_ex(c->ssl, b, sizeof(b) - 1, &n);
                if (r != 1) {
                        if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ)
                                die_tls(c->ssl, "before the 101");
                        return false;
                }
        } else {
                ssize_t r = recv(c->fd, b, sizeof(b) - 1, MSG_PEEK);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                        return false;
                if (r <= 0)
                        die("%s: %s before the 101", opt.target, r < 0 ? strerror(errno) : "closed");
                n = (size_t)r;
        }
        b[n] = 0;
        char *end = memmem(b, n, "\r\n\r\n", 4);
        if (!end) {
                if (n == sizeof(b) - 1)
                        die("%s: an upgrade answer longer than %zu bytes", opt.target, n);
                return false;
        }
        end[2] = 0; /* the head, each line ending in CR LF */
        if (strncmp(b, "HTTP/1.1 101 ", 13) != 0)
                die("%s: WebSocket upgrade refused: %.*s", opt.target, (int)strcspn(b, "\r"), b);
        bool accepted = false;
        for (const char *line = b; (line = strstr(line, "\r\n")) && line[2];) {
                line += 2;
                if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) != 0)
                        continue;
                const char *v = line + 21 + strspn(line + 21, " \t");
                size_t len = strcspn(v, " \t\r");
                accepted = len == strlen(c->ws_accept) && memcmp(v, c->ws_accept, len) == 0;
        }
        if (!accepted)
                die("%s: the 101 does not carry Sec-WebSocket-Accept: %s", opt.target, c->ws_accept);
        size_t head = (size_t)(end - b) + 4;
        for (size_t got = 0; got < head; got += n) {
                if (c->ssl) {
                        if (SSL_read_ex(c->ssl, b, head - got, &n) != 1)
                                die_tls(c->ssl, "reading the 101");
                } else {
                        ssize_t r = read(c->fd, b, head - got);
                        if (r <= 0)
                                die("%s: reading the 101: %s", opt.target,
                                    r < 0 ? strerror(errno) : "closed");
                        n = (size_t)r;
                }
        }
        return true;
}

typedef struct WsHeader {
        uint64_t len; /* of the payload */
        uint8_t opcode;
        bool fin;
} WsHeader;

/* The header of a server's frame at buf[0..avail): its length, 0 if it is
 * not all there yet or breaks RFC 6455 (then c is closed, and reported). */
static size_t ws_header(Conn *c, const char *buf, size_t avail, WsHeader *h) {
        const unsigned char *b = (const unsigned char *)buf;
        if (avail < 2)
                return 0;
        size_t n = (b[1] & 127) == 126 ? 4 : (b[1] & 127) == 127 ? 10 : 2;
        if (avail < n)
                return 0;
        h->fin = b[0] & 0x80;
        h->opcode = b[0] & 15;
        h->len = b[1] & 127;
        if (n > 2)
                h->len = 0;
        for (size_t i = 2; i < n; i++)
                h->len = h->len << 8 | b[i];
        const char *error = NULL;
        if (b[0] & 0x70)
                error = "RSV bits set";
        else if (b[1] & 0x80)
                error = "a masked frame from the server";
        else if (h->len >> 63)
                error = "a 64-bit length with its top bit set";
        else if ((h->opcode > WS_OP_BINARY && h->opcode < WS_OP_CLOSE) || h->opcode > WS_OP_PONG)
                error = "an unknown opcode";
        else if (h->opcode >= WS_OP_CLOSE && (h->len > 125 || !h->fin))
                error = "a control frame fragmented or longer than 125 bytes";
        if (!error)
                return n;
        char why[128];
        (void)snprintf(why, sizeof(why), "broke RFC 6455: %s", error);
        conn_closed(c, why);
        return 0;
}

static void conn_send(Conn *c, unsigned opcode, const char *s, size_t len);

/* A whole control frame from the server. A pong answers nothing we sent:
 * it is ignored. */
static void ws_control(Conn *c, unsigned opcode, const char *payload, size_t len) {
        if (opcode == WS_OP_PING) {
                conn_send(c, WS_OP_PONG, payload, len);
        } else if (opcode == WS_OP_CLOSE) {
                char why[64];
                (void)snprintf(why, sizeof(why), "closed by the server (WebSocket close %u)",
                               len >= 2
                                       ? (unsigned)(unsigned char)payload[0] << 8 | (unsigned char)payload[1]
                                       : 1005u);
                conn_closed(c, why);
        }
}

/* The stream protocols over --ws (and any publisher): the frames in
 * p[0..n), the bytes carried from the last read first, unwrapped into the
 * bytes they carry, moved down to p; returns how many. Control frames are
 * acted on; an unfinished header or control frame is carried to the next
 * read. */
static size_t ws_unframe(Conn *c, char *p, size_t n) {
        size_t r = 0, w = 0;
        c->ws_carry_len = 0;
        while (r < n && !c->closed) {
                if (c->ws_left) {
                        size_t k = n - r < c->ws_left ? n - r : (size_t)c->ws_left;
                        memmove(p + w, p + r, k);
                        w += k;
                        r += k;
                        c->ws_left -= k;
                        continue;
                }
                WsHeader h;
                size_t hl = ws_header(c, p + r, n - r, &h);
                if (hl == 0)
                        break;
                if (h.opcode < WS_OP_CLOSE) {
                        r += hl;
                        c->ws_left = h.len;
                } else if (n - r >= hl + h.len) {
                        ws_control(c, h.opcode, p + r + hl, (size_t)h.len);
                        r += hl + (size_t)h.len;
                } else {
                        break;
                }
        }
        if (!c->closed) {
                c->ws_carry_len = (uint8_t)(n - r);
                memcpy(c->ws_carry, p + r, n - r);
        }
        return w;
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

/* A line of the line protocol other than one of our messages, its LF left
 * out: a sync, or another client's line. */
static void line_message(Conn *c, const char *msg, size_t len) {
        if (len == strlen(SYNC_WORD) && memcmp(msg, SYNC_WORD, len) == 0)
                c->ready = true;
        else if (opt.foreign)
                foreign_lines++;
        else
                fail("subscriber %u: unexpected message of %zu bytes", c->idx, len);
}

/* --ws, the line protocol: a whole WebSocket message, put together from
 * its frames, with its opcode. */
static void subscriber_ws_message(Conn *c, unsigned opcode, const char *msg, size_t len, uint64_t t_rx) {
        if (len != payload_len)
                line_message(c, msg, len);
        else if (opcode == WS_OP_TEXT)
                subscriber_deliver(c, msg, t_rx);
        else
                fail("subscriber %u: a message of ours as binary (it is UTF-8: text)", c->idx);
}

/* --ws, the line protocol: a frame at buf[0..avail) other than one of our
 * messages whole in one frame: a sync, another client's line, a fragment
 * of a message, a control frame. Returns its length, 0 if it is not all
 * there yet. */
static size_t subscriber_ws_frame(Conn *c, const char *buf, size_t avail, uint64_t t_rx) {
        WsHeader h;
        size_t hl = ws_header(c, buf, avail, &h);
        if (hl == 0)
                return 0;
        /* c->pending carries the unfinished frame: one no longer than ours. */
        if (hl + h.len > pending_cap)
                die("subscriber %u: an unexpected frame of %" PRIu64 " bytes", c->idx, h.len);
        size_t len = (size_t)h.len;
        if (avail < hl + len)
                return 0;
        const char *payload = buf + hl;
        if (h.opcode != WS_OP_CONTINUATION && h.opcode < WS_OP_CLOSE && c->ws_msg_opcode) {
                fail("subscriber %u: a new message inside a fragmented one", c->idx);
                c->ws_msg_opcode = 0; /* the unfinished one is lost; this one counts */
        }
        if (h.opcode >= WS_OP_CLOSE) {
                ws_control(c, h.opcode, payload, len); /* between fragments too (RFC 6455 5.4) */
        } else if (h.opcode == WS_OP_CONTINUATION && !c->ws_msg_opcode) {
                fail("subscriber %u: a continuation frame with no message begun", c->idx);
        } else if (h.fin && h.opcode != WS_OP_CONTINUATION) {
                subscriber_ws_message(c, h.opcode, payload, len, t_rx);
        } else {
                if (!c->ws_msg_opcode) {
                        if (!c->ws_msg && !(c->ws_msg = malloc(pending_cap)))
                                die("out of memory");
                        c->ws_msg_opcode = h.opcode;
                        c->ws_msg_len = 0;
                }
                if (c->ws_msg_len + len > pending_cap)
                        die("subscriber %u: a fragmented message of more than %zu bytes", c->idx,
                            pending_cap);
                memcpy(c->ws_msg + c->ws_msg_len, payload, len);
                c->ws_msg_len += (uint32_t)len;
                if (h.fin) {
                        unsigned opcode = c->ws_msg_opcode;
                        c->ws_msg_opcode = 0;
                        ws_fragmented++;
                        subscriber_ws_message(c, opcode, c->ws_msg, c->ws_msg_len, t_rx);
                }
        }
        return hl + len;
}

/* MQTT: a packet at buf[0..avail) that is not one of our messages: the
 * answers to CONNECT and SUBSCRIBE. Returns its length, 0 if it is not all
 * there yet. */
static size_t subscriber_mqtt(Conn *c, const unsigned char *buf, size_t avail) {
        size_t len = 0, i = 1;
        for (;; i++) {
                if (i > 4) {
                        conn_closed(c, "sent an MQTT remaining length of more than 4 bytes");
                        return 0;
                }
                if (i >= avail)
                        return 0;
                len |= (size_t)(buf[i] & 127) << (7 * (i - 1));
                if (!(buf[i] & 128))
                        break;
        }
        size_t total = i + 1 + len;
        if (total > CONTROL_MAX)
                die("subscriber %u: an unexpected MQTT packet of %zu bytes", c->idx, total);
        if (avail < total)
                return 0;
        const unsigned char *v = buf + i + 1;
        if (buf[0] == 0x20 && len == 2) { /* CONNACK */
                if (v[1] != 0)
                        fail("subscriber %u: MQTT CONNECT refused (return code %u)", c->idx, v[1]);
        } else if (buf[0] == 0x90 && len == 3) { /* SUBACK */
                if (v[2] == 0)
                        c->ready = true;
                else
                        fail("subscriber %u: MQTT SUBSCRIBE refused (0x%02x)", c->idx, v[2]);
        } else {
                fail("subscriber %u: unexpected MQTT packet 0x%02x of %zu bytes", c->idx, buf[0], total);
        }
        return total;
}

/* Something of the protocol at buf[0..avail) that is not one of our
 * messages whole: returns its length, 0 if it is not complete yet. */
static size_t subscriber_control(Conn *c, const char *buf, size_t avail, uint64_t t_rx) {
        if (opt.proto == PROTO_MQTT)
                return subscriber_mqtt(c, (const unsigned char *)buf, avail);
        if (opt.ws && opt.proto == PROTO_LINE)
                return subscriber_ws_frame(c, buf, avail, t_rx);
        const char *end = memchr(buf, '\n', avail);
        if (!end) {
                if (avail >= CONTROL_MAX)
                        die("subscriber %u: %zu bytes without a line end", c->idx, avail);
                return 0;
        }
        size_t len = (size_t)(end - buf) + 1;
        switch (opt.proto) {
        case PROTO_LINE:
                line_message(c, buf, len - 1);
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
                        conn_send(c, WS_OP_BINARY, "PONG\r\n", 6);
                else if (len >= 4 && memcmp(buf, "-ERR", 4) == 0)
                        fail("subscriber %u: %.*s", c->idx, (int)len - 2, buf);
                return len; /* INFO, +OK */
        case PROTO_MQTT:
                break; /* binary: subscriber_mqtt() */
        }
        return len;
}

/* --ws, line protocol: the unsolicited pong the daemon sends after every
 * message, skipped where it is looked for first (after a message). */
#define WS_TRAILER "\x8a\x01\n"
#define WS_TRAILER_LEN 3

static void subscriber_parse(Conn *c, char *buf, size_t avail, uint64_t t_rx) {
        size_t i = 0;
        bool ws_line = opt.ws && opt.proto == PROTO_LINE;
        while (i < avail && !c->closed) {
                size_t left = avail - i;
                /* One of our messages whole (over --ws: a text frame, not a
                 * fragment, and none begun before it). */
                if (left >= frame_len && !c->ws_msg_opcode &&
                    (!frame_header_len || memcmp(buf + i, template_frame, frame_header_len) == 0) &&
                    (!frame_has_trailer || buf[i + frame_len - 1] == '\n')) {
                        subscriber_deliver(c, buf + i + frame_header_len, t_rx);
                        i += frame_len;
                        if (ws_line && avail - i >= WS_TRAILER_LEN &&
                            memcmp(buf + i, WS_TRAILER, WS_TRAILER_LEN) == 0)
                                i += WS_TRAILER_LEN;
                        continue;
                }
                bool could_be_data =
                        left < frame_len && memcmp(buf + i, template_frame,
                                                   left < frame_header_len ? left : frame_header_len) == 0;
                if (could_be_data && (frame_header_len || buf[i] != 'S'))
                        break;
                size_t n = subscriber_control(c, buf + i, left, t_rx);
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

/* Over --ws a subscriber of the line protocol takes frames as they come
 * (each is a message); everything else is a byte stream in frames. */
static bool ws_stream(const Conn *c) {
        return opt.ws && (c->publisher || opt.proto != PROTO_LINE);
}

/* Lays out read_buf for a read: what the subscriber had not finished
 * parsing, then the frame bytes ws_unframe() carried. Returns where the
 * read goes. */
static size_t conn_prefill(Conn *c) {
        if (c->pending_len)
                memcpy(read_buf, c->pending, c->pending_len);
        memcpy(read_buf + c->pending_len, c->ws_carry, c->ws_carry_len);
        return c->pending_len + c->ws_carry_len;
}

/* read_buf[0..have) after a read into what conn_prefill() laid out. */
static void conn_input(Conn *c, size_t have, uint64_t t_rx) {
        if (ws_stream(c))
                have = c->pending_len + ws_unframe(c, read_buf + c->pending_len, have - c->pending_len);
        if (c->closed)
                return;
        if (!c->publisher)
                subscriber_parse(c, read_buf, have, t_rx);
        /* A publisher's replies (":N", other publishers' lines) are not
         * measured; NATS's keep-alive is answered. */
        else if (opt.proto == PROTO_NATS && memmem(read_buf, have, "PING\r\n", 6))
                conn_send(c, WS_OP_BINARY, "PONG\r\n", 6);
}

static void conn_read(Conn *c, uint64_t t_rx) {
        size_t start = conn_prefill(c);
        ssize_t n = read(c->fd, read_buf + start, READ_BUFFER_SIZE);
        if (n > 0)
                conn_input(c, start + (size_t)n, t_rx);
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
                size_t start = conn_prefill(c), have = start, end = start + READ_BUFFER_SIZE, n = 0;
                int ret = 1, e = SSL_ERROR_NONE, err = 0;
                while (have < end && (ret = SSL_read_ex(c->ssl, read_buf + have, end - have, &n)) == 1)
                        have += n;
                if (ret != 1) {
                        err = errno;
                        e = SSL_get_error(c->ssl, ret);
                }
                if (have > start)
                        conn_input(c, have, t_rx);
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
                if (publish_ws_len)
                        ws_mask(f + publish_ws_len - 4, publish_len - publish_ws_len);
                p->out_len += publish_len;
        }
}

/* --tls: a write that did not finish is retried with the same bytes, from
 * c->out + c->out_off (SSL_MODE_ENABLE_PARTIAL_WRITE moves out_off on by
 * the records that went). */
static void conn_write_tls(Conn *c) {
        bool want_read = false;
        ERR_clear_error();
        while (c->out_off < c->out_len) {
                size_t n = 0;
                int ret = SSL_write_ex(c->ssl, c->out + c->out_off, c->out_len - c->out_off, &n);
                if (ret != 1) {
                        int err = errno;
                        if (!tls_retry(c, SSL_get_error(c->ssl, ret), err, false, &want_read))
                                return;
                        break;
                }
                c->out_off += n;
        }
        if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
        c->write_wants_read = want_read;
        tls_watch(c);
}

/* Writes what c has queued, as far as the socket takes it. */
static void conn_write(Conn *c) {
        if (c->ssl) {
                conn_write_tls(c);
                return;
        }
        while (c->out_off < c->out_len) {
                ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
                if (n < 0) {
                        if (errno != EAGAIN)
                                conn_closed(c, strerror(errno));
                        else
                                conn_watch(c, EPOLLIN | EPOLLOUT);
                        return;
                }
                c->out_off += (size_t)n;
        }
        c->out_off = c->out_len = 0;
        conn_watch(c, EPOLLIN);
}

/* Bytes of the protocol (with --ws, one masked frame of opcode), queued
 * behind what c has not written yet, so never inside a publisher's frames
 * (a keep-alive answer while it is sending). */
static void conn_send(Conn *c, unsigned opcode, const char *s, size_t len) {
        unsigned char h[WS_HEADER_MAX + 4];
        size_t hl = opt.ws ? ws_put_header(h, opcode, len, true) : 0;
        c->out = realloc(c->out, c->out_len + hl + len);
        if (!c->out)
                die("out of memory");
        char *f = c->out + c->out_len;
        memcpy(f, h, hl);
        memcpy(f + hl, s, len);
        if (hl)
                ws_mask(f + hl - 4, len);
        c->out_len += hl + len;
        conn_write(c);
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
                conn_write_tls(c);
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
                        conn_write(c);
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

/* MQTT 3.1.1 CONNECT with a clean session; the client identifier is
 * unique per process and connection (a broker drops the older of two
 * clients with one identifier). */
static void mqtt_connect(Conn *c) {
        char id[32], pkt[64];
        size_t id_len = (size_t)snprintf(id, sizeof(id), "eb%d-%c%u", (int)getpid(),
                                         c->publisher ? 'p' : 's', c->idx);
        size_t n = 0;
        pkt[n++] = 0x10;
        pkt[n++] = (char)(10 + 2 + id_len); /* remaining length, below 128 */
        memcpy(pkt + n, "\0\4MQTT\4\2", 8); /* protocol name, level 4, clean session */
        n += 8;
        pkt[n++] = (char)(MQTT_KEEPALIVE >> 8);
        pkt[n++] = (char)(MQTT_KEEPALIVE & 255);
        pkt[n++] = 0;
        pkt[n++] = (char)id_len;
        memcpy(pkt + n, id, id_len);
        conn_send(c, WS_OP_BINARY, pkt, n + id_len);
}

static void subscribe_all(void) {
        char cmd[256];
        for (uint32_t s = 0; s < opt.subscribers; s++) {
                switch (opt.proto) {
                case PROTO_LINE:
                        break;
                case PROTO_RESP:
                        (void)snprintf(cmd, sizeof(cmd), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n",
                                       strlen(CHANNEL), CHANNEL);
                        conn_send(&subs[s], WS_OP_BINARY, cmd, strlen(cmd));
                        break;
                case PROTO_NATS:
                        (void)snprintf(
                                cmd, sizeof(cmd),
                                "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB %s 1\r\nPING\r\n",
                                CHANNEL);
                        conn_send(&subs[s], WS_OP_BINARY, cmd, strlen(cmd));
                        break;
                case PROTO_MQTT: {
                        /* Packet identifier 1, the topic, QoS 0. */
                        static const char subscribe[] = "\x82\x07\x00\x01\x00\x02" CHANNEL "\x00";
                        mqtt_connect(&subs[s]);
                        conn_send(&subs[s], WS_OP_BINARY, subscribe, sizeof(subscribe) - 1);
                        break;
                }
                }
        }
        static const char nats_connect[] =
                "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n";
        for (uint32_t p = 0; p < opt.publishers; p++) {
                if (opt.proto == PROTO_NATS)
                        conn_send(&pubs[p], WS_OP_BINARY, nats_connect, sizeof(nats_connect) - 1);
                else if (opt.proto == PROTO_MQTT)
                        mqtt_connect(&pubs[p]);
        }
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
                        /* Over WebSocket the frame is the line without its LF. */
                        if (opt.ws)
                                conn_send(&pubs[0], WS_OP_TEXT, SYNC_WORD, strlen(SYNC_WORD));
                        else
                                conn_send(&pubs[0], WS_OP_TEXT, SYNC_LINE, strlen(SYNC_LINE));
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
        uint64_t batch = SEND_BATCH_BYTES / opt.bytes ? SEND_BATCH_BYTES / opt.bytes : 1;
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
                        conn_write(p);
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
        static const char *const names[] = {
                [PROTO_LINE] = "line", [PROTO_RESP] = "resp", [PROTO_NATS] = "nats", [PROTO_MQTT] = "mqtt"};
        return names[p];
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
                        printf("RESULT mode=idle proto=%s conns=%u accepted=%ld held=no tls=%s ws=%s\n",
                               proto_name(opt.proto), opt.idle, fds - fds0, tls_ctx ? tls_params : "no",
                               opt.ws ? "yes" : "no");
                        free(conns);
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
                              "%u idle %s%sconnections: server RSS %ld -> %ld KiB, %.0f B per connection\n",
                              opt.idle, tls_ctx ? "TLS " : "", opt.ws ? "WebSocket " : "", rss0, rss1,
                              per_conn);
        printf("RESULT mode=idle proto=%s conns=%u held=%s rss0_kib=%ld rss_kib=%ld bytes_per_conn=%.0f "
               "tls=%s ws=%s\n",
               proto_name(opt.proto), opt.idle, alive ? "yes" : "no", rss0, rss1, per_conn,
               tls_ctx ? tls_params : "no", opt.ws ? "yes" : "no");
        for (uint32_t i = 0; i < opt.idle; i++) {
                SSL_free(conns[i].ssl);
                (void)close(conns[i].fd);
        }
        free(conns);
        return alive ? 0 : 1;
}

static void usage(FILE *f) {
        (void)fputs("Usage: ebbench [OPTION]... HOST:PORT\n"
                    "Load generator for epoll-broadcaster, Redis pub/sub, NATS, MQTT brokers and line\n"
                    "relays.\n\n"
                    "  -p, --protocol=line|resp|nats|mqtt\n"
                    "                                 what the server speaks (default line; mqtt: 3.1.1,\n"
                    "                                 QoS 0)\n"
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
                    "      --ws                       every connection over WebSocket (with --tls: wss);\n"
                    "                                 line: a text message a message, without the LF\n"
                    "                                 (fragments put together, pongs ignored);\n"
                    "                                 nats, mqtt: their bytes in binary frames\n"
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
                {"ws", no_argument, NULL, 'W'},
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
                        else if (!strcmp(optarg, "mqtt"))
                                opt.proto = PROTO_MQTT;
                        else
                                die("protocol must be line, resp, nats or mqtt, not '%s'", optarg);
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
                case 'W':
                        opt.ws = true;
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
        if (opt.ws && opt.proto == PROTO_RESP)
                die("--ws speaks line, nats or mqtt: Redis has no WebSocket listener");
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
        if (opt.ws && getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state))
                die("getrandom: %m");
        rng_state |= 1; /* xorshift stays at 0 from 0 */
        if (opt.idle)
                return run_idle();

        frames_init();
        subs = calloc(opt.subscribers, sizeof(Conn));
        pubs = calloc(opt.publishers, sizeof(Conn));
        next_seq = calloc((size_t)opt.subscribers * opt.publishers, sizeof(uint64_t));
        if (!subs || !pubs || !next_seq)
                die("out of memory");
        pending_cap = frame_len > CONTROL_MAX ? frame_len : CONTROL_MAX;
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
                              "%s%s%s: %u subscribers, %u publishers, %u-byte messages%s: %" PRIu64
                              " sent, %" PRIu64 " of %" PRIu64 " delivered in %.3f s = %.0f deliveries/s\n"
                              "latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n",
                              proto_name(opt.proto), opt.ws ? " over WebSocket" : "",
                              tls_ctx ? " over TLS" : "", opt.subscribers, opt.publishers, opt.bytes,
                              opt.rate > 0 ? " at a fixed rate" : "", r.sent, deliveries, expected,
                              r.seconds, dps, hist_percentile_us(50), hist_percentile_us(99),
                              hist_percentile_us(99.9), (double)lat_max / 1000.0);
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
               " errors=%" PRIu64 " foreign=%" PRIu64
               " cpu_s=%.3f cpu_s_per_M=%.4f rss_kib=%ld tls=%s ws=%s ws_fragmented=%" PRIu64 "\n",
               opt.rate > 0 ? "rate" : "full", proto_name(opt.proto), opt.subscribers, opt.publishers,
               opt.bytes, r.sent, deliveries, r.seconds, dps, hist_percentile_us(50), hist_percentile_us(99),
               hist_percentile_us(99.9), (double)lat_max / 1000.0, r.lost, errors, foreign_lines,
               opt.server_pid ? r.cpu_seconds : 0.0, opt.server_pid ? cpu_per_m : 0.0,
               opt.server_pid ? r.rss_kib : 0L, tls_ctx ? tls_params : "no", opt.ws ? "yes" : "no",
               ws_fragmented);
        return r.lost || errors ? 1 : 0;
}
