/* Unit tests of client.c: the read path (a reset is the end of the stream,
 * data before it still read), the line codec, what waits for a client
 * (its own messages excluded), a drop remainder written before the log
 * even when a write takes only part of it, and the WebSocket write path
 * under short writes and drops. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"

static Client *client_on(int fd, uint64_t id, BcastLog *log) {
        struct sockaddr peer = {.sa_family = AF_UNIX};
        Client *c;
        cr_assert_eq(client_new(&c, id, fd, &peer, sizeof(sa_family_t), &(ConnSpec){0}, NULL), 0);
        c->src.fd = fd;
        if (log)
                bcastlog_cursor_init(log, &c->cursor);
        return c;
}

/* A client on one end of a socketpair (the test holds sv[1]), reading a
 * fresh log. */
typedef struct Fixture {
        BcastLog *log;
        int sv[2];
        Client *c;
} Fixture;

static void fixture_new(Fixture *f, uint64_t id) {
        cr_assert_eq(bcastlog_new(&f->log), 0);
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f->sv) == 0);
        f->c = client_on(f->sv[0], id, f->log);
}

static void fixture_free(Fixture *f) {
        bcastlog_cursor_release(f->log, &f->c->cursor);
        close(f->sv[0]);
        close(f->sv[1]);
        client_free(f->c);
        bcastlog_free(f->log);
}

static void append(BcastLog *log, uint64_t sender, const char *s) {
        struct iovec iov = {.iov_base = (void *)(uintptr_t)s, .iov_len = strlen(s)};
        cr_assert_eq(bcastlog_append(log, sender, BCASTLOG_TEXT, &iov, 1), 0);
}

Test(client, a_reset_ends_the_stream_after_the_data_before_it) {
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        Client *c = client_on(sv[0], 1, NULL);
        char buf[64];
        cr_assert_eq(client_read(c, buf, sizeof buf), -EAGAIN);
        cr_assert_eq(write(sv[1], "a\nrest", 6), 6);
        cr_assert_eq(client_read(c, buf, sizeof buf), 6);
        const char *in = buf, *msg;
        size_t in_len = 6, len;
        cr_assert_eq(client_next_message(c, &in, &in_len, 100, &msg, &len), 1);
        cr_assert(len == 2 && memcmp(msg, "a\n", 2) == 0);
        cr_assert_eq(client_next_message(c, &in, &in_len, 100, &msg, &len), 0);
        cr_assert_eq(client_pending_input(c), 4);
        close(sv[1]);
        cr_assert_eq(client_read(c, buf, sizeof buf), 0);
        cr_assert_eq(client_last_message(c, 100, &msg, &len), 1);
        cr_assert(len == 4 && memcmp(msg, "rest", 4) == 0);
        close(sv[0]);
        client_free(c);
}

Test(client, own_messages_do_not_wait_for_their_sender) {
        Fixture f;
        fixture_new(&f, 7);
        Client *c = f.c;
        BcastLog *log = f.log;
        int *sv = f.sv;
        append(log, 7, "mine\n");
        c->own_pending += 5;
        append(log, 2, "yours\n");
        cr_assert_eq(client_waiting(c, log, 7), 6);
        cr_assert_eq(client_waiting(c, log, BCASTLOG_NO_SENDER), 11, "with echo, own messages wait too");
        cr_assert_eq(client_flush(c, log, 7), 0);
        cr_assert_eq(c->own_pending, 0, "the own bytes stepped over were not counted off");
        char buf[64];
        cr_assert_eq(read(sv[1], buf, sizeof buf), 6);
        cr_assert(memcmp(buf, "yours\n", 6) == 0);
        fixture_free(&f);
}

Test(client, a_drop_remainder_goes_first_and_survives_a_short_write) {
        Fixture f;
        fixture_new(&f, 1);
        Client *c = f.c;
        BcastLog *log = f.log;
        int *sv = f.sv;
        c->rest = strdup("end of a cut message\n");
        c->rest_len = (uint32_t)strlen(c->rest);
        append(log, 2, "next\n");
        /* A full socket takes part of the remainder only. */
        static char fill[1 << 20];
        ssize_t filled = 0, w;
        while ((w = write(sv[0], fill, sizeof fill)) > 0)
                filled += w;
        char buf[1 << 16];
        ssize_t n = read(sv[1], buf, 10);
        cr_assert_eq(n, 10);
        int r;
        while ((r = client_flush(c, log, 1)) == 1)
                ;
        cr_assert_eq(r, -EAGAIN);
        size_t got = 0;
        static char all[2 << 20];
        for (;;) {
                while ((n = read(sv[1], all + got, sizeof all - got)) > 0)
                        got += (size_t)n;
                r = client_flush(c, log, 1);
                if (r == 0)
                        break;
                cr_assert(r == 1 || r == -EAGAIN, "flush: %d", r);
        }
        while ((n = read(sv[1], all + got, sizeof all - got)) > 0)
                got += (size_t)n;
        const char *want = "end of a cut message\nnext\n";
        cr_assert_eq(got, (size_t)filled - 10 + strlen(want));
        cr_assert(memcmp(all + got - strlen(want), want, strlen(want)) == 0, "got ...%.26s",
                  all + got - strlen(want));
        cr_assert_null(c->rest);
        fixture_free(&f);
}

/* --- the WebSocket write path ----------------------------------------------- */

/* A client of a websocket listener past its upgrade, its 101 response
 * read off the socket. */
static Client *ws_client_on(int fd, int peer_fd, uint64_t id, BcastLog *log) {
        struct sockaddr peer = {.sa_family = AF_UNIX};
        Client *c;
        cr_assert_eq(client_new(&c, id, fd, &peer, sizeof(sa_family_t),
                                &(ConnSpec){.protocol = LISTEN_PROTOCOL_WEBSOCKET}, NULL),
                     0);
        c->src.fd = fd;
        WsConn *w = client_ws(c);
        char req[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        char *in = req;
        size_t in_len = strlen(req);
        WsEvent ev;
        cr_assert_eq(ws_conn_next(w, &in, &in_len, 100, &ev), 1);
        cr_assert_eq(ev.type, WS_EVENT_REQUEST);
        cr_assert_eq(ws_conn_accept(w), 0);
        bcastlog_cursor_init(log, &c->cursor);
        c->receiving = true;
        cr_assert_eq(client_flush(c, log, id), 0);
        char resp[256];
        ssize_t n = read(peer_fd, resp, sizeof(resp) - 1);
        cr_assert_gt(n, 0);
        resp[n] = '\0';
        cr_assert(strstr(resp, "HTTP/1.1 101 ") == resp && strstr(resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                  "%s", resp);
        return c;
}

static int unread(int fd) {
        int n = 0;
        cr_assert(ioctl(fd, FIONREAD, &n) == 0);
        return n;
}

typedef struct WsFrame {
        uint8_t opcode;
        size_t len;
        const uint8_t *payload;
} WsFrame;

/* One whole server frame at buf[0, n): its length, or 0 if incomplete. */
static size_t ws_parse_frame(const uint8_t *buf, size_t n, WsFrame *f) {
        if (n < 2)
                return 0;
        cr_assert_eq(buf[0] & 0x70, 0, "RSV bits in a server frame");
        cr_assert(buf[0] & 0x80, "a fragmented server frame");
        cr_assert_eq(buf[1] & 0x80, 0, "a masked server frame");
        size_t h = 2, len = buf[1] & 0x7F;
        if (len == 126) {
                if (n < 4)
                        return 0;
                len = (size_t)buf[2] << 8 | buf[3];
                cr_assert_geq(len, 126, "non-minimal length");
                h = 4;
        } else if (len == 127) {
                if (n < 10)
                        return 0;
                len = 0;
                for (int i = 2; i < 10; i++)
                        len = len << 8 | buf[i];
                cr_assert_gt(len, 65535, "non-minimal length");
                h = 10;
        }
        if (n < h + len)
                return 0;
        *f = (WsFrame){.opcode = buf[0] & 0x0F, .len = len, .payload = buf + h};
        return h + len;
}

/* Messages of random sizes (empty, small, 16-bit and 64-bit lengths,
 * longer than one write), text and binary, some the reader's own, through
 * a small socket read in random bites, with pings queued and drops to
 * half a small limit in between: every frame arrives whole and in order,
 * a subsequence of what the others sent (all of it without drops), its
 * opcode the message's kind, and control frames never inside one. */
static size_t ws_write_path_round(bool drops, bool large, unsigned seed) {
        BcastLog *log;
        int sv[2];
        cr_assert_eq(bcastlog_new(&log), 0);
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        int sndbuf = 4096;
        cr_assert(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
        const uint64_t me = 1;
        Client *c = ws_client_on(sv[0], sv[1], me, log);
        WsConn *w = client_ws(c);

        enum { N = 3000 };
        static char *sent[N];
        static size_t sent_len[N];
        static bool sent_text[N];
        size_t n_sent = 0, next_expected = 0, pings_queued = 0, pings_seen = 0, header_cuts = 0;
        static uint8_t in[1 << 20];
        size_t in_len = 0;
        srand(seed);

        for (int step = 0;
             step < 200000 && (n_sent < N || client_waiting(c, log, me) > 0 || w->hdr_len || c->rest_len ||
                               ws_conn_has_control(w) || in_len || unread(sv[1]));
             step++) {
                int what = rand() % 10;
                if (what < 3 && n_sent < N) {
                        bool own = rand() % 5 == 0, big = large && rand() % 300 == 0;
                        size_t len =
                                big ? 300000 + (size_t)(rand() % 1000)
                                    : (size_t)(large && rand() % 40 == 0 ? rand() % 70000 : rand() % 200);
                        bool text = rand() % 3 != 0;
                        char *m = malloc(len + 1);
                        for (size_t i = 0; i < len; i++)
                                m[i] = text ? (char)('a' + rand() % 26) : (char)(0x80 + rand() % 0x7F);
                        m[len] = '\n';
                        struct iovec iov = {.iov_base = m, .iov_len = len + 1};
                        cr_assert_eq(bcastlog_append(log, own ? me : 2,
                                                     text ? BCASTLOG_TEXT : BCASTLOG_BINARY, &iov, 1),
                                     0);
                        if (own) {
                                c->own_pending += (uint32_t)len + 1;
                                free(m);
                        } else {
                                sent[n_sent] = m;
                                sent_len[n_sent] = len;
                                sent_text[n_sent++] = text;
                        }
                } else if (what < 6) {
                        int r = client_flush(c, log, me);
                        cr_assert(r == 0 || r == 1 || r == -EAGAIN, "flush: %d", r);
                        header_cuts += w->hdr_len > 0;
                } else if (what == 6 && rand() % 4 == 0) {
                        ws_conn_ping(w);
                        pings_queued++;
                } else if (what == 7 && drops && client_waiting(c, log, me) > 200000)
                        cr_assert_geq(client_drop(c, log, me, 100000), 0);
                else {
                        ssize_t r = read(sv[1], in + in_len,
                                         MIN(sizeof(in) - in_len, (size_t)(1 + rand() % 9000)));
                        cr_assert(r > 0 || errno == EAGAIN);
                        in_len += r > 0 ? (size_t)r : 0;
                        size_t used = 0, k;
                        WsFrame f;
                        while ((k = ws_parse_frame(in + used, in_len - used, &f)) > 0) {
                                used += k;
                                if (f.opcode == WS_OP_PING) {
                                        pings_seen++;
                                        continue;
                                }
                                size_t i = next_expected;
                                while (drops && i < n_sent &&
                                       (sent_len[i] != f.len || memcmp(sent[i], f.payload, f.len) != 0))
                                        i++;
                                cr_assert_lt(i, n_sent,
                                             "frame %zu (opcode %u, %zu bytes) matches no message",
                                             next_expected, f.opcode, f.len);
                                cr_assert_eq(f.len, sent_len[i], "message %zu: %zu bytes, want %zu", i,
                                             f.len, sent_len[i]);
                                size_t at = 0;
                                while (at < f.len && f.payload[at] == (uint8_t)sent[i][at])
                                        at++;
                                cr_assert_eq(at, f.len, "seed %u: message %zu (%zu bytes) differs at %zu",
                                             seed, i, f.len, at);
                                cr_assert_eq(f.opcode, sent_text[i] ? WS_OP_TEXT : WS_OP_BINARY);
                                next_expected = i + 1;
                        }
                        memmove(in, in + used, in_len - used);
                        in_len -= used;
                }
        }
        cr_assert_eq(in_len, 0, "%zu bytes of an unfinished frame left", in_len);
        if (!drops)
                cr_assert_eq(next_expected, n_sent, "%zu of %zu messages arrived", next_expected, n_sent);
        cr_assert_leq(pings_seen, pings_queued);
        cr_assert_gt(pings_seen, 0);
        for (size_t i = 0; i < n_sent; i++)
                free(sent[i]);
        bcastlog_cursor_release(log, &c->cursor);
        close(sv[0]);
        close(sv[1]);
        client_free(c);
        bcastlog_free(log);
        return header_cuts;
}

/* Small messages only, so that writes cut headers too, then with long
 * ones (one fill, one block, 64-bit lengths). */
static void ws_write_path(bool drops) {
        size_t header_cuts = 0;
        for (unsigned seed = 1; seed <= 12; seed++)
                header_cuts += ws_write_path_round(drops, seed > 6, seed);
        cr_assert_gt(header_cuts, 0, "no write cut a frame header: the test proves little");
}

Test(client, websocket_frames_survive_short_writes, .timeout = 60) {
        ws_write_path(false);
}

Test(client, websocket_drops_keep_frames_whole, .timeout = 60) {
        ws_write_path(true);
}
