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
        if (log) {
                bcastlog_cursor_init(log, &c->cursor);
                c->receiving = true;
        }
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
        cr_assert_eq(bcastlog_append(log, sender, &iov, 1), 0);
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
        uint8_t fin, opcode;
        size_t len;
        const uint8_t *payload;
} WsFrame;

/* One whole server frame at buf[0, n): its length, or 0 if incomplete. */
static size_t ws_parse_frame(const uint8_t *buf, size_t n, WsFrame *f) {
        if (n < 2)
                return 0;
        cr_assert_eq(buf[0] & 0x70, 0, "RSV bits in a server frame");
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
        cr_assert_null(memchr(buf, '\n', h), "a header holding 0x0A");
        *f = (WsFrame){.fin = buf[0] >> 7, .opcode = buf[0] & 0x0F, .len = len, .payload = buf + h};
        return h + len;
}

/* What a WebSocket reader of the test's stream has seen. */
typedef struct WsReader {
        uint8_t in[1 << 20];
        size_t in_len;
        uint8_t msg[1 << 19]; /* the message being reassembled */
        size_t msg_len;
        uint8_t msg_opcode; /* 0: between messages */
        bool want_trailer;  /* a message ended: its trailer pong is next */
        size_t pings;
} WsReader;

typedef struct WsSent {
        char *data[3000];
        size_t len[3000];
        bool text[3000];
        size_t n, next; /* appended; the next one the reader may see */
} WsSent;

/* A whole message arrived: the next expected one, or with drops some
 * later one, byte for byte and of its kind. */
static void ws_check_message(WsSent *s, const WsReader *r, bool drops) {
        size_t i = s->next;
        while (drops && i < s->n && (s->len[i] != r->msg_len || memcmp(s->data[i], r->msg, r->msg_len) != 0))
                i++;
        cr_assert_lt(i, s->n, "message %zu (opcode %u, %zu bytes) matches none sent", s->next, r->msg_opcode,
                     r->msg_len);
        cr_assert_eq(r->msg_len, s->len[i], "message %zu: %zu bytes, want %zu", i, r->msg_len, s->len[i]);
        cr_assert(memcmp(r->msg, s->data[i], r->msg_len) == 0, "message %zu differs", i);
        cr_assert_eq(r->msg_opcode, s->text[i] ? WS_OP_TEXT : WS_OP_BINARY);
        s->next = i + 1;
}

/* Parses what arrived: data frames (a message may come in two
 * fragments), each message followed by its trailer pong, pings only
 * between messages. */
static void ws_read_frames(WsReader *r, WsSent *s, bool drops) {
        size_t used = 0, k;
        WsFrame f;
        while ((k = ws_parse_frame(r->in + used, r->in_len - used, &f)) > 0) {
                used += k;
                if (r->want_trailer) {
                        cr_assert(f.opcode == WS_OP_PONG && f.len == 1 && f.payload[0] == '\n',
                                  "a message without its trailer pong (opcode %u next)", f.opcode);
                        r->want_trailer = false;
                        continue;
                }
                if (f.opcode == WS_OP_PING) {
                        cr_assert_eq(r->msg_opcode, 0, "a ping inside a fragmented message");
                        r->pings++;
                        continue;
                }
                if (r->msg_opcode == 0) {
                        cr_assert(f.opcode == WS_OP_TEXT || f.opcode == WS_OP_BINARY, "opcode %u", f.opcode);
                        r->msg_opcode = f.opcode;
                        r->msg_len = 0;
                } else
                        cr_assert_eq(f.opcode, WS_OP_CONTINUATION, "a new message inside a fragmented one");
                cr_assert_leq(r->msg_len + f.len, sizeof(r->msg));
                memcpy(r->msg + r->msg_len, f.payload, f.len);
                r->msg_len += f.len;
                if (f.fin) {
                        ws_check_message(s, r, drops);
                        r->msg_opcode = 0;
                        r->want_trailer = true;
                }
        }
        memmove(r->in, r->in + used, r->in_len - used);
        r->in_len -= used;
}

/* Appends one message of 'len' random bytes as the hub does for
 * WebSocket readers (websocket.h, ws_log_form()). */
static void ws_append(BcastLog *log, uint64_t sender, WsSent *s, Client *c, size_t len, bool text,
                      bool own) {
        char *m = malloc(len + 1);
        for (size_t i = 0; i < len; i++)
                m[i] = text ? (char)('a' + rand() % 26) : (char)(0x80 + rand() % 0x7F);
        struct iovec payload = {.iov_base = m, .iov_len = len};
        WsLogForm f;
        ws_log_form(&f, &payload, 1, text);
        cr_assert_eq(bcastlog_append(log, sender, f.iov, f.n), 0);
        if (own) {
                c->own_pending += (uint32_t)f.len;
                free(m);
                return;
        }
        cr_assert_lt(s->n, ARRAY_SIZE(s->data));
        s->data[s->n] = m;
        s->len[s->n] = len;
        s->text[s->n++] = text;
}

/* Messages of random sizes (empty, small, 16-bit and 64-bit lengths, some
 * sent in two fragments, longer than one write), text and binary, some the
 * reader's own, through a small socket read in random bites, with pings
 * queued (often while a message is half sent) and drops to half a small
 * limit in between: every message arrives whole, in order, of its kind and
 * with its trailer, a subsequence of what the others sent (all of it
 * without drops), and pings only between messages. Returns how many pings
 * were queued with the cursor inside a message. */
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
        static WsSent sent;
        static WsReader r;
        sent = (WsSent){0};
        r = (WsReader){0};
        size_t pings_queued = 0, pings_mid = 0;
        srand(seed);

        for (int step = 0;
             step < 200000 && (sent.n < 3000 || client_waiting(c, log, me) > 0 || c->rest_len ||
                               ws_conn_has_control(w) || r.in_len || unread(sv[1]));
             step++) {
                int what = rand() % 10;
                if (what < 3 && sent.n < 3000) {
                        bool big = large && rand() % 300 == 0;
                        size_t len = big                         ? 300000 + (size_t)(rand() % 1000)
                                     : large && rand() % 40 == 0 ? (size_t)(rand() % 70000)
                                     : rand() % 8 == 0           ? (size_t)(rand() % 3) * 256 + 10
                                                                 : (size_t)(rand() % 200);
                        bool own = rand() % 5 == 0;
                        ws_append(log, own ? me : 2, &sent, c, len, rand() % 3 != 0, own);
                } else if (what < 6) {
                        int ret = client_flush(c, log, me);
                        cr_assert(ret == 0 || ret == 1 || ret == -EAGAIN, "flush: %d", ret);
                } else if (what == 6 && rand() % 4 == 0) {
                        ws_conn_ping(w);
                        pings_queued++;
                        pings_mid += c->cursor.mid_message;
                } else if (what == 7 && drops && client_waiting(c, log, me) > 200000)
                        cr_assert_geq(client_drop(c, log, me, 100000), 0);
                else {
                        ssize_t n = read(sv[1], r.in + r.in_len,
                                         MIN(sizeof(r.in) - r.in_len, (size_t)(1 + rand() % 9000)));
                        cr_assert(n > 0 || errno == EAGAIN);
                        r.in_len += n > 0 ? (size_t)n : 0;
                        ws_read_frames(&r, &sent, drops);
                }
        }
        cr_assert_eq(r.in_len, 0, "%zu bytes of an unfinished frame left", r.in_len);
        cr_assert_eq(r.msg_opcode, 0, "a message left unfinished");
        cr_assert_not(r.want_trailer, "the last message without its trailer");
        if (!drops)
                cr_assert_eq(sent.next, sent.n, "%zu of %zu messages arrived", sent.next, sent.n);
        cr_assert_leq(r.pings, pings_queued);
        cr_assert_gt(r.pings, 0);
        for (size_t i = 0; i < sent.n; i++)
                free(sent.data[i]);
        bcastlog_cursor_release(log, &c->cursor);
        close(sv[0]);
        close(sv[1]);
        client_free(c);
        bcastlog_free(log);
        return pings_mid;
}

/* Small messages only, then with long ones (one fill, one block, 64-bit
 * lengths). */
static void ws_write_path(bool drops) {
        size_t pings_mid = 0;
        for (unsigned seed = 1; seed <= 12; seed++)
                pings_mid += ws_write_path_round(drops, seed > 6, seed);
        cr_assert_gt(pings_mid, 0, "no ping was queued inside a message: the test proves little");
}

Test(client, websocket_frames_survive_short_writes, .timeout = 60) {
        ws_write_path(false);
}

Test(client, websocket_drops_keep_messages_whole, .timeout = 60) {
        ws_write_path(true);
}

/* After its close frame a client is sent the end of the message it is in,
 * then the close, then nothing, however much more is queued. */
Test(client, websocket_nothing_after_the_close) {
        BcastLog *log;
        int sv[2];
        cr_assert_eq(bcastlog_new(&log), 0);
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
        int sndbuf = 4096;
        cr_assert(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) == 0);
        Client *c = ws_client_on(sv[0], sv[1], 1, log);
        WsConn *w = client_ws(c);
        static WsSent sent;
        static WsReader r;
        sent = (WsSent){0};
        r = (WsReader){0};
        ws_append(log, 2, &sent, c, 100000, true, false);
        int ret;
        while ((ret = client_flush(c, log, 1)) == 1)
                ;
        cr_assert_eq(ret, -EAGAIN);
        cr_assert(c->cursor.mid_message);
        ws_append(log, 2, &sent, c, 10, true, false);
        ws_conn_close(w, WS_CLOSE_GOING_AWAY);
        uint8_t *close_at = NULL;
        for (int i = 0; i < 10000 && !ws_conn_finished(w); i++) {
                ret = client_flush(c, log, 1);
                cr_assert(ret == 0 || ret == 1 || ret == -EAGAIN, "flush: %d", ret);
                ssize_t n = read(sv[1], r.in + r.in_len, sizeof(r.in) - r.in_len);
                r.in_len += n > 0 ? (size_t)n : 0;
        }
        cr_assert(ws_conn_finished(w));
        cr_assert_eq(client_flush(c, log, 1), 0);
        ssize_t n;
        while ((n = read(sv[1], r.in + r.in_len, sizeof(r.in) - r.in_len)) > 0)
                r.in_len += (size_t)n;
        /* The first message whole, its trailer, then the close frame. */
        WsFrame f;
        size_t at = 0, k;
        while ((k = ws_parse_frame(r.in + at, r.in_len - at, &f)) > 0 && f.opcode != WS_OP_CLOSE)
                at += k;
        cr_assert_gt(k, 0, "no close frame");
        close_at = r.in + at;
        cr_assert_eq((size_t)(close_at - r.in) + k, r.in_len, "bytes after the close frame");
        r.in_len = (size_t)(close_at - r.in);
        ws_read_frames(&r, &sent, false);
        cr_assert_eq(sent.next, 1, "%zu messages before the close, want 1", sent.next);
        free(sent.data[0]);
        free(sent.data[1]);
        bcastlog_cursor_release(log, &c->cursor);
        close(sv[0]);
        close(sv[1]);
        client_free(c);
        bcastlog_free(log);
}
