/* Unit tests of client.c: the read path (a reset is the end of the stream,
 * data before it still read), the line codec, what waits for a client
 * (its own messages excluded), and a drop remainder written before the log
 * even when a write takes only part of it. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
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
