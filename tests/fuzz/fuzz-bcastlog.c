/* Fuzz target: the broadcast log (src/bcastlog.h) under an arbitrary
 * sequence of what the server does with it: appends of whole messages by
 * clients and by senders that are gone, clients joining and leaving, partial
 * writes (fill, then advance by what the socket took), slow-client drops, and
 * echo switched on or off by a reload.
 *
 * Property, against a reference model that keeps, per client, its place in
 * the list of every message appended: each client receives exactly the
 * messages appended after it joined, in order, minus its own (unless echo
 * is on) and minus the whole messages a drop skipped; a message already
 * partly written is finished, never cut; the backlog is the distance to the
 * end of the log; memory stays within what the furthest-behind client pins
 * (see memory_bound()); and once every cursor is released and the log freed
 * nothing is left (LeakSanitizer).
 *
 * Input: a sequence of operations, one byte each (operation and client),
 * each followed by its arguments. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bcastlog.h"
#include "fuzz-input.h"
#include "util.h"

#define N_CLIENTS 16
#define MAX_MESSAGES 4096
/* Past a few dozen blocks a longer log finds nothing new, only slows down. */
#define MAX_LOG_BYTES (64 * BCASTLOG_BLOCK_SIZE)
#define MAX_IOV 8
/* Senders that are no client here: clients that have left. */
#define GONE_SENDER(slot) ((uint64_t)1 << 40 | (slot))

/* Every message ever appended, in log order. Its bytes are a function of
 * its index, so the model needs no copy of them. */
typedef struct Message {
        uint64_t sender;
        uint64_t start; /* global position in the log */
        uint32_t len;   /* LF included */
} Message;

/* A reader's place in the model: the first message not yet fully written
 * nor skipped, and how much of it was written. */
typedef struct Place {
        size_t next;
        uint32_t off;
} Place;

typedef struct Client {
        bool joined;
        bool echo;
        uint64_t id;
        LogCursor cursor;
        Place at;
} Client;

typedef struct State {
        BcastLog *log;
        Message msgs[MAX_MESSAGES];
        size_t n_msgs;
        uint64_t end;
        uint64_t ids;
        Client clients[N_CLIENTS];
} State;

/* Message i is 'len - 1' bytes of the pattern from offset i % PATTERN_SHIFTS,
 * then its LF: different messages differ, and checking is a memcmp(). */
#define PATTERN_SHIFTS 251
#define MAX_MESSAGE_BYTES (3 * BCASTLOG_BLOCK_SIZE)
static char pattern[PATTERN_SHIFTS + MAX_MESSAGE_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_) {
        /* Any byte but LF, NUL included: payloads are binary. */
        for (size_t i = 0; i < sizeof(pattern); i++) {
                pattern[i] = (char)(i * 7);
                if (pattern[i] == '\n')
                        pattern[i] = '\0';
        }
        return 0;
}

/* Whether p[0..k) are bytes from..from+k of message i. */
static bool message_is(size_t i, const Message *m, uint32_t from, const char *p, uint32_t k) {
        uint32_t body = from + k == m->len ? k - 1 : k;
        return memcmp(p, pattern + i % PATTERN_SHIFTS + from, body) == 0 && (body == k || p[body] == '\n');
}

static uint64_t client_skip(const Client *c) {
        return c->echo ? BCASTLOG_NO_SENDER : c->id;
}

static uint64_t place_position(const State *s, const Place *p) {
        return p->next < s->n_msgs ? s->msgs[p->next].start + p->off : s->end;
}

/* Own messages not yet started are stepped over, as a cursor does. */
static void place_skip_own(const State *s, Place *p, uint64_t skip) {
        if (p->off == 0)
                while (p->next < s->n_msgs && s->msgs[p->next].sender == skip)
                        p->next++;
}

/* Moves p past the next n bytes the reader is to receive. With 'expect',
 * returns whether they are those bytes; false as well if there are fewer. */
static bool place_take(const State *s, Place *p, uint64_t skip, const char *expect, size_t n) {
        while (n > 0) {
                place_skip_own(s, p, skip);
                if (p->next >= s->n_msgs)
                        return false;
                const Message *m = &s->msgs[p->next];
                uint32_t k = (uint32_t)MIN(n, (size_t)(m->len - p->off));
                if (expect) {
                        if (!message_is(p->next, m, p->off, expect, k))
                                return false;
                        expect += k;
                }
                n -= k;
                p->off += k;
                if (p->off == m->len) {
                        p->next++;
                        p->off = 0;
                }
        }
        return true;
}

static void op_join(State *s, Client *c, FuzzInput *in) {
        if (c->joined)
                return;
        /* Ids are never reused, as in the server. */
        *c = (Client){.joined = true, .echo = fuzz_u8(in) & 1, .id = s->ids++, .at.next = s->n_msgs};
        bcastlog_cursor_init(s->log, &c->cursor);
}

static void op_leave(State *s, Client *c) {
        if (!c->joined)
                return;
        bcastlog_cursor_release(s->log, &c->cursor);
        c->joined = false;
}

/* One or more whole messages of one sender, in three pieces cut anywhere,
 * as the server passes prefix, payload and LF. */
static void op_append(State *s, size_t slot, FuzzInput *in) {
        const Client *c = &s->clients[slot];
        uint64_t sender = c->joined ? c->id : GONE_SENDER(slot);
        size_t n = 1 + fuzz_u8(in) % 4, total = 0;
        if (s->n_msgs + n > MAX_MESSAGES || s->end > MAX_LOG_BYTES)
                return;
        for (size_t i = 0; i < n; i++) {
                uint8_t b = fuzz_u8(in);
                /* Mostly short messages; a few span blocks. */
                uint32_t len = b >= 0xf0 ? 1 + fuzz_u16(in) % MAX_MESSAGE_BYTES : 1 + (uint32_t)(b & 0x7f);
                s->msgs[s->n_msgs + i] = (Message){.sender = sender, .start = s->end + total, .len = len};
                total += len;
        }

        char *buf = malloc(total);
        if (!buf)
                abort();
        for (size_t i = s->n_msgs, at = 0; i < s->n_msgs + n; i++) {
                memcpy(buf + at, pattern + i % PATTERN_SHIFTS, s->msgs[i].len - 1);
                at += s->msgs[i].len;
                buf[at - 1] = '\n';
        }
        size_t cut1 = fuzz_u16(in) % (total + 1), cut2 = fuzz_u16(in) % (total + 1);
        size_t a = MIN(cut1, cut2), b = MAX(cut1, cut2);
        struct iovec iov[3] = {{buf, a}, {buf + a, b - a}, {buf + b, total - b}};
        if (bcastlog_append(s->log, sender, iov, 3) != 0)
                abort();
        free(buf);
        s->n_msgs += n;
        s->end += total;
}

/* A write: what fill offers must be exactly what the model expects next,
 * as much of it as the limits allow; the socket then takes some of it. */
static void op_write(State *s, Client *c, FuzzInput *in) {
        if (!c->joined)
                return;
        uint64_t skip = client_skip(c);
        struct iovec iov[MAX_IOV];
        size_t max_iov = 1 + fuzz_u8(in) % MAX_IOV, max_bytes = 1 + fuzz_u16(in), bytes;
        size_t n = bcastlog_fill(s->log, &c->cursor, skip, iov, max_iov, max_bytes, &bytes);

        Place read = c->at;
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
                const char *p = iov[i].iov_base;
                /* Adjacent spans come merged. */
                if (iov[i].iov_len == 0 ||
                    (i > 0 && (const char *)iov[i - 1].iov_base + iov[i - 1].iov_len == p) ||
                    !place_take(s, &read, skip, p, iov[i].iov_len))
                        abort();
                sum += iov[i].iov_len;
        }
        if (sum != bytes || bytes > max_bytes)
                abort();
        /* Short of max_bytes only at the end of the stream or of the iovs. */
        if (bytes < max_bytes && n < max_iov && place_take(s, &read, skip, NULL, 1))
                abort();

        size_t sent = fuzz_u8(in) & 1 ? bytes : fuzz_u16(in) % (bytes + 1);
        uint64_t own = bcastlog_skip_ahead(s->log, &c->cursor, skip);
        uint64_t passed = bcastlog_advance(s->log, &c->cursor, skip, sent);
        if (bcastlog_skip_ahead(s->log, &c->cursor, skip) != own - passed)
                abort();
        place_take(s, &c->at, skip, NULL, sent);
        place_skip_own(s, &c->at, skip);
}

/* A slow reader over 'limit' under slow_client = "drop": the rest of a
 * message partly written comes back to be sent first, then whole messages
 * are skipped until at most 'limit' bytes of others' messages wait. */
static void op_drop(State *s, Client *c, FuzzInput *in) {
        if (!c->joined)
                return;
        uint64_t skip = client_skip(c);
        uint64_t limit = fuzz_u16(in);
        limit <<= fuzz_u8(in) % 4;
        uint64_t own = bcastlog_skip_ahead(s->log, &c->cursor, skip);
        LogDrop d;
        if (bcastlog_cursor_drop(s->log, &c->cursor, skip, own, limit, &d) < 0)
                abort();
        if (bcastlog_skip_ahead(s->log, &c->cursor, skip) != own - d.skipped)
                abort();

        size_t want_rest = c->at.off ? s->msgs[c->at.next].len - c->at.off : 0;
        if (d.rest_len != want_rest || !d.rest != !want_rest ||
            (want_rest && !place_take(s, &c->at, skip, d.rest, d.rest_len)))
                abort();
        free(d.rest);

        uint64_t waiting = 0;
        for (size_t i = c->at.next; i < s->n_msgs; i++)
                if (s->msgs[i].sender != skip)
                        waiting += s->msgs[i].len;
        uint64_t want_dropped = 0;
        for (; c->at.next < s->n_msgs && waiting > limit; c->at.next++)
                if (s->msgs[c->at.next].sender != skip) {
                        want_dropped++;
                        waiting -= s->msgs[c->at.next].len;
                }
        place_skip_own(s, &c->at, skip);
        if (d.messages != want_dropped)
                abort();
}

/* What the block design lets the log hold: the block of the furthest-behind
 * cursor (the head), the tail, the spare, and the sealed blocks in between,
 * all within that cursor's backlog. A block is sealed only once no further
 * byte fits beside its run table, which has at most one run per message
 * starting in it plus one for a message continued from the block before,
 * so: sealed * (area - 2 * run) <= backlog + run * messages. With no cursor
 * the tail is emptied in place: one block and the spare. LogBlock and LogRun
 * are private: generous upper bounds of their sizes keep the bound sound. */
#define HEADER_MAX 64
#define RUN_MAX 32
static size_t memory_bound(const State *s) {
        uint64_t backlog = 0, messages = 0;
        bool any = false;
        for (size_t i = 0; i < N_CLIENTS; i++) {
                const Client *c = &s->clients[i];
                if (!c->joined)
                        continue;
                any = true;
                backlog = MAX(backlog, s->end - place_position(s, &c->at));
                messages = MAX(messages, (uint64_t)(s->n_msgs - c->at.next));
        }
        if (!any)
                return 2 * BCASTLOG_BLOCK_SIZE;
        uint64_t sealed =
                (backlog + RUN_MAX * messages) / (BCASTLOG_BLOCK_SIZE - HEADER_MAX - RUN_MAX - RUN_MAX);
        return (size_t)(sealed + 3) * BCASTLOG_BLOCK_SIZE;
}

static void check(const State *s) {
        if (bcastlog_end(s->log) != s->end)
                abort();
        for (size_t i = 0; i < N_CLIENTS; i++) {
                const Client *c = &s->clients[i];
                if (c->joined && bcastlog_backlog(s->log, &c->cursor) != s->end - place_position(s, &c->at))
                        abort();
        }
        if (bcastlog_memory(s->log) > memory_bound(s))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        FuzzInput in = {data, size};
        State *s = calloc(1, sizeof(*s));
        if (!s || bcastlog_new(&s->log) < 0)
                abort();

        while (in.left > 0) {
                uint8_t op = fuzz_u8(&in);
                size_t slot = (op >> 3) % N_CLIENTS;
                Client *c = &s->clients[slot];
                switch (op & 7) {
                case 0:
                        op_join(s, c, &in);
                        break;
                case 1:
                        op_leave(s, c);
                        break;
                case 2:
                case 3:
                        op_append(s, slot, &in);
                        break;
                case 4:
                case 5:
                        op_write(s, c, &in);
                        break;
                case 6:
                        op_drop(s, c, &in);
                        break;
                default:
                        /* A reload: skip changes between two writes,
                         * possibly within the client's own message. */
                        c->echo = !c->echo;
                        break;
                }
                check(s);
        }

        for (size_t i = 0; i < N_CLIENTS; i++)
                op_leave(s, &s->clients[i]);
        check(s);
        bcastlog_free(s->log);
        free(s);
        return 0;
}
