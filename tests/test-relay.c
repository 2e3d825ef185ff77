/* End-to-end tests of the wire protocol (docs/protocol.md) against the real daemon:
 * who gets what, in which order, whole, byte for byte, with which prefix, over
 * which kind of socket. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

TestSuite(relay, .fini = harness_cleanup, .timeout = 60);

/* docs/protocol.md: each complete message goes to every other client, not its sender. */
Test(relay, delivered_to_all_others_not_sender) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, NULL, c, 3, false);

        client_send_str(c[0], "hello from 0\n");
        client_expect_line(c[1], "hello from 0\n");
        client_expect_line(c[2], "hello from 0\n");
        cr_expect(client_recv_nothing(c[0], 300), "the sender got its own message (echo is off)");

        client_send_str(c[2], "and from 2\n");
        client_expect_line(c[0], "and from 2\n");
        client_expect_line(c[1], "and from 2\n");
        cr_expect(client_recv_nothing(c[2], 300), "the sender got its own message (echo is off)");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* epoll-broadcaster.conf(5) echo: with echo = true the sender gets its message too. */
Test(relay, echo_delivers_to_sender_too) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, "echo = true;", c, 2, true);

        client_send_str(c[0], "echoed\n");
        client_expect_line(c[0], "echoed\n");
        client_expect_line(c[1], "echoed\n");
        client_send_str(c[1], "second\n");
        client_expect_line(c[0], "second\n");
        client_expect_line(c[1], "second\n");
        clients_close(c, 2);
        daemon_stop(&d);
}

/* Reads count lines of the form "s<K>-<N>\n" into seq[] (as K*100000+N). */
static void read_tagged(int fd, long *seq, size_t count) {
        char buf[128];
        for (size_t i = 0; i < count; i++) {
                size_t n = client_recv_line(fd, buf, sizeof buf, 10000);
                unsigned k, num;
                char tail;
                cr_assert(sscanf(buf, "s%u-%u%c", &k, &num, &tail) == 3 && tail == '\n',
                          "fd %d: message %zu malformed: %.*s", fd, i, (int)n, buf);
                seq[i] = (long)k * 100000 + num;
        }
}

/* docs/protocol.md order: one global order, every recipient sees it (minus its own
 * messages); each sender's messages keep their order. */
Test(relay, one_global_order_across_senders) {
        enum { SENDERS = 4, RECEIVERS = 3, PER_SENDER = 300 };
        Daemon d;
        int c[SENDERS + RECEIVERS];
        daemon_start_clients(&d, NULL, c, SENDERS + RECEIVERS, false);

        /* Interleave the senders: round robin, with varying burst sizes so
         * that the daemon sees several of them readable in one round. */
        int sent[SENDERS] = {0};
        unsigned rnd = 12345;
        for (int done = 0; done < SENDERS * PER_SENDER;) {
                for (int s = 0; s < SENDERS; s++) {
                        rnd = rnd * 1103515245 + 12345;
                        int burst = 1 + (int)((rnd >> 16) % 4);
                        char buf[512];
                        size_t len = 0;
                        for (int b = 0; b < burst && sent[s] < PER_SENDER; b++, done++)
                                len += (size_t)snprintf(buf + len, sizeof buf - len, "s%d-%d\n", s,
                                                        sent[s]++);
                        if (len)
                                client_send(c[s], buf, len);
                }
                harness_sleep_ms(1); /* let the daemon see the senders take turns */
        }

        const size_t total = SENDERS * PER_SENDER;
        long *seen[SENDERS + RECEIVERS];
        for (int r = 0; r < RECEIVERS; r++) {
                seen[SENDERS + r] = calloc(total, sizeof(long));
                read_tagged(c[SENDERS + r], seen[SENDERS + r], total);
        }
        /* Identical order at every pure receiver. */
        for (int r = 1; r < RECEIVERS; r++)
                for (size_t i = 0; i < total; i++)
                        cr_assert(seen[SENDERS + r][i] == seen[SENDERS][i],
                                  "receiver %d differs from receiver 0 at message %zu: %ld vs %ld", r, i,
                                  seen[SENDERS + r][i], seen[SENDERS][i]);
        /* Per-sender order, and every message exactly once. */
        int next[SENDERS] = {0};
        int switches = 0;
        for (size_t i = 0; i < total; i++) {
                long k = seen[SENDERS][i] / 100000, num = seen[SENDERS][i] % 100000;
                cr_assert(k >= 0 && k < SENDERS);
                cr_assert(num == next[k], "sender %ld: message %ld arrived where %d was due", k, num,
                          next[k]);
                next[k]++;
                if (i > 0 && seen[SENDERS][i - 1] / 100000 != k)
                        switches++;
        }
        cr_assert(switches > 4 * SENDERS, "the test did not manage to interleave senders (%d)", switches);
        /* Each sender sees the same order minus its own messages. */
        for (int s = 0; s < SENDERS; s++) {
                size_t want_n = total - PER_SENDER;
                seen[s] = calloc(want_n, sizeof(long));
                read_tagged(c[s], seen[s], want_n);
                size_t j = 0;
                for (size_t i = 0; i < total; i++) {
                        if (seen[SENDERS][i] / 100000 == s)
                                continue;
                        cr_assert(seen[s][j] == seen[SENDERS][i],
                                  "sender %d sees message %zu as %ld, receivers saw %ld", s, j, seen[s][j],
                                  seen[SENDERS][i]);
                        j++;
                }
                cr_assert(client_recv_nothing(c[s], 200), "sender %d got extra data", s);
        }
        for (int i = 0; i < SENDERS + RECEIVERS; i++)
                free(seen[i]);
        clients_close(c, SENDERS + RECEIVERS);
        daemon_stop(&d);
}

/* docs/protocol.md: messages from one sender keep their order (many, in big writes). */
Test(relay, one_sender_keeps_order) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        SeqReader r;
        seq_reader_init(&r, c[1], 100, true);
        SeqReader *rs[] = {&r};
        pump_seq(c[0], rs, 1, 20000, 100, NULL, NULL, 30000);
        seq_reader_expect_all(&r, 20000, "reader");
        cr_assert(client_recv_nothing(c[1], 200));
        seq_reader_free(&r);
        clients_close(c, 2);
        daemon_stop(&d);
}

/* docs/protocol.md atomicity: a message written in many small pieces with pauses
 * arrives whole, and nothing of it before its LF. */
Test(relay, message_in_pieces_arrives_whole) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        const char *msg = "a message sent one byte at a time\n";
        size_t len = strlen(msg);
        for (size_t i = 0; i + 1 < len; i++) {
                client_send(c[0], msg + i, 1);
                harness_sleep_ms(i % 8 == 0 ? 30 : 2);
        }
        cr_assert(client_recv_nothing(c[1], 300), "part of an unfinished message was relayed");
        client_send(c[0], "\n", 1);
        client_expect_line(c[1], msg);
        clients_close(c, 2);
        daemon_stop(&d);
}

/* docs/protocol.md atomicity: two senders each sending half a message, alternately,
 * never get their bytes interleaved at a recipient. */
Test(relay, halves_from_two_senders_never_interleave) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, NULL, c, 3, false);
        for (int round = 0; round < 5; round++) {
                client_send_str(c[0], "AAAA first half of A, ");
                harness_sleep_ms(30);
                client_send_str(c[1], "BBBB first half of B, ");
                harness_sleep_ms(30);
                client_send_str(c[0], "second half of A AAAA\n");
                harness_sleep_ms(30);
                client_send_str(c[1], "second half of B BBBB\n");
                /* Which completes first is the daemon's business (both may
                 * be readable in one round); each must arrive whole. */
                const char *la = "AAAA first half of A, second half of A AAAA\n";
                const char *lb = "BBBB first half of B, second half of B BBBB\n";
                char l1[256], l2[256];
                client_recv_line(c[2], l1, sizeof l1, 5000);
                client_recv_line(c[2], l2, sizeof l2, 5000);
                cr_assert((strcmp(l1, la) == 0 && strcmp(l2, lb) == 0) ||
                                  (strcmp(l1, lb) == 0 && strcmp(l2, la) == 0),
                          "interleaved or altered: \"%s\" then \"%s\"", l1, l2);
                client_expect_line(c[1], "AAAA first half of A, second half of A AAAA\n");
                client_expect_line(c[0], "BBBB first half of B, second half of B BBBB\n");
        }
        cr_assert(client_recv_nothing(c[2], 200));
        clients_close(c, 3);
        daemon_stop(&d);
}

/* docs/protocol.md: any byte but LF may appear; NUL and CR pass unchanged. */
Test(relay, binary_safe_nul_and_cr) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        unsigned char msg[300];
        size_t len = 0;
        const unsigned char head[] = {'x', 0, 'y', '\r', 0, 0, '\r', '\r', 0xff, 0x80};
        memcpy(msg, head, sizeof head);
        len = sizeof head;
        for (int b = 0; b < 256; b++)
                if (b != '\n')
                        msg[len++] = (unsigned char)b;
        msg[len++] = '\r'; /* a CRLF ending keeps its CR */
        msg[len++] = '\n';
        client_send(c[0], msg, len);
        /* and a message that is a single NUL */
        const unsigned char nul_msg[] = {0, '\n'};
        client_send(c[0], nul_msg, 2);
        unsigned char got[sizeof msg];
        client_recv_exact(c[1], got, len, 5000);
        cr_assert(memcmp(got, msg, len) == 0, "payload altered");
        client_recv_exact(c[1], got, 2, 5000);
        cr_assert(got[0] == 0 && got[1] == '\n', "NUL-only message altered");
        client_expect_nothing(c[1], 200);
        clients_close(c, 2);
        daemon_stop(&d);
}

/* docs/protocol.md: no history; a client gets only what arrives after it connected. */
Test(relay, no_history_for_late_joiner) {
        Daemon d;
        daemon_start(&d, NULL);
        int a = client_connect(d.port), b = client_connect(d.port);
        int ab[2] = {b, a};
        clients_sync(ab, 2, false);
        client_send_str(a, "before the late joiner\n");
        client_expect_line(b, "before the late joiner\n");

        int late = client_connect(d.port);
        cr_assert(client_recv_nothing(late, 500), "a late joiner got old messages");
        /* Make sure it is accepted (the sync lines must be the only thing
         * it reads), then it gets new messages. */
        int all[3] = {late, b, a};
        clients_sync(all, 3, false);
        client_send_str(a, "after the late joiner\n");
        client_expect_line(late, "after the late joiner\n");
        client_expect_line(b, "after the late joiner\n");
        cr_assert(client_recv_nothing(late, 200));
        close(late);
        close(a);
        close(b);
        daemon_stop(&d);
}

/* Splits "<prefix>payload" at the first occurrence of payload. */
static void split_prefix(const char *line, size_t len, const char *payload, char *prefix, size_t psize) {
        size_t pl = strlen(payload);
        cr_assert(len >= pl && memcmp(line + len - pl, payload, pl) == 0,
                  "line \"%.*s\" does not end in \"%s\"", (int)len, line, payload);
        size_t n = len - pl;
        cr_assert(n < psize);
        memcpy(prefix, line, n);
        prefix[n] = '\0';
}

/* docs/protocol.md prefix %a: "127.0.0.1:PORT", the sender's own source port. */
Test(relay, prefix_peer_address) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "prefix = \"<%a> \";", c, 3, false);
        client_send_str(c[0], "hi\n");
        char want[128];
        snprintf(want, sizeof want, "<127.0.0.1:%u> hi\n", client_local_port(c[0]));
        client_expect_line(c[1], want);
        client_expect_line(c[2], want); /* the same for all recipients */
        client_send_str(c[1], "ho\n");
        snprintf(want, sizeof want, "<127.0.0.1:%u> ho\n", client_local_port(c[1]));
        client_expect_line(c[0], want);
        client_expect_line(c[2], want);
        clients_close(c, 3);
        daemon_stop(&d);
}

static unsigned long long parse_id(const char *prefix, const char *before, const char *after) {
        size_t bl = strlen(before), al = strlen(after), pl = strlen(prefix);
        cr_assert(pl > bl + al && strncmp(prefix, before, bl) == 0 && strcmp(prefix + pl - al, after) == 0,
                  "prefix \"%s\" is not \"%s<id>%s\"", prefix, before, after);
        const char *p = prefix + bl;
        size_t n = pl - bl - al;
        for (size_t i = 0; i < n; i++)
                cr_assert(isdigit((unsigned char)p[i]), "id \"%.*s\" is not decimal", (int)n, p);
        return strtoull(p, NULL, 10);
}

/* docs/protocol.md prefix %i (decimal connection id, unique) and %% (a percent). */
Test(relay, prefix_id_and_percent) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, "prefix = \"[%i] 100%% \";", c, 3, false);
        char line[256], p1[128], p2[128];
        unsigned long long id[3];
        for (int s = 0; s < 3; s++) {
                client_send_str(c[s], "x%i%a%%\n"); /* payload is never expanded */
                int r1 = (s + 1) % 3, r2 = (s + 2) % 3;
                size_t n1 = client_recv_line(c[r1], line, sizeof line, 5000);
                split_prefix(line, n1, "x%i%a%%\n", p1, sizeof p1);
                size_t n2 = client_recv_line(c[r2], line, sizeof line, 5000);
                split_prefix(line, n2, "x%i%a%%\n", p2, sizeof p2);
                cr_assert_str_eq(p1, p2, "recipients saw different prefixes");
                id[s] = parse_id(p1, "[", "] 100% ");
        }
        cr_assert(id[0] != id[1] && id[1] != id[2] && id[0] != id[2], "ids not unique: %llu %llu %llu",
                  id[0], id[1], id[2]);
        /* The same client keeps its id. */
        client_send_str(c[0], "again\n");
        size_t n = client_recv_line(c[1], line, sizeof line, 5000);
        split_prefix(line, n, "again\n", p1, sizeof p1);
        cr_assert(parse_id(p1, "[", "] 100% ") == id[0]);
        n = client_recv_line(c[2], line, sizeof line, 5000);
        split_prefix(line, n, "again\n", p2, sizeof p2);
        cr_assert_str_eq(p1, p2);
        /* A new connection gets an id no one had. */
        int e = client_connect(d.port);
        int all[4] = {c[1], c[2], c[0], e};
        clients_sync(all, 4, false); /* e sends the sync lines: accepted */
        client_send_str(e, "new\n");
        n = client_recv_line(c[0], line, sizeof line, 5000);
        split_prefix(line, n, "new\n", p1, sizeof p1);
        unsigned long long ide = parse_id(p1, "[", "] 100% ");
        cr_assert(ide != id[0] && ide != id[1] && ide != id[2], "id %llu reused", ide);
        close(e);
        clients_close(c, 3);
        daemon_stop(&d);
}

/* docs/protocol.md: a last message without LF is delivered, with LF, when its
 * sender closes. */
Test(relay, last_partial_line_on_close) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        client_send_str(c[0], "complete\nno newline at the end");
        client_expect_line(c[1], "complete\n");
        harness_sleep_ms(100);
        close(c[0]);
        client_expect_line(c[1], "no newline at the end\n");
        cr_assert(client_recv_nothing(c[1], 200));
        close(c[1]);
        daemon_stop(&d);
}

/* Same for shutdown(SHUT_WR); then the sender is gone (closed by the
 * server). */
Test(relay, last_partial_line_on_shutdown_wr) {
        Daemon d;
        int c[3];
        daemon_start_clients(&d, NULL, c, 3, false);
        client_send_str(c[0], "half a line");
        harness_sleep_ms(100);
        cr_assert(client_recv_nothing(c[1], 100), "unfinished line relayed early");
        cr_assert(shutdown(c[0], SHUT_WR) == 0);
        client_expect_line(c[1], "half a line\n");
        client_expect_line(c[2], "half a line\n");
        cr_assert(client_wait_closed(c[0], 5000),
                  "the server kept a client whose sending side was shut down");
        /* the others carry on */
        client_send_str(c[1], "still here\n");
        client_expect_line(c[2], "still here\n");
        clients_close(c, 3);
        daemon_stop(&d);
}

/* A message split across a close with nothing partial: no extra empty line. */
Test(relay, close_after_complete_line_adds_nothing) {
        Daemon d;
        int c[2];
        daemon_start_clients(&d, NULL, c, 2, false);
        client_send_str(c[0], "whole\n");
        close(c[0]);
        client_expect_line(c[1], "whole\n");
        cr_assert(client_recv_nothing(c[1], 400), "something (an empty line?) followed");
        close(c[1]);
        daemon_stop(&d);
}

/* epoll-broadcaster.conf(5) listen: an IPv6 listener; %a shows "[::1]:port". */
Test(relay, ipv6_listener) {
        if (!harness_have_ipv6())
                cr_skip_test("no IPv6 loopback");
        Daemon d;
        daemon_spawn_raw(&d,
                         "listen = [\"127.0.0.1:@PORT@\", \"[::1]:@PORT@\"];\n"
                         "log_level = \"info\";\nprefix = \"%a|\";\n",
                         NULL);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        /* That is either listener: the other may be a moment behind. */
        char bound[64];
        snprintf(bound, sizeof bound, "listening on [::1]:%u", d.port);
        cr_assert(daemon_log_contains(&d, bound, 5000), "no \"%s\"", bound);
        int v4 = client_connect(d.port);
        int v6 = client_connect6(d.port);
        int s1[2] = {v4, v6}; /* v6 sends until v4 gets one: both accepted */
        clients_sync(s1, 2, false);
        client_send_str(v6, "from six\n");
        char want[128];
        snprintf(want, sizeof want, "[::1]:%u|from six\n", client_local_port(v6));
        client_expect_line(v4, want);
        client_send_str(v4, "from four\n");
        snprintf(want, sizeof want, "127.0.0.1:%u|from four\n", client_local_port(v4));
        client_expect_line(v6, want);
        close(v4);
        close(v6);
        daemon_stop(&d);
}

/* epoll-broadcaster.conf(5) listen: a Unix socket (absolute path) relaying to and from TCP;
 * %a shows "unix". */
Test(relay, unix_socket_listener) {
        Daemon d;
        daemon_spawn_raw(&d,
                         "listen = [\"127.0.0.1:@PORT@\", \"@DIR@/eb.sock\"];\n"
                         "log_level = \"info\";\nprefix = \"%a|\";\n",
                         NULL);
        char path[128];
        snprintf(path, sizeof path, "%s/eb.sock", d.dir);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        daemon_wait_unix_listening(&d, path, 5000);
        int t = client_connect(d.port);
        int u = client_connect_unix(path);
        int s1[2] = {t, u}; /* u sends until t gets one: both accepted */
        clients_sync(s1, 2, false);
        client_send_str(u, "over unix\n");
        client_expect_line(t, "unix|over unix\n");
        client_send_str(t, "over tcp\n");
        char want[128];
        snprintf(want, sizeof want, "127.0.0.1:%u|over tcp\n", client_local_port(t));
        client_expect_line(u, want);
        close(t);
        close(u);
        daemon_stop(&d);
}

/* epoll-broadcaster.conf(5): "*:port" is dual stack; an IPv4 client shows as plain
 * 127.0.0.1:port (not ::ffff:127.0.0.1). */
Test(relay, dual_stack_wildcard) {
        Daemon d;
        daemon_spawn_raw(&d, "listen = [\"*:@PORT@\"];\nlog_level = \"info\";\nprefix = \"%a|\";\n", NULL);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        int a = client_connect(d.port), b = client_connect(d.port);
        int ab[2] = {a, b};
        clients_sync(ab, 2, false);
        client_send_str(b, "mapped?\n");
        char want[128];
        snprintf(want, sizeof want, "127.0.0.1:%u|mapped?\n", client_local_port(b));
        client_expect_line(a, want);
        if (harness_have_ipv6()) {
                int c6 = client_connect6(d.port);
                int all[3] = {a, b, c6};
                clients_sync(all, 3, false);
                client_send_str(c6, "six\n");
                snprintf(want, sizeof want, "[::1]:%u|six\n", client_local_port(c6));
                client_expect_line(a, want);
                client_expect_line(b, want);
                close(c6);
        }
        close(a);
        close(b);
        daemon_stop(&d);
}
