/* Integration tests of websocket listeners with the real daemon: the
 * sections of the Autobahn|Testsuite that apply to a server that relays
 * (framing 1.x, pings 2.x, reserved bits 3.x, opcodes 4.x, fragmentation
 * 5.x, UTF-8 6.x, closing 7.x) as our own table-driven cases, the HTTP side
 * of the handshake, origins, the built-in page, WebSocket and line clients
 * in one broadcast, keep-alive pings, a graceful stop and wss://, and real
 * peers: python3-websockets and node's ws (tests/ws).
 *
 * The Autobahn cases expect an echo server; here a message comes back
 * through the broadcast instead: every case's sender is watched by a line
 * client and a WebSocket client, which must get exactly the messages the
 * case names (the WebSocket one as text or binary by their UTF-8 validity),
 * then an end marker, so that nothing else slipped through. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "wsclient.h"

TestSuite(websocket, .fini = harness_cleanup, .timeout = 240);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- daemons with websocket listeners ------------------------------------- */

#define MAX_WS_LISTENERS 3

/* A daemon with a line listener on d->port and websocket listeners whose
 * groups get the keys ws[i] ("" for none; NULL ends the list) on free
 * ports; settings go at the top level; certs: make-certs.sh into DIR/certs
 * first (relative paths in the config are relative to DIR). */
typedef struct Setup {
        const char *ws[MAX_WS_LISTENERS + 1];
        const char *settings;
        bool certs;
} Setup;

static void make_certs(const Daemon *d) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "sh '%s' '%s/certs'", getenv("EB_MAKE_CERTS") ?: "tests/make-certs.sh",
                 d->dir);
        cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static char *setup_conf(const Setup *s, const uint16_t ports[]) {
        char *listen = strdup("listen = ( \"127.0.0.1:@PORT@\"");
        for (size_t i = 0; s->ws[i]; i++) {
                char *more;
                cr_assert(asprintf(&more,
                                   "%s,\n  { address = \"127.0.0.1:%u\"; protocol = \"websocket\"; %s }",
                                   listen, ports[i], s->ws[i]) > 0);
                free(listen);
                listen = more;
        }
        char *conf;
        cr_assert(asprintf(&conf, "%s );\nlog_level = \"info\";\n%s\n", listen,
                           s->settings ? s->settings : "") > 0);
        free(listen);
        return conf;
}

static char *setup_build(Daemon *d, const uint16_t *ports, const void *arg) {
        const Setup *s = arg;
        if (s->certs)
                make_certs(d);
        return setup_conf(s, ports);
}

/* Starts the daemon of s and waits until every listener listens. */
static void setup_start(Daemon *d, const Setup *s, uint16_t ports[MAX_WS_LISTENERS]) {
        size_t n = 0;
        while (s->ws[n])
                n++;
        cr_assert(n <= MAX_WS_LISTENERS);
        daemon_exec_ports(d, ports, n, n, setup_build, s);
}

/* The common case: one websocket listener with keys ws_keys; its port. */
static uint16_t start_ws(Daemon *d, const char *ws_keys, const char *settings) {
        Setup s = {.ws = {ws_keys ? ws_keys : "", NULL}, .settings = settings};
        uint16_t ports[MAX_WS_LISTENERS];
        setup_start(d, &s, ports);
        return ports[0];
}

/* WebSocket clients are in the broadcast from their 101 on, line clients
 * once the daemon has accepted them: when it counts n clients in all. */
static void wait_clients(Daemon *d, long long n) {
        cr_assert_eq(daemon_wait_stat(d, "clients", n, 5000), n, "not all %lld clients are in", n);
}

/* The id the daemon gave the client connected from 127.0.0.1:port (its log
 * line "client N connected from ADDR..."). */
static unsigned long long client_id_of(Daemon *d, uint16_t port) {
        char needle[64];
        snprintf(needle, sizeof needle, " connected from 127.0.0.1:%u", port);
        cr_assert(daemon_log_contains(d, needle, 5000), "no log line has%s", needle);
        char *log = daemon_log_text(d);
        for (char *p = log; (p = strstr(p, needle)); p++) {
                char end = p[strlen(needle)];
                if (end != '\n' && end != ' ')
                        continue;
                char *c = p;
                while (c > log && c[-1] != '\n')
                        c--;
                char *at = strstr(c, "client ");
                unsigned long long id;
                if (at && at < p && sscanf(at, "client %llu", &id) == 1) {
                        free(log);
                        return id;
                }
        }
        cr_assert_fail("no client id before%s", needle);
        free(log);
        return 0;
}

/* --- payloads --------------------------------------------------------------- */

/* Bytes of a case: a literal (B), or len copies of one byte (REP), which is
 * how Autobahn fills its long payloads. s NULL and fill 0: the end of a
 * list. */
typedef struct Bytes {
        const char *s;
        size_t len;
        char fill;
} Bytes;

#define B(lit)                                                                                              \
        { lit, sizeof(lit) - 1, 0 }
#define REP(n, c)                                                                                           \
        { NULL, n, c }

static bool bytes_end(const Bytes *b) {
        return !b->s && !b->fill;
}

/* A copy to free(), NUL-terminated. */
static char *bytes_make(const Bytes *b) {
        char *p = malloc(b->len + 1);
        cr_assert(p);
        if (b->s)
                memcpy(p, b->s, b->len);
        else
                memset(p, b->fill, b->len);
        p[b->len] = '\0';
        return p;
}

/* The opcode a broadcast message reaches WebSocket clients with. */
static uint8_t opcode_for(const void *payload, size_t len) {
        return wsc_utf8_valid(payload, len) ? WSC_TEXT : WSC_BINARY;
}

/* A number below n from a small LCG (the same stream on every run). */
static size_t below(unsigned *state, size_t n) {
        *state = *state * 1103515245 + 12345;
        return (*state >> 16) % n;
}

/* --- line observers ----------------------------------------------------------- */

/* The next bytes on a line client are exactly p[0, len) then an LF. */
static void line_expect_bytes(int fd, const void *p, size_t len, const char *who) {
        char *got = malloc(len + 2);
        cr_assert(got);
        client_recv_exact(fd, got, len + 1, 5000);
        got[len + 1] = '\0'; /* for the message */
        cr_assert(memcmp(got, p, len) == 0 && got[len] == '\n',
                  "%s: the line client got \"%.60s\"... not \"%.60s\"", who, got, (const char *)p);
        free(got);
}

/* --- Autobahn-style cases ------------------------------------------------------- */

typedef enum StepKind {
        STEP_END = 0,
        STEP_SEND,   /* a frame, buffered with the following SENDs and sent at once */
        STEP_EXPECT, /* a frame from the server (sends what is buffered first) */
} StepKind;

typedef struct Step {
        StepKind kind;
        WscFrame frame; /* SEND: how; EXPECT: the opcode */
        Bytes data;
} Step;

#define SEND(op, bytes, ...)                                                                                \
        { STEP_SEND, {.opcode = (op), __VA_ARGS__}, bytes }
#define EXPECT(op, bytes)                                                                                   \
        { STEP_EXPECT, {.opcode = (op)}, bytes }
#define MAX_STEPS 24
#define MAX_RELAYED 6

typedef struct WsCase {
        char name[96];
        Step steps[MAX_STEPS];
        /* The messages the observers must get, in order. */
        Bytes relayed[MAX_RELAYED + 1];
        /* The server's close code after the steps: 0 when it must not close
         * (the case then ends with the client's own close 1000, which must
         * be echoed). A case whose steps send a close expects its echo. */
        uint16_t close;
        size_t chop;  /* sends in writes of this many bytes, 1 ms apart (0: at once) */
        bool tcp_end; /* after the steps the client shuts down TCP without a close */
        /* The client does not answer the server's close: the server must
         * close TCP on its own after a short wait. */
        bool no_answer;
} WsCase;

/* A daemon, a line listener and a websocket listener, with a line observer,
 * a WebSocket observer and a line client that sends end markers. */
typedef struct Bench {
        Daemon d;
        uint16_t ws_port;
        int line, marker;
        WsClient ws;
        unsigned cases;
        unsigned expected_errors; /* closes 1002, 1003, 1007 */
        unsigned expected_oversize;
        uint16_t first_error; /* the code of the first error close */
} Bench;

static void bench_start(Bench *b, const char *settings) {
        *b = (Bench){0};
        b->ws_port = start_ws(&b->d, NULL, settings);
        b->line = client_connect(b->d.port);
        b->marker = client_connect(b->d.port);
        wsc_open(&b->ws, b->ws_port);
        wait_clients(&b->d, 3);
}

/* The counters agree with what the cases did: every case upgraded, every
 * error close was counted where the contract counts it. */
static void bench_stop(Bench *b) {
        cr_assert_eq(daemon_stat(&b->d, "websocket_upgrades"), b->cases + 1);
        cr_assert_eq(daemon_stat_logged(&b->d, "websocket_errors"), b->expected_errors);
        cr_assert_eq(daemon_stat_logged(&b->d, "oversize"), b->expected_oversize);
        /* The warnings are rate-limited: the first one is logged. */
        char needle[32];
        snprintf(needle, sizeof needle, "; closing with %u", b->first_error);
        cr_assert(!b->first_error || daemon_log_contains(&b->d, needle, 0), "no warning says \"%s\"",
                  needle);
        wsc_free(&b->ws);
        close(b->line);
        close(b->marker);
        daemon_stop(&b->d);
}

static void flush(WsClient *c, WscBytes *out, size_t chop) {
        if (out->len)
                wsc_send_chopped(c, out->data, out->len, chop ? chop : out->len, chop ? 1 : 0);
        out->len = 0;
}

static bool step_matches(const Step *s, const WscMsgIn *f) {
        char *want = bytes_make(&s->data);
        bool ok = f->opcode == s->frame.opcode && f->len == s->data.len &&
                  memcmp(f->payload, want, f->len) == 0;
        free(want);
        return ok;
}

/* The frames of steps[0, n) (all EXPECT), in order. RFC 6455 5.5.3 lets a
 * server answer only the latest of several pings it has not answered yet,
 * so a pong may stand for the ones before it: those may be skipped, never
 * the last one. */
static void expect_steps(WsClient *c, const Step *steps, size_t n) {
        for (size_t i = 0; i < n;) {
                WscMsgIn f;
                int r = wsc_recv(c, &f, 5000);
                cr_assert(r > 0, "%s: %s where expected frame %zu was due", c->who,
                          r ? "the end" : "nothing", i);
                size_t j = i;
                while (j < n - 1 && steps[j].frame.opcode == WSC_PONG && !step_matches(&steps[j], &f))
                        j++;
                cr_assert(step_matches(&steps[j], &f),
                          "%s: frame %zu (opcode %u, %zu bytes \"%.40s\") is none of the due ones", c->who,
                          i, f.opcode, f.len, (const char *)f.payload);
                i = j + 1;
        }
}

static void run_case(Bench *b, const WsCase *k) {
        WsClient c;
        wsc_open(&c, b->ws_port);
        snprintf(c.who, sizeof c.who, "%s", k->name);
        WscBytes out = {0};
        bool sent_close = false;
        uint16_t sent_code = 0; /* of the client's first close, if valid */
        const Step *end = k->steps + MAX_STEPS;
        for (const Step *s = k->steps; s < end && s->kind != STEP_END; s++) {
                if (s->kind == STEP_SEND) {
                        char *data = bytes_make(&s->data);
                        wsc_bytes_frame(&c, &out, &s->frame, data, s->data.len);
                        if (s->frame.opcode == WSC_CLOSE && !sent_close && s->data.len != 1)
                                sent_code = s->data.len
                                                    ? (uint16_t)((uint8_t)data[0] << 8 | (uint8_t)data[1])
                                                    : WSC_CLOSE_EMPTY;
                        sent_close |= s->frame.opcode == WSC_CLOSE;
                        free(data);
                } else {
                        flush(&c, &out, k->chop);
                        size_t n = 1;
                        while (s + n < end && s[n].kind == STEP_EXPECT)
                                n++;
                        expect_steps(&c, s, n);
                        s += n - 1;
                }
        }
        flush(&c, &out, k->chop);
        wsc_bytes_free(&out);
        if (k->tcp_end) {
                cr_assert(shutdown(c.fd, SHUT_WR) == 0);
                cr_assert(client_wait_closed(c.fd, 5000), "%s: still open after the client's FIN", k->name);
        } else if (sent_close) {
                wsc_expect_close(&c, k->close, NULL, 0, 5000);
                wsc_expect_eof(&c, 3000);
        } else if (k->close && k->no_answer) {
                wsc_expect_close(&c, k->close, NULL, 0, 5000);
                wsc_expect_eof(&c, 10000);
        } else if (k->close) {
                wsc_expect_closing_handshake(&c, k->close);
        } else {
                wsc_close_handshake(&c, 1000);
        }
        wsc_free(&c);

        /* The sender is gone (the daemon closed it), so all it relayed is
         * before the marker. */
        char marker[128];
        snprintf(marker, sizeof marker, "end of %s", k->name);
        client_send_str(b->marker, marker);
        client_send_str(b->marker, "\n");
        snprintf(b->ws.who, sizeof b->ws.who, "observer of %s", k->name);
        for (const Bytes *r = k->relayed; !bytes_end(r); r++) {
                char *want = bytes_make(r);
                line_expect_bytes(b->line, want, r->len, k->name);
                wsc_expect_msg(&b->ws, opcode_for(want, r->len), want, r->len, 5000);
                free(want);
        }
        line_expect_bytes(b->line, marker, strlen(marker), k->name);
        wsc_expect_text(&b->ws, marker);
        b->cases++;
        /* An echo of the client's own code is no error, whatever the code. */
        bool echo = sent_close && k->close == sent_code;
        b->expected_errors += !echo && (k->close == 1002 || k->close == 1003 || k->close == 1007);
        b->expected_oversize += !echo && k->close == 1009;
        if (!b->first_error && !echo && k->close >= 1002 && k->close != WSC_CLOSE_EMPTY)
                b->first_error = k->close;
}

static void run_cases(const WsCase *cases, size_t n, const char *settings) {
        Bench b;
        bench_start(&b, settings);
        for (size_t i = 0; i < n; i++)
                run_case(&b, &cases[i]);
        bench_stop(&b);
}

/* Room for every length the cases use (65536 and more): payload < limit. */
#define BIG_LIMIT "max_message_bytes = 70000;"

/* 1.1, 1.2: text and binary messages of the lengths around each length
 * encoding's bounds, at once and in writes of 997 bytes. */
Test(websocket, autobahn_1_framing_lengths) {
        static const size_t lengths[] = {0, 125, 126, 127, 128, 65535, 65536};
        static const struct {
                uint8_t opcode;
                char fill;
        } kinds[] = {{WSC_TEXT, '*'}, {WSC_BINARY, (char)0xFE}};
        WsCase cases[2 * ARRAY_SIZE(lengths) + 2] = {0};
        size_t n = 0;
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
                for (size_t i = 0; i <= ARRAY_SIZE(lengths); i++) {
                        /* The last one: the longest again, chopped. */
                        bool chopped = i == ARRAY_SIZE(lengths);
                        size_t len = lengths[chopped ? i - 1 : i];
                        WsCase *c = &cases[n++];
                        snprintf(c->name, sizeof c->name, "1.%zu.%zu %s of %zu bytes%s", k + 1, i + 1,
                                 kinds[k].opcode == WSC_TEXT ? "text" : "binary", len,
                                 chopped ? " in writes of 997 bytes" : "");
                        c->steps[0] = (Step)SEND(kinds[k].opcode, REP(len, kinds[k].fill));
                        c->relayed[0] = (Bytes)REP(len, kinds[k].fill);
                        c->chop = chopped ? 997 : 0;
                }
        }
        /* An empty REP is the end of a list: empty messages are literals. */
        for (size_t i = 0; i < n; i++)
                if (cases[i].relayed[0].len == 0)
                        cases[i].steps[0].data = cases[i].relayed[0] = (Bytes)B("");
        run_cases(cases, n, BIG_LIMIT);
}

/* 2.x: pings are answered with their payload, pongs ignored. */
Test(websocket, autobahn_2_pings_and_pongs) {
        static const WsCase cases[] = {
                {.name = "2.1 ping without payload",
                 .steps = {SEND(WSC_PING, B("")), EXPECT(WSC_PONG, B(""))}},
                {.name = "2.2 ping with a text payload",
                 .steps = {SEND(WSC_PING, B("Hello, world!")), EXPECT(WSC_PONG, B("Hello, world!"))}},
                {.name = "2.3 ping with a binary payload",
                 .steps = {SEND(WSC_PING, B("\x00\xff\xfe\xfd\xfc\xfb\x00\xff")),
                           EXPECT(WSC_PONG, B("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))}},
                {.name = "2.4 ping of 125 bytes",
                 .steps = {SEND(WSC_PING, REP(125, (char)0xFE)), EXPECT(WSC_PONG, REP(125, (char)0xFE))}},
                {.name = "2.5 ping of 126 bytes",
                 .steps = {SEND(WSC_PING, REP(126, (char)0xFE))},
                 .close = 1002},
                {.name = "2.6 ping of 125 bytes in 1-byte writes",
                 .steps = {SEND(WSC_PING, REP(125, 'p')), EXPECT(WSC_PONG, REP(125, 'p'))},
                 .chop = 1},
                {.name = "2.7 unsolicited pong without payload", .steps = {SEND(WSC_PONG, B(""))}},
                {.name = "2.8 unsolicited pong with payload",
                 .steps = {SEND(WSC_PONG, B("unsolicited pong payload"))}},
                {.name = "2.9 unsolicited pong, then ping",
                 .steps = {SEND(WSC_PONG, B("unsolicited pong payload")), SEND(WSC_PING, B("ping payload")),
                           EXPECT(WSC_PONG, B("ping payload"))}},
                {.name = "pings between messages",
                 .steps = {SEND(WSC_TEXT, B("before")), SEND(WSC_PING, B("1")), SEND(WSC_TEXT, B("between")),
                           SEND(WSC_PING, B("2")), EXPECT(WSC_PONG, B("1")), EXPECT(WSC_PONG, B("2"))},
                 .relayed = {B("before"), B("between")}},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 2.10, 2.11: ten pings at once are answered in order, at once or in
 * 1-byte writes. */
Test(websocket, autobahn_2_ten_pings_in_order) {
        static char payloads[10][16];
        WsCase cases[2] = {{.name = "2.10 ten pings at once"},
                           {.name = "2.11 ten pings in 1-byte writes", .chop = 1}};
        for (size_t k = 0; k < ARRAY_SIZE(cases); k++)
                for (size_t i = 0; i < 10; i++) {
                        int len = snprintf(payloads[i], sizeof payloads[i], "payload-%zu", i);
                        Bytes p = {payloads[i], (size_t)len, 0};
                        cases[k].steps[i] = (Step){STEP_SEND, {.opcode = WSC_PING}, p};
                        cases[k].steps[10 + i] = (Step){STEP_EXPECT, {.opcode = WSC_PONG}, p};
                }
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 3.x: any RSV bit (no extension was agreed) is a protocol error, and what
 * follows the bad frame is not answered. */
Test(websocket, autobahn_3_reserved_bits) {
        static const WsCase cases[] = {
                {.name = "3.1 text with RSV = 1",
                 .steps = {SEND(WSC_TEXT, B("Hello, world!"), .rsv = 1)},
                 .close = 1002},
                {.name = "3.2 text, text with RSV = 2, ping",
                 .steps = {SEND(WSC_TEXT, B("Hello, world!")), SEND(WSC_TEXT, B("Hello, world!"), .rsv = 2),
                           SEND(WSC_PING, B(""))},
                 .relayed = {B("Hello, world!")},
                 .close = 1002},
                /* The ping answered between the frames makes the server
                 * read them apart. */
                {.name = "3.3 text, text with RSV = 3, ping (frame by frame)",
                 .steps = {SEND(WSC_TEXT, B("Hello, world!")), SEND(WSC_PING, B("sync")),
                           EXPECT(WSC_PONG, B("sync")), SEND(WSC_TEXT, B("Hello, world!"), .rsv = 3),
                           SEND(WSC_PING, B(""))},
                 .relayed = {B("Hello, world!")},
                 .close = 1002},
                {.name = "3.4 text, text with RSV = 4, ping in 1-byte writes",
                 .steps = {SEND(WSC_TEXT, B("Hello, world!")), SEND(WSC_TEXT, B("Hello, world!"), .rsv = 4),
                           SEND(WSC_PING, B(""))},
                 .relayed = {B("Hello, world!")},
                 .close = 1002,
                 .chop = 1},
                {.name = "3.5 binary with RSV = 5",
                 .steps = {SEND(WSC_BINARY, B("\x00\xff\xfe"), .rsv = 5)},
                 .close = 1002},
                {.name = "3.6 ping with RSV = 6",
                 .steps = {SEND(WSC_PING, B("Hello, world!"), .rsv = 6)},
                 .close = 1002},
                {.name = "3.7 close with RSV = 7",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8"), .rsv = 7)},
                 .close = 1002},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 4.x: reserved opcodes, data (3-7) and control (11-15), are protocol
 * errors; what came before is relayed, what follows is not answered. */
Test(websocket, autobahn_4_reserved_opcodes) {
        /* Autobahn's five shapes, once with each data opcode (4.1.x) and
         * once with each control opcode (4.2.x). */
        static const uint8_t opcodes[2][5] = {{3, 4, 5, 6, 7}, {11, 12, 13, 14, 15}};
        static const Bytes payload = B("reserved opcode payload"), hello = B("Hello, world!");
        static const char *const shapes[5] = {"alone", "with payload", "after a text, before a ping",
                                              "with payload after a text, before a ping",
                                              "with payload after a text, before a ping, in 1-byte writes"};
        WsCase cases[10] = {0};
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                size_t shape = i % 5;
                uint8_t op = opcodes[i / 5][shape];
                WsCase *c = &cases[i];
                snprintf(c->name, sizeof c->name, "4.%zu.%zu opcode %u %s", i / 5 + 1, shape + 1, op,
                         shapes[shape]);
                Step bad = {STEP_SEND, {.opcode = op}, shape == 0 || shape == 2 ? (Bytes)B("") : payload};
                if (shape < 2) {
                        c->steps[0] = bad;
                } else {
                        c->steps[0] = (Step){STEP_SEND, {.opcode = WSC_TEXT}, hello};
                        c->steps[1] = bad;
                        c->steps[2] = (Step)SEND(WSC_PING, B(""));
                        c->relayed[0] = hello;
                }
                c->close = 1002;
                c->chop = shape == 4;
        }
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* The frame rules Autobahn leaves to others (RFC 6455 5.1, 5.2, 5.5): the
 * contract's list of protocol errors. */
Test(websocket, frame_rule_violations_close_1002) {
        static const WsCase cases[] = {
                {.name = "unmasked text",
                 .steps = {SEND(WSC_TEXT, B("Hello"), .unmasked = true)},
                 .close = 1002},
                {.name = "unmasked text, the client never answers the close",
                 .steps = {SEND(WSC_TEXT, B("Hello"), .unmasked = true)},
                 .close = 1002,
                 .no_answer = true},
                {.name = "unmasked ping",
                 .steps = {SEND(WSC_PING, B("Hello"), .unmasked = true)},
                 .close = 1002},
                {.name = "unmasked close",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8"), .unmasked = true)},
                 .close = 1002},
                {.name = "text of 5 bytes with a 16-bit length",
                 .steps = {SEND(WSC_TEXT, B("Hello"), .len_form = WSC_LEN_16)},
                 .close = 1002},
                {.name = "text of 200 bytes with a 64-bit length",
                 .steps = {SEND(WSC_TEXT, REP(200, 'x'), .len_form = WSC_LEN_64)},
                 .close = 1002},
                {.name = "text of 5 bytes with a 64-bit length",
                 .steps = {SEND(WSC_TEXT, B("Hello"), .len_form = WSC_LEN_64)},
                 .close = 1002},
                {.name = "a 64-bit length with its top bit set (header alone)",
                 .steps = {SEND(WSC_BINARY, B(""), .len_form = WSC_LEN_64_MSB, .declared_len = 70000)},
                 .close = 1002},
                {.name = "ping of 5 bytes with a 16-bit length",
                 .steps = {SEND(WSC_PING, B("Hello"), .len_form = WSC_LEN_16)},
                 .close = 1002},
                {.name = "close of 126 bytes", .steps = {SEND(WSC_CLOSE, REP(126, 'c'))}, .close = 1002},
                {.name = "a close frame with a 1-byte payload",
                 .steps = {SEND(WSC_CLOSE, B("\x03"))},
                 .close = 1002},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 5.x: fragments make one message; control frames may come between them
 * (and are answered at once), data frames may not. */
Test(websocket, autobahn_5_fragmentation) {
        static const WsCase cases[] = {
                {.name = "5.1 ping in 2 fragments",
                 .steps = {SEND(WSC_PING, B("fragment1"), .more = true), SEND(WSC_CONT, B("fragment2"))},
                 .close = 1002},
                {.name = "5.2 pong in 2 fragments",
                 .steps = {SEND(WSC_PONG, B("fragment1"), .more = true), SEND(WSC_CONT, B("fragment2"))},
                 .close = 1002},
                {.name = "5.3 text in 2 fragments",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_CONT, B("fragment2"))},
                 .relayed = {B("fragment1fragment2")}},
                {.name = "5.4 text in 2 fragments in 1-byte writes",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_CONT, B("fragment2"))},
                 .relayed = {B("fragment1fragment2")},
                 .chop = 1},
                {.name = "5.5 text in 2 fragments, frame by frame",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_PING, B("sync")),
                           EXPECT(WSC_PONG, B("sync")), SEND(WSC_CONT, B("fragment2"))},
                 .relayed = {B("fragment1fragment2")}},
                {.name = "5.6 text in 2 fragments, a ping between",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_PING, B("ping payload")),
                           SEND(WSC_CONT, B("fragment2")), EXPECT(WSC_PONG, B("ping payload"))},
                 .relayed = {B("fragment1fragment2")}},
                {.name = "5.7 text in 2 fragments, a ping between, in 1-byte writes",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_PING, B("ping payload")),
                           SEND(WSC_CONT, B("fragment2")), EXPECT(WSC_PONG, B("ping payload"))},
                 .relayed = {B("fragment1fragment2")},
                 .chop = 1},
                {.name = "5.8 text in 2 fragments, the pong awaited between",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_PING, B("ping payload")),
                           EXPECT(WSC_PONG, B("ping payload")), SEND(WSC_CONT, B("fragment2"))},
                 .relayed = {B("fragment1fragment2")}},
                {.name = "5.9 final continuation without a message",
                 .steps = {SEND(WSC_CONT, B("non-continuation payload")),
                           SEND(WSC_TEXT, B("Hello, world!"))},
                 .close = 1002},
                {.name = "5.10 final continuation without a message, in 1-byte writes",
                 .steps = {SEND(WSC_CONT, B("non-continuation payload")),
                           SEND(WSC_TEXT, B("Hello, world!"))},
                 .close = 1002,
                 .chop = 1},
                {.name = "5.12 continuation (not final) without a message",
                 .steps = {SEND(WSC_CONT, B("non-continuation payload"), .more = true),
                           SEND(WSC_TEXT, B("Hello, world!"))},
                 .close = 1002},
                {.name = "5.15 a message, then a continuation without one",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_CONT, B("fragment2")),
                           SEND(WSC_CONT, B("fragment3"), .more = true), SEND(WSC_TEXT, B("fragment4"))},
                 .relayed = {B("fragment1fragment2")},
                 .close = 1002},
                {.name = "5.18 text inside a fragmented text",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_TEXT, B("fragment2"))},
                 .close = 1002},
                {.name = "binary inside a fragmented text",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true),
                           SEND(WSC_BINARY, B("fragment2"), .more = true)},
                 .close = 1002},
                {.name = "5.19 text in 5 fragments, pings between, frame by frame",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true),
                           SEND(WSC_CONT, B("fragment2"), .more = true), SEND(WSC_PING, B("pongme 1!")),
                           EXPECT(WSC_PONG, B("pongme 1!")), SEND(WSC_CONT, B("fragment3"), .more = true),
                           SEND(WSC_CONT, B("fragment4"), .more = true), SEND(WSC_PING, B("pongme 2!")),
                           EXPECT(WSC_PONG, B("pongme 2!")), SEND(WSC_CONT, B("fragment5"))},
                 .relayed = {B("fragment1fragment2fragment3fragment4fragment5")}},
                {.name = "5.20 text in 5 fragments, pings between, at once",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true),
                           SEND(WSC_CONT, B("fragment2"), .more = true), SEND(WSC_PING, B("pongme 1!")),
                           SEND(WSC_CONT, B("fragment3"), .more = true),
                           SEND(WSC_CONT, B("fragment4"), .more = true), SEND(WSC_PING, B("pongme 2!")),
                           SEND(WSC_CONT, B("fragment5")), EXPECT(WSC_PONG, B("pongme 1!")),
                           EXPECT(WSC_PONG, B("pongme 2!"))},
                 .relayed = {B("fragment1fragment2fragment3fragment4fragment5")}},
                {.name = "binary in fragments, empty ones among them",
                 .steps = {SEND(WSC_BINARY, B(""), .more = true),
                           SEND(WSC_CONT, B("\xff\x00"), .more = true), SEND(WSC_CONT, B(""), .more = true),
                           SEND(WSC_CONT, B("\xfe"))},
                 .relayed = {B("\xff\x00\xfe")}},
                {.name = "text ended by an empty final continuation",
                 .steps = {SEND(WSC_TEXT, B("abc"), .more = true), SEND(WSC_CONT, B(""))},
                 .relayed = {B("abc")}},
                {.name = "two fragmented messages in a row",
                 .steps = {SEND(WSC_TEXT, B("one-"), .more = true), SEND(WSC_CONT, B("1")),
                           SEND(WSC_BINARY, B("two-"), .more = true), SEND(WSC_CONT, B("\xff"))},
                 .relayed = {B("one-1"), B("two-\xff")}},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 6.x: text messages are UTF-8 (RFC 3629), checked across fragments and
 * reads, and failed as soon as the bytes cannot become valid, whatever
 * follows: fail-fast. */
typedef enum Utf8Kind {
        UTF8_VALID,
        UTF8_INVALID,   /* invalid whatever follows */
        UTF8_TRUNCATED, /* a character cut by the end of the message */
} Utf8Kind;

static const struct {
        const char *name;
        Bytes text;
        Utf8Kind kind;
} utf8_cases[] = {
        {"6.2 Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!",
         B("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"), UTF8_VALID},
        {"6.5.1 kosme", B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), UTF8_VALID},
        {"6.7.1 U+0000", B("\x00"), UTF8_VALID},
        {"6.7.2 U+0080", B("\xc2\x80"), UTF8_VALID},
        {"6.7.3 U+0800", B("\xe0\xa0\x80"), UTF8_VALID},
        {"6.7.4 U+10000", B("\xf0\x90\x80\x80"), UTF8_VALID},
        {"6.9.1 U+007F", B("\x7f"), UTF8_VALID},
        {"6.9.2 U+07FF", B("\xdf\xbf"), UTF8_VALID},
        {"6.9.3 U+FFFF", B("\xef\xbf\xbf"), UTF8_VALID},
        {"6.9.4 U+10FFFF", B("\xf4\x8f\xbf\xbf"), UTF8_VALID},
        {"6.11.1 U+D7FF", B("\xed\x9f\xbf"), UTF8_VALID},
        {"6.11.2 U+E000", B("\xee\x80\x80"), UTF8_VALID},
        {"6.11.3 U+FFFD", B("\xef\xbf\xbd"), UTF8_VALID},
        {"6.23 U+FFFE (a noncharacter, still UTF-8)", B("\xef\xbf\xbe"), UTF8_VALID},
        {"6.3.1 kosme, then U+110000 (F4 90 80 80), then edited",
         B("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64"),
         UTF8_INVALID},
        {"6.8.1 a 5-byte sequence", B("\xf8\x88\x80\x80\x80"), UTF8_INVALID},
        {"6.8.2 a 6-byte sequence", B("\xfc\x84\x80\x80\x80\x80"), UTF8_INVALID},
        {"6.10.1 U+110000", B("\xf4\x90\x80\x80"), UTF8_INVALID},
        {"6.10.2 lead byte F5", B("\xf5\x80\x80\x80"), UTF8_INVALID},
        {"6.10.3 byte FF", B("a\xff"), UTF8_INVALID},
        {"6.10.4 byte FE", B("\xfe"), UTF8_INVALID},
        {"6.12.1 a lone continuation 80", B("\x80"), UTF8_INVALID},
        {"6.12.2 a lone continuation BF after ASCII", B("ab\xbf"), UTF8_INVALID},
        {"6.13.1 a 2-byte lead then ASCII", B("\xc2\x41"), UTF8_INVALID},
        {"6.13.2 a 3-byte lead, one continuation, then ASCII", B("\xe0\xa0\x41"), UTF8_INVALID},
        {"6.17.1 overlong / in 2 bytes", B("\xc0\xaf"), UTF8_INVALID},
        {"6.17.2 overlong / in 3 bytes", B("\xe0\x80\xaf"), UTF8_INVALID},
        {"6.17.3 overlong / in 4 bytes", B("\xf0\x80\x80\xaf"), UTF8_INVALID},
        {"6.18.1 overlong U+007F (C1 BF)", B("\xc1\xbf"), UTF8_INVALID},
        {"6.18.2 overlong U+07FF in 3 bytes", B("\xe0\x9f\xbf"), UTF8_INVALID},
        {"6.18.3 overlong U+FFFF in 4 bytes", B("\xf0\x8f\xbf\xbf"), UTF8_INVALID},
        {"6.19.1 overlong NUL", B("\xc0\x80"), UTF8_INVALID},
        {"6.20.1 surrogate U+D800", B("\xed\xa0\x80"), UTF8_INVALID},
        {"6.20.7 surrogate U+DFFF", B("\xed\xbf\xbf"), UTF8_INVALID},
        {"6.21.1 surrogate pair U+D800 U+DC00", B("\xed\xa0\x80\xed\xb0\x80"), UTF8_INVALID},
        {"6.14.1 a 2-byte character cut at the end", B("ab\xc2"), UTF8_TRUNCATED},
        {"6.14.2 a 3-byte character cut at the end", B("\xe0\xa0"), UTF8_TRUNCATED},
        {"6.14.3 a 4-byte character cut at the end", B("\xf0\x90\x80"), UTF8_TRUNCATED},
        {"6.14.4 kosme cut inside its second character", B("\xce\xba\xe1\xbd"), UTF8_TRUNCATED},
};

/* Steps of one text message of t in fragments of frag bytes; with
 * unfinished, the last fragment is not final either. Returns the steps. */
static size_t fragment_steps(Step *steps, const Bytes *t, size_t frag, bool unfinished) {
        size_t n = 0;
        frag = frag ? frag : 1;
        for (size_t off = 0; off == 0 || off < t->len; off += frag) {
                size_t len = t->len - off < frag ? t->len - off : frag;
                bool last = off + len >= t->len;
                steps[n++] = (Step){STEP_SEND,
                                    {.opcode = off ? WSC_CONT : WSC_TEXT, .more = !last || unfinished},
                                    {t->s + off, len, 0}};
                cr_assert(n < MAX_STEPS);
        }
        return n;
}

Test(websocket, autobahn_6_utf8) {
        enum { VARIANTS = 4 };
        static WsCase cases[ARRAY_SIZE(utf8_cases) * VARIANTS];
        size_t n = 0;
        for (size_t i = 0; i < ARRAY_SIZE(utf8_cases); i++) {
                const Bytes *t = &utf8_cases[i].text;
                Utf8Kind kind = utf8_cases[i].kind;
                /* The table says what the test's own decoder finds. */
                cr_assert_eq(wsc_utf8_valid(t->s, t->len), kind == UTF8_VALID, "%s", utf8_cases[i].name);
                uint16_t verdict = kind == UTF8_VALID ? 0 : 1007;
                /* In one frame. */
                WsCase *c = &cases[n++];
                snprintf(c->name, sizeof c->name, "%s, in one frame", utf8_cases[i].name);
                fragment_steps(c->steps, t, t->len ? t->len : 1, false);
                c->close = verdict;
                if (kind == UTF8_VALID)
                        c->relayed[0] = *t;
                /* In fragments of one byte (or about twenty fragments). */
                c = &cases[n++];
                snprintf(c->name, sizeof c->name, "%s, in fragments", utf8_cases[i].name);
                fragment_steps(c->steps, t, (t->len + 19) / 20, false);
                c->close = verdict;
                if (kind == UTF8_VALID)
                        c->relayed[0] = *t;
                if (kind != UTF8_INVALID)
                        continue;
                /* Fail-fast: the frame claims more than is ever sent. */
                c = &cases[n++];
                snprintf(c->name, sizeof c->name, "%s, fail-fast inside a frame", utf8_cases[i].name);
                c->steps[0] = (Step){STEP_SEND, {.opcode = WSC_TEXT, .declared_len = t->len + 64}, *t};
                c->close = 1007;
                /* Fail-fast: the message is never finished. */
                c = &cases[n++];
                snprintf(c->name, sizeof c->name, "%s, fail-fast across fragments", utf8_cases[i].name);
                fragment_steps(c->steps, t, (t->len + 1) / 2, true);
                c->close = 1007;
        }
        run_cases(cases, n, NULL);
}

/* A close reason of 123 bytes: the most a close frame holds. */
#define REASON_123                                                                                          \
        "reason-0123456789-0123456789-0123456789-0123456789"                                                \
        "reason-0123456789-0123456789-0123456789-0123456789"                                                \
        "reason-0123456789-01234"

/* 7.x: the closing handshake. The server echoes the client's close code;
 * a message completed before the close is relayed, nothing after it. */
Test(websocket, autobahn_7_closing) {
        static const WsCase cases[] = {
                {.name = "7.1.1 text, then close",
                 .steps = {SEND(WSC_TEXT, B("Hello World!")), SEND(WSC_CLOSE, B("\x03\xe8"))},
                 .relayed = {B("Hello World!")},
                 .close = 1000},
                {.name = "7.1.2 close twice",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8")), SEND(WSC_CLOSE, B("\x03\xe8"))},
                 .close = 1000},
                {.name = "7.1.3 close, then ping",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8")), SEND(WSC_PING, B("Hello World!"))},
                 .close = 1000},
                {.name = "7.1.4 close, then text",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8")), SEND(WSC_TEXT, B("Hello World!"))},
                 .close = 1000},
                {.name = "7.1.5 fragment, close, the last fragment",
                 .steps = {SEND(WSC_TEXT, B("fragment1"), .more = true), SEND(WSC_CLOSE, B("\x03\xe8")),
                           SEND(WSC_CONT, B("fragment2"))},
                 .close = 1000},
                {.name = "7.1.6 messages, then close, at once",
                 .steps = {SEND(WSC_TEXT, REP(1000, 'a')), SEND(WSC_BINARY, REP(1000, (char)0xFE)),
                           SEND(WSC_TEXT, B("3")), SEND(WSC_TEXT, REP(20000, 'z')),
                           SEND(WSC_CLOSE, B("\x03\xe8"))},
                 .relayed = {REP(1000, 'a'), REP(1000, (char)0xFE), B("3"), REP(20000, 'z')},
                 .close = 1000},
                {.name = "7.3.1 close without payload",
                 .steps = {SEND(WSC_CLOSE, B(""))},
                 .close = WSC_CLOSE_EMPTY},
                {.name = "7.3.4 close with a reason",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8Hello World!"))},
                 .close = 1000},
                {.name = "7.3.5 close with a reason of 123 bytes",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8" REASON_123))},
                 .close = 1000},
                {.name = "7.3.6 close with a reason of 124 bytes",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8" REASON_123 "*"))},
                 .close = 1002},
                {.name = "close with a multi-byte UTF-8 reason",
                 .steps = {SEND(WSC_CLOSE, B("\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"))},
                 .close = 1000},
                {.name = "close in 1-byte writes",
                 .steps = {SEND(WSC_CLOSE, B("\x0f\xa0"
                                             "bye"))},
                 .close = 4000,
                 .chop = 1},
                {.name = "TCP end after a whole message",
                 .steps = {SEND(WSC_TEXT, B("whole"))},
                 .relayed = {B("whole")},
                 .tcp_end = true},
                {.name = "TCP end inside a fragmented message",
                 .steps = {SEND(WSC_TEXT, B("part"), .more = true)},
                 .tcp_end = true},
                {.name = "TCP end inside a frame",
                 .steps = {SEND(WSC_TEXT, B("0123456789"), .declared_len = 100)},
                 .tcp_end = true},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 7.5.1: a close reason must be UTF-8; an invalid one is data
 * inconsistent with its type, as in a text message (RFC 6455 7.4.1: 1007;
 * Autobahn takes 1002 or 1007). */
Test(websocket, autobahn_7_close_reason_not_utf8_closes_1007) {
        static const WsCase cases[] = {
                {.name = "7.5.1 close with a reason that is not UTF-8",
                 .steps = {SEND(
                         WSC_CLOSE,
                         B("\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64"))},
                 .close = 1007},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* 7.7, 7.9: codes a peer may send are echoed; others are protocol errors
 * (1004-1006 and 1015 are reserved or never on the wire; below 1000,
 * unassigned 1xxx, 2xxx and past 4999 are not codes). */
Test(websocket, autobahn_7_close_codes) {
        static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                         1010, 1011, 3000, 3999, 4000, 4999};
        static const uint16_t invalid[] = {0,    999,  1004, 1005, 1006, 1015,
                                           1016, 1100, 2000, 2999, 5000, 65535};
        static char payloads[ARRAY_SIZE(valid) + ARRAY_SIZE(invalid)][2];
        WsCase cases[ARRAY_SIZE(payloads)] = {0};
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                bool ok = i < ARRAY_SIZE(valid);
                uint16_t code = ok ? valid[i] : invalid[i - ARRAY_SIZE(valid)];
                payloads[i][0] = (char)(code >> 8);
                payloads[i][1] = (char)code;
                snprintf(cases[i].name, sizeof cases[i].name, "7.%d close code %u", ok ? 7 : 9, code);
                cases[i].steps[0] = (Step){STEP_SEND, {.opcode = WSC_CLOSE}, {payloads[i], 2, 0}};
                cases[i].close = ok ? code : 1002;
        }
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* Broadcast messages are lines: an LF in a message closes with 1003; an LF
 * in a control frame's payload is no message. */
Test(websocket, line_feed_in_a_message_closes_1003) {
        static const WsCase cases[] = {
                {.name = "text with an LF", .steps = {SEND(WSC_TEXT, B("a\nb"))}, .close = 1003},
                {.name = "text ending in an LF", .steps = {SEND(WSC_TEXT, B("line\n"))}, .close = 1003},
                {.name = "binary with an LF", .steps = {SEND(WSC_BINARY, B("\x00\n\xff"))}, .close = 1003},
                {.name = "an LF in the second fragment",
                 .steps = {SEND(WSC_TEXT, B("ab"), .more = true), SEND(WSC_CONT, B("c\nd"))},
                 .close = 1003},
                {.name = "a message, then one with an LF",
                 .steps = {SEND(WSC_TEXT, B("fine")), SEND(WSC_TEXT, B("bad\n"))},
                 .relayed = {B("fine")},
                 .close = 1003},
                {.name = "an LF in a ping",
                 .steps = {SEND(WSC_PING, B("a\nb")), EXPECT(WSC_PONG, B("a\nb"))}},
                {.name = "CR and NUL are no line feeds",
                 .steps = {SEND(WSC_BINARY, B("a\rb\x00"))},
                 .relayed = {B("a\rb\x00")}},
        };
        run_cases(cases, ARRAY_SIZE(cases), NULL);
}

/* max_message_bytes counts the LF the log adds: payloads up to limit - 1,
 * all fragments together; more is 1009 as soon as a header makes it sure. */
Test(websocket, oversize_messages_close_1009) {
        static const WsCase cases[] = {
                {.name = "text of 999 bytes",
                 .steps = {SEND(WSC_TEXT, REP(999, 'o'))},
                 .relayed = {REP(999, 'o')}},
                {.name = "text of 1000 bytes", .steps = {SEND(WSC_TEXT, REP(1000, 'o'))}, .close = 1009},
                {.name = "a header alone that claims 1000 bytes",
                 .steps = {SEND(WSC_BINARY, B(""), .declared_len = 1000)},
                 .close = 1009},
                {.name = "a header alone that claims 2^40 bytes",
                 .steps = {SEND(WSC_BINARY, B(""), .declared_len = UINT64_C(1) << 40)},
                 .close = 1009},
                {.name = "fragments of 600 and a header claiming 400",
                 .steps = {SEND(WSC_TEXT, REP(600, 'o'), .more = true),
                           SEND(WSC_CONT, B(""), .declared_len = 400)},
                 .close = 1009},
                {.name = "fragments of 500 and 499",
                 .steps = {SEND(WSC_TEXT, REP(500, 'o'), .more = true), SEND(WSC_CONT, REP(499, 'o'))},
                 .relayed = {REP(999, 'o')}},
                {.name = "fragments of 600 and 399 with a ping of 125 between",
                 .steps = {SEND(WSC_TEXT, REP(600, 'o'), .more = true), SEND(WSC_PING, REP(125, 'p')),
                           SEND(WSC_CONT, REP(399, 'o')), EXPECT(WSC_PONG, REP(125, 'p'))},
                 .relayed = {REP(999, 'o')}},
                {.name = "a message, then one too long",
                 .steps = {SEND(WSC_TEXT, B("small")), SEND(WSC_TEXT, REP(1500, 'o'))},
                 .relayed = {B("small")},
                 .close = 1009},
        };
        run_cases(cases, ARRAY_SIZE(cases), "max_message_bytes = 1000;");
}

/* --- HTTP: the handshake and the other answers --------------------------------- */

typedef struct HttpCase {
        const char *name;
        const char *request; /* sent as it is */
        int status;
        /* Fields the answer must have, "Name: value" (the value exactly), or
         * "!Name" for one it must not have. */
        const char *fields[4];
        size_t chop; /* the request in writes of this size (0: at once) */
        bool head;   /* a HEAD request: the answer has no body */
} HttpCase;

/* A case: name, request, status, then optional designated fields. */
#define HTTP(name_, request_, status_, ...)                                                                 \
        { .name = name_, .request = request_, .status = status_, __VA_ARGS__ }
#define HOST "Host: 127.0.0.1\r\n"
#define UPGRADE_FIELDS                                                                                      \
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " WSC_SAMPLE_KEY                   \
        "\r\nSec-WebSocket-Version: 13\r\n"
#define UPGRADE "GET / HTTP/1.1\r\n" HOST UPGRADE_FIELDS

static void expect_fields(const WsResponse *r, const char *const fields[], const char *who) {
        char v[1024];
        for (size_t i = 0; i < 4 && fields[i]; i++) {
                const char *f = fields[i];
                if (f[0] == '!') {
                        cr_assert(!wsc_header(r, f + 1, v, sizeof v), "%s: %s in the answer:\n%s", who,
                                  f + 1, r->head);
                        continue;
                }
                const char *colon = strchr(f, ':');
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)(colon - f), f);
                cr_assert(wsc_header(r, name, v, sizeof v), "%s: no %s in the answer:\n%s", who, name,
                          r->head);
                cr_assert_str_eq(v, colon + 2, "%s: %s: %s, not %s", who, name, v, colon + 2);
        }
}

/* Sends the request, checks the answer; an answer other than 101 closes
 * the connection (Connection: close), and an error has a text body. */
static void run_http_case(uint16_t port, const HttpCase *k) {
        WsClient c;
        wsc_connect(&c, port);
        snprintf(c.who, sizeof c.who, "%s", k->name);
        size_t len = strlen(k->request);
        wsc_send_chopped(&c, k->request, len, k->chop ? k->chop : len, k->chop ? 1 : 0);
        WsResponse r;
        wsc_read_response(&c, &r, k->status != 101 && !k->head, 5000);
        cr_assert_eq(r.status, k->status, "%s: status %d, not %d:\n%s", k->name, r.status, k->status,
                     r.head);
        expect_fields(&r, k->fields, k->name);
        char v[256];
        if (k->status == 101) {
                wsc_close_handshake(&c, 1000);
        } else {
                cr_assert(wsc_header(&r, "Connection", v, sizeof v) && strcasecmp(v, "close") == 0,
                          "%s: no Connection: close:\n%s", k->name, r.head);
                if (k->status >= 400) {
                        cr_assert(wsc_header(&r, "Content-Type", v, sizeof v) &&
                                          strncmp(v, "text/plain", 10) == 0,
                                  "%s: an error that is not text/plain:\n%s", k->name, r.head);
                        cr_assert(k->head || r.body_len > 0, "%s: an error without a body", k->name);
                }
                /* One request per connection: nothing after the answer. */
                wsc_expect_eof(&c, 3000);
        }
        wsc_response_free(&r);
        wsc_free(&c);
}

/* The counters of n answered requests, of which refused were errors and
 * upgrades were 101s. */
static void expect_http_counters(Daemon *d, long long n, long long refused, long long upgrades) {
        cr_assert_eq(daemon_stat(d, "http_requests"), n);
        cr_assert_eq(daemon_stat_logged(d, "http_refused"), refused);
        cr_assert_eq(daemon_stat_logged(d, "websocket_upgrades"), upgrades);
}

static void run_http_cases(Daemon *d, uint16_t port, const HttpCase *cases, size_t n) {
        long long refused = 0, upgrades = 0;
        for (size_t i = 0; i < n; i++) {
                run_http_case(port, &cases[i]);
                refused += cases[i].status >= 400;
                upgrades += cases[i].status == 101;
        }
        expect_http_counters(d, (long long)n, refused, upgrades);
}

Test(websocket, http_answers) {
        static const HttpCase cases[] = {
                HTTP("the handshake of RFC 6455 1.2", "GET /chat HTTP/1.1\r\n" HOST UPGRADE_FIELDS "\r\n",
                     101,
                     .fields = {"Sec-WebSocket-Accept: " WSC_SAMPLE_ACCEPT, "Upgrade: websocket",
                                "!Sec-WebSocket-Protocol", "!Sec-WebSocket-Extensions"}),
                HTTP("the handshake in 1-byte writes", UPGRADE "\r\n", 101,
                     .fields = {"Sec-WebSocket-Accept: " WSC_SAMPLE_ACCEPT}, .chop = 1),
                HTTP("an upgrade of any path, with a query",
                     "GET /some/where?x=1&y HTTP/1.1\r\n" HOST UPGRADE_FIELDS "\r\n", 101),
                HTTP("field names and tokens in any case, token lists",
                     "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: WebSocket\r\n"
                     "connection: keep-alive, Upgrade\r\nsec-websocket-key: " WSC_SAMPLE_KEY
                     "\r\nsec-websocket-version: 13\r\n\r\n",
                     101, .fields = {"Sec-WebSocket-Accept: " WSC_SAMPLE_ACCEPT}),
                HTTP("a subprotocol and permessage-deflate offered",
                     UPGRADE "Sec-WebSocket-Protocol: chat, superchat\r\n"
                             "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
                     101, .fields = {"!Sec-WebSocket-Protocol", "!Sec-WebSocket-Extensions"}),
                HTTP("bare LF line ends",
                     "GET / HTTP/1.1\nHost: 127.0.0.1\nUpgrade: websocket\nConnection: "
                     "Upgrade\nSec-WebSocket-Key: " WSC_SAMPLE_KEY "\nSec-WebSocket-Version: 13\n\n",
                     101, .fields = {"Sec-WebSocket-Accept: " WSC_SAMPLE_ACCEPT}),
                HTTP("Sec-WebSocket-Version: 8",
                     "GET / HTTP/1.1\r\n" HOST
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " WSC_SAMPLE_KEY
                     "\r\nSec-WebSocket-Version: 8\r\n\r\n",
                     426, .fields = {"Sec-WebSocket-Version: 13"}),
                HTTP("an upgrade without Connection: upgrade",
                     "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\nSec-WebSocket-Key: " WSC_SAMPLE_KEY
                     "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     400),
                HTTP("an upgrade without a key",
                     "GET / HTTP/1.1\r\n" HOST
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     400),
                HTTP("a key of 15 bytes",
                     "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     400),
                HTTP("a key that is not base64",
                     "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     400),
                HTTP("POST with Upgrade", "POST / HTTP/1.1\r\n" HOST UPGRADE_FIELDS "\r\n", 400),
                HTTP("POST", "POST / HTTP/1.1\r\n" HOST "\r\n", 405, .fields = {"Allow: GET, HEAD"}),
                HTTP("DELETE of another path", "DELETE /x HTTP/1.1\r\n" HOST "\r\n", 405,
                     .fields = {"Allow: GET, HEAD"}),
                HTTP("a lowercase method", "get / HTTP/1.1\r\n" HOST "\r\n", 405,
                     .fields = {"Allow: GET, HEAD"}),
                HTTP("another path", "GET /nope HTTP/1.1\r\n" HOST "\r\n", 404),
                HTTP("the page", "GET / HTTP/1.1\r\n" HOST "\r\n", 200,
                     .fields = {"Content-Type: text/html; charset=utf-8"}),
                HTTP("the page with a refused Origin",
                     "GET / HTTP/1.1\r\n" HOST "Origin: http://evil.example\r\n\r\n", 200),
                HTTP("an upgrade with a refused Origin", UPGRADE "Origin: http://evil.example\r\n\r\n", 403),
                HTTP("an upgrade with the allowed Origin", UPGRADE "Origin: http://allowed.example\r\n\r\n",
                     101),
                HTTP("HTTP/1.0", "GET / HTTP/1.0\r\n" HOST "\r\n", 505),
                HTTP("HTTP/2.0", "GET / HTTP/2.0\r\n" HOST "\r\n", 505),
                HTTP("no Host", "GET / HTTP/1.1\r\n" UPGRADE_FIELDS "\r\n", 400),
                HTTP("two Host fields", "GET / HTTP/1.1\r\n" HOST HOST "\r\n", 400),
                HTTP("an obs-fold", "GET / HTTP/1.1\r\n" HOST "X-Folded: a\r\n b\r\n\r\n", 400),
                HTTP("a CR not before an LF", "GET / HTTP/1.1\r\n" HOST "X-Cr: a\rb\r\n\r\n", 400),
                HTTP("a field without a colon", "GET / HTTP/1.1\r\n" HOST "X-No-Colon\r\n\r\n", 400),
                HTTP("a blank before the colon", "GET / HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 400),
                HTTP("a body (Content-Length)", "GET / HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\nhello",
                     400),
                HTTP("a body (Transfer-Encoding)",
                     "GET / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
                HTTP("an absolute-form target",
                     "GET http://127.0.0.1/ HTTP/1.1\r\n" HOST UPGRADE_FIELDS "\r\n", 400),
                HTTP("two Origin fields",
                     UPGRADE "Origin: http://allowed.example\r\nOrigin: http://allowed.example\r\n\r\n",
                     400),
                HTTP("two keys", UPGRADE "Sec-WebSocket-Key: " WSC_SAMPLE_KEY "\r\n\r\n", 400),
                HTTP("two versions", UPGRADE "Sec-WebSocket-Version: 13\r\n\r\n", 400),
                HTTP("two blanks in the request line", "GET  / HTTP/1.1\r\n" HOST "\r\n", 400),
                HTTP("garbage pipelined after a request", "GET / HTTP/1.1\r\n" HOST "\r\nGARBAGE\r\n\r\n",
                     200),
                HTTP("a second request pipelined",
                     "GET / HTTP/1.1\r\n" HOST "\r\nGET /nope HTTP/1.1\r\n" HOST "\r\n", 200),
                HTTP("a TLS ClientHello on the plain port",
                     "\x16\x03\x01\x02\x05\x01\x01\x01\xfc\x03\x03\r\n\r\n", 400),
                HTTP("a line of text", "hello\n\n", 400),
        };
        Daemon d;
        uint16_t port = start_ws(&d, "origins = [ \"http://allowed.example\" ];", NULL);
        run_http_cases(&d, port, cases, ARRAY_SIZE(cases));
        daemon_stop(&d);
}

/* HTTP_HEAD_MAX: a head of 8192 bytes, its empty line included, is read; one
 * more byte is 431. Bytes that follow a head, however many, are read and
 * discarded: the answer still arrives whole (no reset for unread data). */
Test(websocket, http_large_requests) {
        enum { TRAILING = 1 << 20 };
        char *requests[3];
        static const char start[] = "GET / HTTP/1.1\r\n" HOST "X-Pad: ", end[] = "\r\n\r\n";
        for (size_t i = 0; i < 2; i++) {
                size_t total = 8192 + i, pad = total - (sizeof start - 1) - (sizeof end - 1);
                requests[i] = malloc(total + 1);
                cr_assert(requests[i]);
                snprintf(requests[i], total + 1, "%s%0*d%s", start, (int)pad, 0, end);
                cr_assert_eq(strlen(requests[i]), total);
        }
        static const char page[] = "GET / HTTP/1.1\r\n" HOST "\r\n";
        requests[2] = malloc(sizeof page + TRAILING);
        cr_assert(requests[2]);
        memcpy(requests[2], page, sizeof page - 1);
        memset(requests[2] + sizeof page - 1, 'g', TRAILING);
        requests[2][sizeof page - 1 + TRAILING] = '\0';
        const HttpCase cases[] = {
                HTTP("a head of 8192 bytes", requests[0], 200),
                HTTP("a head of 8193 bytes", requests[1], 431),
                HTTP("a head, then 1 MiB more", requests[2], 200),
        };
        Daemon d;
        uint16_t port = start_ws(&d, NULL, NULL);
        run_http_cases(&d, port, cases, ARRAY_SIZE(cases));
        daemon_stop(&d);
        for (size_t i = 0; i < ARRAY_SIZE(requests); i++)
                free(requests[i]);
}

/* HEAD gets the head of what GET would get, never a body (RFC 9110 9.3.2),
 * errors included. */
Test(websocket, http_head_requests_get_no_body) {
        static const HttpCase cases[] = {
                HTTP("HEAD /", "HEAD / HTTP/1.1\r\n" HOST "\r\n", 200, .head = true),
                HTTP("HEAD of another path", "HEAD /nope HTTP/1.1\r\n" HOST "\r\n", 404, .head = true),
                HTTP("HEAD with Upgrade", "HEAD / HTTP/1.1\r\n" HOST UPGRADE_FIELDS "\r\n", 400,
                     .head = true),
        };
        Daemon d;
        uint16_t port = start_ws(&d, NULL, NULL);
        run_http_cases(&d, port, cases, ARRAY_SIZE(cases));
        daemon_stop(&d);
}

/* origins: compared whole, byte for byte; "*" allows any; none (the
 * default) allows none; a request without Origin is no browser's and is
 * let in everywhere. */
Test(websocket, origins_allowed_refused_missing_and_any) {
        static const struct {
                size_t listener;
                const char *origin;
                int status;
        } table[] = {
                {0, "http://allowed.example", 101},
                {0, "https://also.example:8443", 101},
                {0, "http://allowed.example:80", 403},
                {0, "HTTP://ALLOWED.EXAMPLE", 403},
                {0, "http://allowed.example/", 403},
                {0, "http://allowed.exampl", 403},
                {0, "null", 403},
                {0, NULL, 101},
                {1, "http://anything.example", 101},
                {1, "null", 101},
                {1, NULL, 101},
                {2, "http://127.0.0.1", 403},
                {2, NULL, 101},
        };
        Setup s = {.ws = {"origins = [ \"http://allowed.example\", \"https://also.example:8443\" ];",
                          "origins = [ \"*\" ];", "", NULL}};
        Daemon d;
        uint16_t ports[MAX_WS_LISTENERS];
        setup_start(&d, &s, ports);
        long long refused = 0;
        for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
                char extra[128] = "", name[128];
                if (table[i].origin)
                        snprintf(extra, sizeof extra, "Origin: %s\r\n", table[i].origin);
                snprintf(name, sizeof name, "listener %zu, Origin %s", table[i].listener,
                         table[i].origin ? table[i].origin : "(none)");
                char *req = wsc_request("/", WSC_SAMPLE_KEY, extra);
                HttpCase k = {.name = name, .request = req, .status = table[i].status};
                run_http_case(ports[table[i].listener], &k);
                free(req);
                refused += table[i].status == 403;
        }
        expect_http_counters(&d, ARRAY_SIZE(table), refused, (long long)ARRAY_SIZE(table) - refused);
        cr_assert(daemon_log_contains(&d, "HTTP 403: origin not allowed", 0),
                  "no warning names the refusal");
        daemon_stop(&d);
}

/* GET / is the built-in page with its security headers; HEAD / the same
 * head without the body. */
Test(websocket, page_get_and_head) {
        static const char csp[] =
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'";
        const HttpCase get = HTTP("GET /", "GET / HTTP/1.1\r\n" HOST "\r\n", 200,
                                  .fields = {"Content-Type: text/html; charset=utf-8",
                                             "Cache-Control: no-store", "X-Content-Type-Options: nosniff"});
        Daemon d;
        uint16_t port = start_ws(&d, NULL, NULL);
        WsResponse page[3];
        const char *requests[] = {"GET / HTTP/1.1\r\n" HOST "\r\n", "GET /?room=1 HTTP/1.1\r\n" HOST "\r\n",
                                  "HEAD / HTTP/1.1\r\n" HOST "\r\n"};
        for (size_t i = 0; i < 3; i++) {
                bool head = i == 2;
                WsClient c;
                wsc_connect(&c, port);
                wsc_send_raw(&c, requests[i], strlen(requests[i]));
                wsc_read_response(&c, &page[i], !head, 5000);
                cr_assert_eq(page[i].status, 200, "%s", page[i].head);
                expect_fields(&page[i], get.fields, requests[i]);
                char v[512];
                cr_assert(wsc_header(&page[i], "Content-Security-Policy", v, sizeof v), "%s", page[i].head);
                cr_assert_str_eq(v, csp);
                wsc_expect_eof(&c, 3000);
                wsc_free(&c);
        }
        cr_assert(page[0].body_len > 100 && strncmp(page[0].body, "<!DOCTYPE html>", 15) == 0, "%s",
                  page[0].body);
        cr_assert(page[1].body_len == page[0].body_len &&
                          memcmp(page[1].body, page[0].body, page[0].body_len) == 0,
                  "a query changed the page");
        char a[32], b[32];
        cr_assert(wsc_header(&page[0], "Content-Length", a, sizeof a) &&
                  wsc_header(&page[2], "Content-Length", b, sizeof b));
        cr_assert_str_eq(b, a, "HEAD's Content-Length is not GET's");
        for (size_t i = 0; i < 3; i++)
                wsc_response_free(&page[i]);
        daemon_stop(&d);
}

/* A request head that never ends is answered 408 after request_timeout
 * (the housekeeping tick makes that ±1 s), and while it waits, nobody else
 * waits: others upgrade and relay as usual. A silent connection is the
 * same; one that leaves before its head ends is no refusal. */
Test(websocket, http_request_timeout_408_and_others_not_blocked) {
        Daemon d;
        uint16_t port = start_ws(&d, NULL, "request_timeout = 2;");
        WsClient stalled, silent, a, b;
        int64_t t0 = harness_now_ms();
        wsc_connect(&stalled, port);
        wsc_connect(&silent, port);
        const char partial[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr";
        wsc_send_raw(&stalled, partial, sizeof partial - 1);
        /* One that goes away before its head is complete is just gone: no
         * answer, not counted. */
        int gone = client_connect(port);
        client_send(gone, partial, sizeof partial - 1);
        close(gone);
        int line = client_connect(d.port);
        wsc_open(&a, port);
        wsc_open(&b, port);
        wait_clients(&d, 5);
        wsc_send_text(&a, "not blocked");
        wsc_expect_text(&b, "not blocked");
        client_expect_line(line, "not blocked\n");
        WsClient *waiting[] = {&stalled, &silent};
        for (size_t i = 0; i < ARRAY_SIZE(waiting); i++) {
                WsResponse r;
                wsc_read_response(waiting[i], &r, true, 6000);
                int64_t took = harness_now_ms() - t0;
                cr_assert_eq(r.status, 408, "%s", r.head);
                cr_assert(took >= 900, "408 after %lld ms, before request_timeout = 2 (-1 s)",
                          (long long)took);
                wsc_expect_eof(waiting[i], 3000);
                wsc_response_free(&r);
                wsc_free(waiting[i]);
        }
        expect_http_counters(&d, 4, 2, 2);
        /* request_timeout is over for upgraded clients: still in. */
        wsc_send_text(&b, "after the timeouts");
        wsc_expect_text(&a, "after the timeouts");
        client_expect_line(line, "after the timeouts\n");
        wsc_free(&a);
        wsc_free(&b);
        close(line);
        daemon_stop(&d);
}

/* A connection in its HTTP phase counts towards max_clients but gets no
 * broadcast; once upgraded it gets what is sent after its 101, and nothing
 * from before. */
Test(websocket, http_phase_counts_towards_max_clients_and_gets_nothing) {
        Daemon d;
        uint16_t port = start_ws(&d, NULL, "max_clients = 2;");
        int line = client_connect(d.port);
        WsClient h;
        wsc_connect(&h, port);
        char *req = wsc_request("/room/1", WSC_SAMPLE_KEY, NULL);
        size_t len = strlen(req);
        wsc_send_raw(&h, req, len - 2);            /* all but the empty line */
        client_id_of(&d, client_local_port(h.fd)); /* the daemon has taken it */
        int third = client_connect(d.port);
        cr_assert(client_wait_closed(third, 5000), "a third connection got past max_clients = 2");
        close(third);
        client_send_str(line, "before the upgrade\n");
        harness_sleep_ms(100); /* the daemon reads it before the head ends */
        wsc_send_raw(&h, req + len - 2, 2);
        WsResponse r;
        wsc_read_response(&h, &r, false, 5000);
        cr_assert_eq(r.status, 101, "%s", r.head);
        client_send_str(line, "after the upgrade\n");
        wsc_expect_text(&h, "after the upgrade");
        cr_assert(daemon_log_contains(&d, "WebSocket established (path /room/1)", 0));
        wsc_close_handshake(&h, 1000);
        free(req);
        wsc_free(&h);
        close(line);
        daemon_stop(&d);
}

/* --- WebSocket and line clients in one broadcast ------------------------------ */

/* A daemon with one websocket listener, n_ws WebSocket clients upgraded on
 * it and n_line line clients, all in the broadcast. */
#define MIXED_MAX 3
typedef struct Mixed {
        Daemon d;
        uint16_t port;
        WsClient ws[MIXED_MAX];
        int line[MIXED_MAX];
        size_t n_ws, n_line;
} Mixed;

static void mixed_start(Mixed *m, const char *settings, size_t n_ws, size_t n_line) {
        cr_assert(n_ws <= MIXED_MAX && n_line <= MIXED_MAX);
        m->n_ws = n_ws;
        m->n_line = n_line;
        m->port = start_ws(&m->d, NULL, settings);
        for (size_t i = 0; i < n_line; i++)
                m->line[i] = client_connect(m->d.port);
        for (size_t i = 0; i < n_ws; i++)
                wsc_open(&m->ws[i], m->port);
        wait_clients(&m->d, (long long)(n_ws + n_line));
}

static void mixed_stop(Mixed *m) {
        for (size_t i = 0; i < m->n_ws; i++)
                wsc_free(&m->ws[i]);
        clients_close(m->line, m->n_line);
        daemon_stop(&m->d);
}

/* WebSocket messages reach line clients with an LF; lines reach WebSocket
 * clients without it, as text when valid UTF-8 (prefix included) and as
 * binary otherwise, whatever opcode a WebSocket sender used; nobody gets
 * its own message. */
Test(websocket, ws_and_line_clients_relay_each_way) {
        static const struct {
                bool from_ws;
                uint8_t opcode; /* a WebSocket sender's */
                Bytes payload;
        } table[] = {
                {true, WSC_TEXT, B("h\xc3\xa9llo w\xc3\xb6rld")},
                {true, WSC_BINARY, B("binary but UTF-8")},
                {true, WSC_BINARY, B("\x00\xff\r")},
                {true, WSC_TEXT, B("")},
                {false, 0, B("plain line")},
                {false, 0, B("caf\xc3\xa9 \x00 \r")},
                {false, 0, B("\xc3\x28 not UTF-8")},
                {false, 0, B("")},
        };
        /* ws[0] and line[0] send, ws[1] and line[1] read. */
        Mixed m;
        mixed_start(&m, NULL, 2, 2);
        for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
                const Bytes *p = &table[i].payload;
                char who[32];
                snprintf(who, sizeof who, "message %zu", i);
                if (table[i].from_ws) {
                        wsc_send_msg(&m.ws[0], table[i].opcode, p->s, p->len);
                        line_expect_bytes(m.line[0], p->s, p->len, who);
                } else {
                        char *line = bytes_make(p); /* room for the LF where its NUL is */
                        line[p->len] = '\n';
                        client_send(m.line[0], line, p->len + 1);
                        free(line);
                        wsc_expect_msg(&m.ws[0], opcode_for(p->s, p->len), p->s, p->len, 5000);
                }
                line_expect_bytes(m.line[1], p->s, p->len, who);
                wsc_expect_msg(&m.ws[1], opcode_for(p->s, p->len), p->s, p->len, 5000);
        }
        /* No echo: the senders got only the others' messages. */
        wsc_expect_nothing(&m.ws[0], 200);
        client_expect_nothing(m.line[0], 200);
        mixed_stop(&m);
}

/* --- the wire form of broadcast messages ---------------------------------------- */

/* The largest payload of the wire test, 0xa000a: its 64-bit length holds
 * the byte 0x0a twice; max_message_bytes counts the LF the log adds. */
#define WIRE_MAX_PAYLOAD 0xa000a

/* Payload lengths whose single-frame header holds the byte 0x0a (7-bit 10;
 * 16-bit 0x010a, 0x0a00..0x0aff, 0xff0a...; 64-bit), the lengths next to
 * them, and the edges of the length encodings. */
static size_t wire_lengths(size_t *out, size_t size) {
        static const size_t more[] = {0,       1,       125,     126,     127,
                                      0x800a,  0xff09,  0xff0a,  0xff0b,  0xffff,
                                      0x10000, 0x1000a, 0x10a00, 0xa0000, WIRE_MAX_PAYLOAD};
        size_t n = 0;
        for (size_t len = 2; len <= 3000; len++) {
                if (!wsc_head_holds_lf(len - 1) && !wsc_head_holds_lf(len) && !wsc_head_holds_lf(len + 1))
                        continue;
                cr_assert(n < size);
                out[n++] = len;
        }
        for (size_t i = 0; i < ARRAY_SIZE(more); i++) {
                cr_assert(n < size);
                out[n++] = more[i];
        }
        return n;
}

/* A payload of len bytes that differs at every length and offset, without
 * an LF; binary (invalid UTF-8: 0xff first) when binary. Room for an LF
 * after it. */
static char *wire_payload(size_t len, bool binary) {
        char *p = malloc(len + 1);
        cr_assert(p);
        for (size_t i = 0; i < len; i++)
                p[i] = binary ? (char)(0x80 + (i * 7 + len) % 0x7f) : (char)('a' + (i * 7 + len) % 26);
        if (binary && len)
                p[0] = (char)0xff;
        return p;
}

/* A raw reader gets one broadcast message of len bytes as the wire form
 * says: one final data frame, or, exactly when its header would hold 0x0a,
 * a first fragment (FIN clear) and one final continuation; no header holds
 * 0x0a; then the trailer pong, bytes 8a 01 0a. */
static void expect_wire_form(WsClient *c, uint8_t opcode, const char *payload, size_t len) {
        bool split = wsc_head_holds_lf(len);
        size_t got = 0;
        char head[64];
        WscFrameIn f;
        for (unsigned k = 0; k < (split ? 2u : 1u); k++) {
                cr_assert_eq(wsc_recv_frame(c, &f, 5000), 1, "%s: frame %u of a message of %zu bytes",
                             c->who, k + 1, len);
                snprintf(head, sizeof head, "%02x %02x%s", f.head[0], f.head[1],
                         f.head_len > 2 ? " ..." : "");
                cr_assert(f.opcode == (k ? WSC_CONT : opcode) && f.fin == (!split || k == 1),
                          "%s: frame %u of a message of %zu bytes (%s) begins %s", c->who, k + 1, len,
                          split ? "2 fragments" : "one frame", head);
                cr_assert(!memchr(f.head, '\n', f.head_len), "%s: a header with 0x0a, of %zu bytes", c->who,
                          f.len);
                cr_assert(f.len <= len - got && memcmp(f.payload, payload + got, f.len) == 0,
                          "%s: fragment %u of a message of %zu bytes (%zu of it) is not the payload at %zu",
                          c->who, k + 1, len, f.len, got);
                got += f.len;
        }
        cr_assert_eq(got, len, "%s: the fragments of a message of %zu bytes hold %zu", c->who, len, got);
        cr_assert_eq(wsc_recv_frame(c, &f, 5000), 1, "%s: no trailer after a message of %zu bytes", c->who,
                     len);
        cr_assert(f.head_len == 2 && f.head[0] == 0x8a && f.head[1] == 0x01 && f.len == 1 &&
                          f.payload[0] == '\n',
                  "%s: after a message of %zu bytes, a frame beginning %02x %02x, not the trailer 8a 01 0a",
                  c->who, len, f.head[0], f.head[1]);
}

/* Messages whose single-frame header would hold 0x0a come as one message in
 * two fragments, all others in one frame, every one followed by exactly one
 * trailer pong; from line and WebSocket senders alike, text and binary, up
 * to max_message_bytes. */
Test(websocket, lengths_whose_header_holds_an_lf_come_in_two_fragments) {
        static const size_t split[] = {10, 266, 522, 2570, 2815, 65290, 0x1000a, WIRE_MAX_PAYLOAD};
        static const size_t whole[] = {9, 11, 265, 267, 2559, 2816, 65289, 65291, 65535, 0x10000};
        for (size_t i = 0; i < ARRAY_SIZE(split); i++)
                cr_assert(wsc_head_holds_lf(split[i]), "the header of %zu bytes has no 0x0a", split[i]);
        for (size_t i = 0; i < ARRAY_SIZE(whole); i++)
                cr_assert(!wsc_head_holds_lf(whole[i]), "the header of %zu bytes has 0x0a", whole[i]);
        static size_t lengths[400];
        size_t n = wire_lengths(lengths, ARRAY_SIZE(lengths));
        /* ws[0] and line[0] send in turn (and read each other); ws[1] reads
         * frames, ws[2] messages, line[1] lines. */
        char settings[128];
        snprintf(settings, sizeof settings, "max_message_bytes = %d;\nmax_queue_bytes = 8388608;",
                 WIRE_MAX_PAYLOAD + 1);
        Mixed m;
        mixed_start(&m, settings, 3, 2);
        snprintf(m.ws[1].who, sizeof m.ws[1].who, "the frame reader");
        snprintf(m.ws[2].who, sizeof m.ws[2].who, "the message reader");
        for (size_t i = 0; i < n; i++) {
                size_t len = lengths[i];
                bool binary = i % 3 == 2, from_ws = i % 2;
                char *p = wire_payload(len, binary), who[64];
                uint8_t opcode = opcode_for(p, len);
                snprintf(who, sizeof who, "a message of %zu bytes", len);
                if (from_ws) {
                        wsc_send_msg(&m.ws[0], binary ? WSC_BINARY : WSC_TEXT, p, len);
                        line_expect_bytes(m.line[0], p, len, who);
                } else {
                        p[len] = '\n';
                        client_send(m.line[0], p, len + 1);
                        wsc_expect_msg(&m.ws[0], opcode, p, len, 5000);
                }
                line_expect_bytes(m.line[1], p, len, who);
                expect_wire_form(&m.ws[1], opcode, p, len);
                wsc_expect_msg(&m.ws[2], opcode, p, len, 5000);
                free(p);
        }
        for (size_t i = 1; i < 3; i++) {
                wsc_expect_nothing(&m.ws[i], 200);
                cr_assert(m.ws[i].messages == n && m.ws[i].trailers == n,
                          "%s: %llu messages, %llu trailers of %zu", m.ws[i].who,
                          (unsigned long long)m.ws[i].messages, (unsigned long long)m.ws[i].trailers, n);
        }
        mixed_stop(&m);
}

/* One global order across WebSocket and line senders: a WebSocket and a
 * line reader see the same sequence, each sender's messages in its order. */
Test(websocket, one_global_order_across_mixed_senders) {
        enum { SENDERS = 4, PER_SENDER = 200 };
        /* Senders: ws[0], ws[1] (0, 1), line[0], line[1] (2, 3); ws[2] and
         * line[2] read. */
        Mixed m;
        mixed_start(&m, NULL, 3, 3);
        /* Bursts of 1 to 4 messages in turn, so that the daemon sees
         * several senders at once. */
        int sent[SENDERS] = {0};
        unsigned rnd = 4242;
        for (int done = 0; done < SENDERS * PER_SENDER;) {
                for (int s = 0; s < SENDERS; s++) {
                        int burst = 1 + (int)below(&rnd, 4);
                        WscBytes out = {0};
                        for (int k = 0; k < burst && sent[s] < PER_SENDER; k++, done++) {
                                char msg[32];
                                int n = snprintf(msg, sizeof msg, s < 2 ? "s%d-%d" : "s%d-%d\n", s,
                                                 sent[s]++);
                                if (s < 2)
                                        wsc_bytes_frame(&m.ws[s], &out, &(WscFrame){.opcode = WSC_TEXT}, msg,
                                                        (size_t)n);
                                else
                                        wsc_bytes_add(&out, msg, (size_t)n);
                        }
                        if (s < 2)
                                wsc_send_raw(&m.ws[s], out.data, out.len);
                        else
                                client_send(m.line[s - 2], out.data, out.len);
                        wsc_bytes_free(&out);
                }
                harness_sleep_ms(1);
        }
        int next[SENDERS] = {0}, switches = 0, last_sender = -1;
        for (int i = 0; i < SENDERS * PER_SENDER; i++) {
                char got[64];
                size_t n = client_recv_line(m.line[2], got, sizeof got, 10000);
                wsc_expect_msg(&m.ws[2], WSC_TEXT, got, n - 1, 10000);
                int s, num;
                cr_assert(sscanf(got, "s%d-%d", &s, &num) == 2 && s >= 0 && s < SENDERS, "message %d: %s", i,
                          got);
                cr_assert_eq(num, next[s], "sender %d: message %d where %d was due", s, num, next[s]);
                next[s]++;
                switches += last_sender >= 0 && last_sender != s;
                last_sender = s;
        }
        cr_assert(switches > 4 * SENDERS, "the senders were not interleaved (%d switches)", switches);
        mixed_stop(&m);
}

/* One sender's stream cut every way at once: 2000 numbered messages, each
 * in 1 to 4 fragments (some empty), pings between fragments, the whole
 * stream written in random pieces of 1 to 3000 bytes. Readers get every
 * message whole and in order; every ping is answered in order (the last
 * one at least, RFC 6455 5.5.3). */
Test(websocket, a_stream_cut_at_random_arrives_whole_and_in_order) {
        enum { COUNT = 2000 };
        /* ws[0] sends, ws[1] and line[0] read. */
        Mixed m;
        mixed_start(&m, NULL, 2, 1);
        WscBytes out = {0};
        unsigned rnd = 2026;
        long pings = 0;
        for (int i = 0; i < COUNT; i++) {
                char msg[64];
                size_t len = (size_t)snprintf(msg, sizeof msg, "message %d of the stream", i);
                size_t frags = 1 + below(&rnd, 4), off = 0;
                for (size_t k = 0; k < frags; k++) {
                        size_t n = k + 1 == frags ? len - off : below(&rnd, len - off + 1);
                        WscFrame f = {.opcode = k ? WSC_CONT : WSC_TEXT, .more = k + 1 < frags};
                        wsc_bytes_frame(&m.ws[0], &out, &f, msg + off, n);
                        off += n;
                        if (below(&rnd, 8) == 0) {
                                char ping[16];
                                int pn = snprintf(ping, sizeof ping, "p%ld", pings++);
                                wsc_bytes_frame(&m.ws[0], &out, &(WscFrame){.opcode = WSC_PING}, ping,
                                                (size_t)pn);
                        }
                }
        }
        for (size_t off = 0; off < out.len;) {
                size_t n = 1 + below(&rnd, 3000);
                n = n < out.len - off ? n : out.len - off;
                wsc_send_raw(&m.ws[0], out.data + off, n);
                off += n;
        }
        wsc_bytes_free(&out);
        for (int i = 0; i < COUNT; i++) {
                char msg[64];
                size_t len = (size_t)snprintf(msg, sizeof msg, "message %d of the stream", i);
                line_expect_bytes(m.line[0], msg, len, "the line reader");
                wsc_expect_msg(&m.ws[1], WSC_TEXT, msg, len, 5000);
        }
        long last = -1;
        while (last < pings - 1) {
                WscMsgIn f;
                long p;
                cr_assert_eq(wsc_recv(&m.ws[0], &f, 5000), 1, "the pong of p%ld of %ld pings", last + 1,
                             pings);
                cr_assert(f.opcode == WSC_PONG && sscanf((const char *)f.payload, "p%ld", &p) == 1 &&
                                  p > last,
                          "after the pong of p%ld: a frame of opcode %u, %zu bytes", last, f.opcode, f.len);
                last = p;
        }
        cr_assert(pings > 0);
        mixed_stop(&m);
}

/* Many WebSocket readers at once: each gets every message whole and in
 * order. */
Test(websocket, a_hundred_ws_clients_get_every_message_whole_and_in_order) {
        enum { CLIENTS = 100, COUNT = 1000, LEN = 64 };
        Daemon d;
        uint16_t port = start_ws(&d, NULL, NULL);
        static WsClient c[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
                wsc_open(&c[i], port);
        int sender = client_connect(d.port);
        wait_clients(&d, CLIENTS + 1);
        static char all[COUNT * LEN];
        for (uint32_t i = 0; i < COUNT; i++)
                seq_msg_format(all + (size_t)i * LEN, LEN, i);
        client_send(sender, all, sizeof all);
        for (int i = 0; i < CLIENTS; i++) {
                snprintf(c[i].who, sizeof c[i].who, "reader %d", i);
                for (uint32_t k = 0; k < COUNT; k++)
                        wsc_expect_msg(&c[i], WSC_TEXT, all + (size_t)k * LEN, LEN - 1, 10000);
                wsc_free(&c[i]);
        }
        close(sender);
        daemon_stop(&d);
}

Test(websocket, echo_true_returns_a_senders_own_messages) {
        Mixed m;
        mixed_start(&m, "echo = true;", 1, 1);
        wsc_send_text(&m.ws[0], "mine");
        wsc_expect_text(&m.ws[0], "mine");
        client_expect_line(m.line[0], "mine\n");
        client_send_str(m.line[0], "yours\n");
        client_expect_line(m.line[0], "yours\n");
        wsc_expect_text(&m.ws[0], "yours");
        wsc_close_handshake(&m.ws[0], 1000);
        mixed_stop(&m);
}

/* prefix with %a and %i applies to WebSocket senders as to line senders,
 * and counts in the UTF-8 verdict of the frame. */
Test(websocket, prefix_with_address_and_id) {
        /* ws[0] and line[0] send, ws[1] reads. */
        Mixed m;
        mixed_start(&m, "prefix = \"%a %i: \";", 2, 1);
        uint16_t wport = client_local_port(m.ws[0].fd), lport = client_local_port(m.line[0]);
        char want[128];
        int n = snprintf(want, sizeof want, "127.0.0.1:%u %llu: hi", wport, client_id_of(&m.d, wport));
        wsc_send_text(&m.ws[0], "hi");
        line_expect_bytes(m.line[0], want, (size_t)n, "prefixed WebSocket message");
        wsc_expect_text(&m.ws[1], want);
        n = snprintf(want, sizeof want, "127.0.0.1:%u %llu: \xff", wport, client_id_of(&m.d, wport));
        wsc_send_msg(&m.ws[0], WSC_BINARY, "\xff", 1);
        line_expect_bytes(m.line[0], want, (size_t)n, "prefixed binary message");
        wsc_expect_msg(&m.ws[1], WSC_BINARY, want, (size_t)n, 5000);
        n = snprintf(want, sizeof want, "127.0.0.1:%u %llu: yo", lport, client_id_of(&m.d, lport));
        client_send_str(m.line[0], "yo\n");
        wsc_expect_text(&m.ws[0], want);
        wsc_expect_text(&m.ws[1], want);
        mixed_stop(&m);
}

/* Roles on websocket listeners: a subscriber's messages are read and
 * discarded (counted), a publisher gets no broadcast; both still get their
 * pongs and closes. */
Test(websocket, roles_subscribe_and_publish) {
        Setup s = {.ws = {"role = \"subscribe\";", "role = \"publish\";", NULL}};
        Daemon d;
        uint16_t ports[MAX_WS_LISTENERS];
        setup_start(&d, &s, ports);
        WsClient sub, pub;
        int line = client_connect(d.port);
        wsc_open(&sub, ports[0]);
        wsc_open(&pub, ports[1]);
        wait_clients(&d, 3);
        wsc_send_text(&pub, "published");
        client_expect_line(line, "published\n");
        wsc_expect_text(&sub, "published");
        client_send_str(line, "to all\n");
        wsc_expect_text(&sub, "to all");
        wsc_send_text(&sub, "ignored");
        wsc_send_msg(&sub, WSC_PING, "sub", 3);
        wsc_expect_msg(&sub, WSC_PONG, "sub", 3, 5000);
        wsc_send_msg(&pub, WSC_PING, "pub", 3);
        wsc_expect_msg(&pub, WSC_PONG, "pub", 3, 5000);
        client_expect_nothing(line, 200);
        wsc_expect_nothing(&pub, 100);
        cr_assert(daemon_stat(&d, "discarded") >= 7,
                  "the subscriber's message was not counted as discarded");
        wsc_close_handshake(&sub, 1000);
        wsc_close_handshake(&pub, 1000);
        wsc_free(&sub);
        wsc_free(&pub);
        close(line);
        daemon_stop(&d);
}

/* --- slow WebSocket readers ----------------------------------------------------- */

#define SEQ_LEN 1000
/* Seq messages whose payload (2570 bytes, 0x0a0a) the daemon sends in two
 * fragments: a reader of them sees whether a pong ever comes between. */
#define SEQ_LEN_FRAGMENTED 2571
#define SEQ_LEN_MAX SEQ_LEN_FRAGMENTED

/* Reads seq messages (harness.h) of len bytes as WebSocket messages: each
 * one text message holding the seq message without its LF. */
typedef struct WsSeqReader {
        WsClient *c;
        size_t len;  /* of a seq message, LF included (≤ SEQ_LEN_MAX) */
        bool strict; /* every number, no gap */
        long last;   /* -1 before the first */
        uint64_t received, gaps;
        uint32_t want; /* read no more than this many (0: no limit) */
        /* Pongs of pings "p<N>" may come between the messages: the last N
         * answered (-1 before), how many pongs; otherwise a pong is an
         * error like any frame that is not the next message. */
        bool pongs;
        long last_pong;
        uint64_t n_pongs;
        uint64_t received_at_first_pong;
        char error[256];
} WsSeqReader;

/* Reads what is there, without waiting, and no further than r->want
 * messages (when set): what follows them is the caller's. */
static void ws_seq_poll(WsSeqReader *r) {
        WscMsgIn f;
        while (!r->error[0] && (!r->want || r->received < r->want) && wsc_recv(r->c, &f, 0) == 1) {
                long ping;
                char tail;
                if (r->pongs && f.opcode == WSC_PONG &&
                    sscanf((const char *)f.payload, "p%ld%c", &ping, &tail) == 1) {
                        if (ping <= r->last_pong)
                                snprintf(r->error, sizeof r->error, "the pong of p%ld after that of p%ld",
                                         ping, r->last_pong);
                        r->last_pong = ping;
                        if (r->n_pongs++ == 0)
                                r->received_at_first_pong = r->received;
                        continue;
                }
                char line[SEQ_LEN_MAX];
                long seq = -1;
                cr_assert(r->len <= SEQ_LEN_MAX);
                if (f.opcode == WSC_TEXT && f.len == r->len - 1) {
                        memcpy(line, f.payload, f.len);
                        line[f.len] = '\n';
                        seq = seq_msg_parse(line, r->len, r->len);
                }
                if (seq < 0 || seq <= r->last || (r->strict && seq != r->last + 1)) {
                        snprintf(
                                r->error, sizeof r->error,
                                "after message %ld: a frame (opcode %u, %zu bytes) that is not the next one",
                                r->last, f.opcode, f.len);
                        return;
                }
                r->gaps += (uint64_t)(seq - r->last - 1);
                r->last = seq;
                r->received++;
        }
}

static bool ws_seq_tick(void *arg) {
        WsSeqReader *r = arg;
        ws_seq_poll(r);
        return r->received < r->want && !r->error[0] && !r->c->eof;
}

/* A slow WebSocket reader (SO_RCVBUF 4096, reads only when told), a healthy
 * WebSocket reader, a healthy line reader and a line sender: the sender
 * sends more than the kernel can buffer, the healthy ones get it all. */
typedef struct SlowWs {
        Daemon d;
        WsClient slow, healthy;
        int line_reader, sender;
        WsSeqReader healthy_seq;
        uint32_t count;
} SlowWs;

static void slow_ws_run(SlowWs *t, const char *policy) {
        char settings[256];
        snprintf(settings, sizeof settings,
                 "max_message_bytes = 4096;\nmax_queue_bytes = 65536;\nslow_client = \"%s\";", policy);
        uint16_t port = start_ws(&t->d, NULL, settings);
        wsc_adopt(&t->slow, client_connect_rcvbuf(port, 4096));
        wsc_upgrade(&t->slow, "/", NULL);
        wsc_open(&t->healthy, port);
        t->line_reader = client_connect(t->d.port);
        t->sender = client_connect(t->d.port);
        wait_clients(&t->d, 4);
        t->count = (uint32_t)((harness_kernel_buffering() + 4u * 1024 * 1024) / SEQ_LEN);
        t->healthy_seq = (WsSeqReader){
                .c = &t->healthy, .len = SEQ_LEN, .strict = true, .last = -1, .want = t->count};
        SeqReader line;
        seq_reader_init(&line, t->line_reader, SEQ_LEN, true);
        SeqReader *readers[] = {&line};
        pump_seq_tick(t->sender, readers, 1, t->count, SEQ_LEN, NULL, NULL, 60000, ws_seq_tick,
                      &t->healthy_seq);
        seq_reader_expect_all(&line, t->count, "the line reader");
        cr_assert(!t->healthy_seq.error[0], "the healthy WebSocket reader: %s", t->healthy_seq.error);
        cr_assert_eq(t->healthy_seq.received, t->count, "the healthy WebSocket reader got %llu of %u",
                     (unsigned long long)t->healthy_seq.received, t->count);
        seq_reader_free(&line);
        cr_assert(daemon_log_contains(&t->d, "over max_queue_bytes", 3000),
                  "no \"over max_queue_bytes\" warning");
}

static void slow_ws_free(SlowWs *t) {
        wsc_free(&t->slow);
        wsc_free(&t->healthy);
        close(t->line_reader);
        close(t->sender);
        daemon_stop(&t->d);
}

Test(websocket, slow_reader_disconnected_others_keep_receiving) {
        SlowWs t;
        slow_ws_run(&t, "disconnect");
        cr_assert(client_wait_closed(t.slow.fd, 10000), "the slow WebSocket reader was never disconnected");
        cr_assert_eq(daemon_stat(&t.d, "slow_disconnects"), 1);
        slow_ws_free(&t);
}

Test(websocket, slow_reader_drop_gets_whole_frames_with_gaps) {
        SlowWs t;
        slow_ws_run(&t, "drop");
        /* What the slow reader was left: whole frames, in order, some
         * missing; until 1 s of quiet. */
        WsSeqReader s = {.c = &t.slow, .len = SEQ_LEN, .last = -1};
        int64_t deadline = harness_now_ms() + harness_ms(30000), quiet_since = harness_now_ms();
        while (harness_now_ms() - quiet_since < 1000) {
                cr_assert(harness_now_ms() < deadline, "the slow reader never drained");
                uint64_t before = s.received;
                ws_seq_poll(&s);
                cr_assert(!s.error[0], "the slow reader: %s", s.error);
                cr_assert(!t.slow.eof, "drop mode disconnected the slow reader");
                if (s.received != before)
                        quiet_since = harness_now_ms();
                else
                        harness_sleep_ms(5);
        }
        cr_assert(wsc_between_messages(&t.slow),
                  "the slow reader was left inside a frame or a message, or without a trailer pong");
        cr_assert_eq(t.slow.trailers, t.slow.messages);
        cr_assert(s.received > 0 && s.gaps > 0,
                  "the slow reader got %llu of %u: the queue limit never applied",
                  (unsigned long long)s.received, t.count);
        cr_assert(daemon_stat(&t.d, "dropped") > 0);
        /* Still served once it keeps up. */
        char msg[SEQ_LEN];
        seq_msg_format(msg, SEQ_LEN, t.count);
        client_send(t.sender, msg, SEQ_LEN);
        wsc_expect_msg(&t.slow, WSC_TEXT, msg, SEQ_LEN - 1, 5000);
        slow_ws_free(&t);
}

/* On SIGHUP ping_interval and request_timeout apply at once. */
Test(websocket, sighup_applies_ping_interval_and_request_timeout) {
        Setup s = {.ws = {"", NULL}, .settings = "ping_interval = 0;\nrequest_timeout = 60;"};
        Daemon d;
        uint16_t ports[MAX_WS_LISTENERS];
        setup_start(&d, &s, ports);
        WsClient idle, stalled;
        wsc_open(&idle, ports[0]);
        wsc_connect(&stalled, ports[0]);
        wsc_send_raw(&stalled, "GET / HTTP/1.1\r\n", 16);
        wsc_expect_nothing(&idle, 1500); /* ping_interval = 0: never pinged */
        s.settings = "ping_interval = 1;\nrequest_timeout = 1;";
        char *conf = setup_conf(&s, ports);
        daemon_write_conf(&d, conf);
        free(conf);
        daemon_signal(&d, SIGHUP); /* the first reload */
        cr_assert(daemon_log_contains(&d, "reloaded configuration", 5000), "no reload");
        WsResponse r;
        wsc_read_response(&stalled, &r, true, 4000);
        cr_assert_eq(r.status, 408, "%s", r.head);
        wsc_response_free(&r);
        WscMsgIn f;
        cr_assert_eq(wsc_recv(&idle, &f, 4000), 1, "no ping within 4 s of ping_interval = 1");
        cr_assert_eq(f.opcode, WSC_PING, "a frame of opcode %u, not a ping", f.opcode);
        wsc_free(&idle);
        wsc_free(&stalled);
        daemon_stop(&d);
}

/* --- a backlog: frames the daemon holds for a slow WebSocket reader ------------ */

/* The most a socket's send buffer grows to (tcp_wmem's maximum). */
static size_t tcp_wmem_max(void) {
        FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
        unsigned long lo, def, max = 4u << 20;
        if (f) {
                if (fscanf(f, "%lu %lu %lu", &lo, &def, &max) != 3)
                        max = 4u << 20;
                fclose(f);
        }
        return max;
}

/* The most seq messages of len bytes the socket buffers between the daemon
 * and a reader with a 4 KiB receive buffer can hold: past them the daemon
 * queues. (Framed, a message takes more than len bytes there.) */
static uint32_t socket_buffers_hold(size_t len) {
        return (uint32_t)((tcp_wmem_max() + 2 * 4096) / len) + 64;
}

/* A daemon (max_queue_bytes 64 MiB, and settings), a WebSocket reader with
 * a 4 KiB receive buffer (so that the daemon queues for it, and is often
 * inside a frame when the reader says something), and a line client that
 * has sent count seq messages of SEQ_LEN_FRAGMENTED bytes (each two
 * fragments on the wire, then a trailer pong), all read by the daemon. */
typedef struct Backlog {
        Daemon d;
        WsClient reader;
        int sender;
        uint32_t count;
        WsSeqReader seq; /* strict, pongs of "p<N>" allowed */
} Backlog;

static void backlog_start(Backlog *b, const char *settings, uint32_t count) {
        char *conf;
        cr_assert(asprintf(&conf, "max_queue_bytes = 67108864;\n%s", settings ? settings : "") > 0);
        uint16_t port = start_ws(&b->d, NULL, conf);
        free(conf);
        wsc_adopt(&b->reader, client_connect_rcvbuf(port, 4096));
        wsc_upgrade(&b->reader, "/", NULL);
        b->sender = client_connect(b->d.port);
        wait_clients(&b->d, 2);
        b->count = count;
        char *all = malloc((size_t)count * SEQ_LEN_FRAGMENTED);
        cr_assert(all);
        for (uint32_t i = 0; i < count; i++)
                seq_msg_format(all + (size_t)i * SEQ_LEN_FRAGMENTED, SEQ_LEN_FRAGMENTED, i);
        client_send(b->sender, all, (size_t)count * SEQ_LEN_FRAGMENTED);
        free(all);
        cr_assert_eq(daemon_wait_stat(&b->d, "messages", count, 10000), count);
        b->seq = (WsSeqReader){.c = &b->reader,
                               .len = SEQ_LEN_FRAGMENTED,
                               .strict = true,
                               .last = -1,
                               .pongs = true,
                               .last_pong = -1};
}

static void backlog_stop(Backlog *b) {
        cr_assert(!b->seq.error[0], "%s", b->seq.error);
        wsc_free(&b->reader);
        close(b->sender);
        daemon_stop(&b->d);
}

/* A pong goes out between broadcast messages, never inside a frame nor
 * between a message's fragments: a reader with a 4 KiB receive buffer (so
 * that the daemon is often inside a frame when a ping comes) pings while it
 * reads a long stream; every message comes whole, in order, each ping
 * answered in order (RFC 6455 5.5.3 allows one
 * pong for several pings not answered yet, so some may be skipped, never
 * the last). */
Test(websocket, pongs_between_broadcast_frames_never_inside) {
        enum { COUNT = 3000, PING_EVERY = 50 };
        Backlog b;
        backlog_start(&b, NULL, COUNT);
        WsClient *w = &b.reader;
        WsSeqReader *r = &b.seq;
        long pings = 0;
        int64_t deadline = harness_now_ms() + harness_ms(30000);
        while ((r->received < COUNT || r->last_pong < pings - 1) && !r->error[0] && !w->eof) {
                cr_assert(harness_now_ms() < deadline, "%llu of %u messages, pong of p%ld of %ld pings",
                          (unsigned long long)r->received, COUNT, r->last_pong, pings);
                uint64_t before = r->received;
                ws_seq_poll(r);
                if (r->received / PING_EVERY != before / PING_EVERY || (before == 0 && pings == 0)) {
                        char ping[16];
                        int n = snprintf(ping, sizeof ping, "p%ld", pings++);
                        wsc_send_msg(w, WSC_PING, ping, (size_t)n);
                }
                if (r->received == before)
                        harness_sleep_ms(1);
        }
        cr_assert(!r->error[0], "%s", r->error);
        cr_assert(!w->eof, "the reader was closed");
        cr_assert(r->n_pongs > 0 && r->last_pong == pings - 1, "%llu pongs, the last of p%ld of %ld pings",
                  (unsigned long long)r->n_pongs, r->last_pong, pings);
        wsc_close_handshake(w, 1000);
        backlog_stop(&b);
}

/* "Sent before any further broadcast frame": a pong overtakes what the
 * daemon still has queued for its client; only what already sits in the
 * socket buffers (the daemon's send buffer, the reader's 4 KiB receive
 * buffer) may come before it. */
Test(websocket, a_pong_overtakes_the_frames_queued_for_its_client) {
        uint32_t ahead = socket_buffers_hold(SEQ_LEN_FRAGMENTED), count = 3 * ahead;
        Backlog b;
        backlog_start(&b, NULL, count);
        WsClient *w = &b.reader;
        WsSeqReader *r = &b.seq;
        wsc_send_msg(w, WSC_PING, "p0", 2);
        int64_t deadline = harness_now_ms() + harness_ms(30000);
        while ((r->received < count || r->n_pongs == 0) && !r->error[0] && !w->eof) {
                cr_assert(harness_now_ms() < deadline, "%llu of %u messages, %llu pongs",
                          (unsigned long long)r->received, count, (unsigned long long)r->n_pongs);
                ws_seq_poll(r);
        }
        cr_assert(!r->error[0], "%s", r->error);
        cr_assert(r->n_pongs == 1 && r->received_at_first_pong <= ahead,
                  "the pong came after %llu of %u queued messages (at most %u were in socket buffers)",
                  (unsigned long long)r->received_at_first_pong, count, ahead);
        backlog_stop(&b);
}

/* SIGTERM: what is queued is sent, then a close 1001; the daemon exits
 * once the client answers, well before shutdown_timeout. */
Test(websocket, sigterm_sends_queued_messages_then_close_1001) {
        /* More than the socket buffers hold, so that the daemon still has
         * some of it queued when the signal comes. */
        Backlog b;
        backlog_start(&b, "shutdown_timeout = 10;", 2 * socket_buffers_hold(SEQ_LEN_FRAGMENTED));
        uint32_t count = b.count;
        WsSeqReader *r = &b.seq;
        r->want = count; /* the close follows */
        daemon_signal(&b.d, SIGTERM);
        int64_t deadline = harness_now_ms() + harness_ms(10000);
        while (r->received < count && !r->error[0] && !b.reader.eof) {
                cr_assert(harness_now_ms() < deadline, "%llu of %u messages after SIGTERM",
                          (unsigned long long)r->received, count);
                ws_seq_poll(r);
        }
        cr_assert(!r->error[0], "%s", r->error);
        cr_assert_eq(r->received, count, "%llu of %u messages after SIGTERM",
                     (unsigned long long)r->received, count);
        wsc_expect_close(&b.reader, 1001, NULL, 0, 5000);
        int64_t answered = harness_now_ms();
        wsc_send_close(&b.reader, 1001, NULL);
        wsc_expect_eof(&b.reader, 5000);
        cr_assert_eq(daemon_wait(&b.d, 5000), 0, "the daemon did not exit 0 after the close");
        cr_assert(harness_now_ms() - answered < harness_ms(5000), "the daemon waited for shutdown_timeout");
        backlog_stop(&b);
}

/* --- keep-alive pings ----------------------------------------------------------- */

/* ping_interval = 1: an idle client is pinged; one that answers stays, one
 * that does not is disconnected (TCP closed, no close frame) a ping
 * interval after its ping, each ±1 s; one that keeps sending (unsolicited
 * pongs: any frame counts as input) is not idle and never pinged. */
Test(websocket, idle_clients_are_pinged_and_the_silent_one_cut_off) {
        Mixed m;
        mixed_start(&m, "ping_interval = 1;", 3, 1);
        WsClient *answers = &m.ws[0], *silent = &m.ws[1], *chatty = &m.ws[2];
        int64_t t0 = harness_now_ms(), chatted = 0;
        answers->auto_pong = true;
        int64_t pinged = 0, ended = 0;
        /* A round takes at most 50 ms (the wait on the silent client), so
         * the chatty one speaks about every 300 ms. */
        for (;;) {
                cr_assert(harness_now_ms() - t0 < harness_ms(8000), "the silent client %s within 8 s",
                          pinged ? "was pinged but never cut off" : "was never pinged");
                if (harness_now_ms() - chatted >= 300) {
                        wsc_send_msg(chatty, WSC_PONG, "", 0);
                        chatted = harness_now_ms();
                }
                WscMsgIn f;
                cr_assert_eq(wsc_recv(chatty, &f, 0), 0, "the chatty client got a frame or was closed");
                cr_assert_eq(wsc_recv(answers, &f, 0), 0, "the answering client got a frame or was closed");
                if (ended) {
                        if (answers->pings_answered >= 2)
                                break;
                        harness_sleep_ms(50);
                        continue;
                }
                int r = wsc_recv(silent, &f, 50);
                if (r > 0) {
                        cr_assert(!pinged && f.opcode == WSC_PING,
                                  "the silent client got a %s frame (opcode %u)",
                                  pinged ? "second" : "non-ping", f.opcode);
                        pinged = harness_now_ms();
                } else if (r < 0) {
                        cr_assert(pinged, "the silent client was closed without a ping first");
                        ended = harness_now_ms();
                }
        }
        cr_assert(pinged - t0 <= harness_ms(3000), "the first ping came %lld ms after the upgrade",
                  (long long)(pinged - t0));
        cr_assert(ended - pinged >= 500 && ended - pinged <= harness_ms(3000),
                  "the silent client was cut off %lld ms after its ping (ping_interval = 1)",
                  (long long)(ended - pinged));
        cr_assert_eq(daemon_stat(&m.d, "ping_timeouts"), 1);
        /* The one that answered its pings and the chatty one are still in. */
        client_send_str(m.line[0], "still here\n");
        wsc_expect_text(answers, "still here");
        wsc_expect_text(chatty, "still here");
        mixed_stop(&m);
}

/* --- wss:// -------------------------------------------------------------------------- */

static char *certs_path(const Daemon *d, const char *name) {
        char *p;
        cr_assert(asprintf(&p, "%s/certs/%s", d->dir, name) > 0);
        return p;
}

#define TLS_SETTINGS                                                                                        \
        "tls = { cert_file = \"certs/server.pem\"; key_file = \"certs/server.key\"; "                       \
        "ca_file = \"certs/ca.pem\"; client_auth = \"optional\"; };\n"

/* A websocket listener with tls = true: the TLS handshake, then HTTP;
 * %u is the client certificate's identity, "-" without one. */
Test(websocket, wss_with_client_identity_in_prefix) {
        Setup s = {
                .ws = {"tls = true;", NULL}, .settings = TLS_SETTINGS "prefix = \"%u: \";", .certs = true};
        Daemon d;
        uint16_t ports[MAX_WS_LISTENERS];
        setup_start(&d, &s, ports);
        char *ca = certs_path(&d, "ca.pem"), *cert = certs_path(&d, "client.pem"),
             *key = certs_path(&d, "client.key");
        WsClient alice, anon;
        cr_assert(wsc_connect_tls(&alice, ports[0], ca, cert, key),
                  "TLS handshake with a client certificate");
        cr_assert(wsc_connect_tls(&anon, ports[0], ca, NULL, NULL), "TLS handshake without a certificate");
        wsc_upgrade(&alice, "/", NULL);
        wsc_upgrade(&anon, "/", NULL);
        int line = client_connect(d.port);
        wait_clients(&d, 3);
        wsc_send_text(&alice, "signed");
        client_expect_line(line, "alice: signed\n");
        wsc_expect_text(&anon, "alice: signed");
        wsc_send_text(&anon, "anonymous");
        client_expect_line(line, "-: anonymous\n");
        wsc_expect_text(&alice, "-: anonymous");
        /* Frames bigger than a TLS record, in pieces. */
        static char big[3000];
        memset(big, 'b', sizeof big);
        WscBytes out = {0};
        wsc_bytes_frame(&alice, &out, &(WscFrame){.opcode = WSC_TEXT, .more = true}, big, 1500);
        wsc_bytes_frame(&alice, &out, &(WscFrame){.opcode = WSC_CONT}, big + 1500, 1500);
        wsc_send_chopped(&alice, out.data, out.len, 700, 1);
        wsc_bytes_free(&out);
        char want[3010];
        int n = snprintf(want, sizeof want, "alice: %.*s", (int)sizeof big, big);
        wsc_expect_msg(&anon, WSC_TEXT, want, (size_t)n, 5000);
        wsc_close_handshake(&alice, 1000);
        wsc_close_handshake(&anon, 4000);
        cr_assert_eq(daemon_stat(&d, "websocket_upgrades"), 2);
        wsc_free(&alice);
        wsc_free(&anon);
        close(line);
        free(ca);
        free(cert);
        free(key);
        daemon_stop(&d);
}

/* --- real peers: python3-websockets and node's ws ------------------------------------ */

static const char *tests_dir(void) {
        const char *t = getenv("EB_TESTS_DIR");
        return t && *t ? t : "tests";
}

/* The start of a text file (a log) for a failure message; "" if none. */
static void read_text(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "r");
        buf[0] = '\0';
        if (f) {
                buf[fread(buf, 1, size - 1, f)] = '\0';
                fclose(f);
        }
}

/* Runs a peer script (argv, environment plus extra_env) with its output in
 * DIR/peer.log; it must exit 0 within timeout_ms. */
static void run_peer(Daemon *d, const char *const argv[], const char *extra_env, int timeout_ms) {
        char log[160];
        snprintf(log, sizeof log, "%s/peer.log", d->dir);
        fflush(NULL);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
                int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (out < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
                        _exit(127);
                if (extra_env)
                        putenv((char *)extra_env);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        int st = -1;
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        while (waitpid(pid, &st, WNOHANG) == 0) {
                if (harness_now_ms() >= deadline) {
                        kill(pid, SIGKILL);
                        (void)waitpid(pid, &st, 0);
                        break;
                }
                harness_sleep_ms(20);
        }
        char text[8192];
        read_text(log, text, sizeof text);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s (%s %d); its output:\n%s\ndaemon log:\n%s",
                  argv[0], argv[1], WIFEXITED(st) ? "exit" : "signal or timeout",
                  WIFEXITED(st)     ? WEXITSTATUS(st)
                  : WIFSIGNALED(st) ? WTERMSIG(st)
                                    : -1,
                  text, daemon_log_text(d));
}

#define PEER_MAX_MESSAGE "4096"

/* The daemon the peers meet: the line listener, ws:// and wss://. */
static void start_peer_daemon(Daemon *d, uint16_t ports[MAX_WS_LISTENERS]) {
        Setup s = {.ws = {"", "tls = true;", NULL},
                   .settings = TLS_SETTINGS "max_message_bytes = " PEER_MAX_MESSAGE ";",
                   .certs = true};
        setup_start(d, &s, ports);
}

/* python3-websockets (Debian's, seen only by /usr/bin/python3) over ws://
 * and over wss:// with Python's ssl, each with a line client of its own. */
Test(websocket, python_websockets_peer) {
        if (system("/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1") != 0)
                cr_skip_test("python3-websockets is not installed for /usr/bin/python3");
        Daemon d;
        uint16_t ports[MAX_WS_LISTENERS];
        start_peer_daemon(&d, ports);
        char script[512], url[64], wss[64], line[16], *ca = certs_path(&d, "ca.pem");
        snprintf(script, sizeof script, "%s/ws/peer.py", tests_dir());
        snprintf(url, sizeof url, "ws://127.0.0.1:%u/", ports[0]);
        snprintf(wss, sizeof wss, "wss://127.0.0.1:%u/tls", ports[1]);
        snprintf(line, sizeof line, "%u", d.port);
        const char *plain_argv[] = {"/usr/bin/python3", script, url, line, PEER_MAX_MESSAGE, NULL};
        run_peer(&d, plain_argv, NULL, 60000);
        const char *tls_argv[] = {"/usr/bin/python3", script, wss, line, PEER_MAX_MESSAGE, ca, NULL};
        run_peer(&d, tls_argv, NULL, 60000);
        free(ca);
        daemon_stop(&d);
}

/* The build directory (where meson put the daemon), absolute. */
static void build_dir(char *buf, size_t size) {
        char *real = realpath(harness_daemon_path(), NULL);
        cr_assert(real);
        char *slash = strrchr(real, '/');
        *slash = '\0';
        snprintf(buf, size, "%s", real);
        free(real);
}

/* npm's ws@8 into BUILD/ws-node, once per build directory, its cache there
 * too; returns that node_modules, or false when it is not there and may not
 * be fetched (EB_TEST_OFFLINE, set by package builds). */
static bool install_node_ws(char *node_modules, size_t size) {
        char dir[400], cmd[2048];
        build_dir(dir, sizeof dir);
        snprintf(node_modules, size, "%s/ws-node/node_modules", dir);
        snprintf(cmd, sizeof cmd, "test -f '%s/ws/package.json'", node_modules);
        if (system(cmd) == 0)
                return true;
        const char *offline = getenv("EB_TEST_OFFLINE");
        if (offline && *offline)
                return false;
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && mkdir -p ws-node && timeout 240 npm install --prefix ws-node "
                 "--cache ws-node/.npm-cache --no-audit --no-fund --no-save --loglevel=error ws@8 "
                 ">ws-node/npm.log 2>&1",
                 dir);
        if (system(cmd) != 0) {
                char log[512], text[4096];
                snprintf(log, sizeof log, "%s/ws-node/npm.log", dir);
                read_text(log, text, sizeof text);
                cr_assert_fail("npm install ws@8 failed:\n%s", text);
        }
        return true;
}

/* node's ws (npm, version 8) over ws://, with a line client. */
Test(websocket, node_ws_peer) {
        if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") != 0)
                cr_skip_test("node or npm is not installed");
        char node_modules[512], node_path[600];
        if (!install_node_ws(node_modules, sizeof node_modules))
                cr_skip_test("EB_TEST_OFFLINE is set: ws would come from the npm registry");
        snprintf(node_path, sizeof node_path, "NODE_PATH=%s", node_modules);
        Daemon d;
        uint16_t ports[MAX_WS_LISTENERS];
        start_peer_daemon(&d, ports);
        char script[512], url[64], line[16], node[256] = "";
        FILE *which = popen("command -v node", "r");
        cr_assert(which && fgets(node, sizeof node, which));
        pclose(which);
        node[strcspn(node, "\n")] = '\0';
        snprintf(script, sizeof script, "%s/ws/peer.js", tests_dir());
        snprintf(url, sizeof url, "ws://127.0.0.1:%u/", ports[0]);
        snprintf(line, sizeof line, "%u", d.port);
        const char *argv[] = {node, script, url, line, PEER_MAX_MESSAGE, NULL};
        run_peer(&d, argv, node_path, 60000);
        daemon_stop(&d);
}
