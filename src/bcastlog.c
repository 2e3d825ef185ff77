/* BcastLog: owns the chain of blocks and the run tables inside them.
 *
 * A block is a slotted page: message bytes grow up from the start of the
 * data area, the run table grows down from its end. Invariants:
 *  - blocks are ordered; only the tail grows, earlier ones are sealed;
 *  - every cursor sits in some block, counted in that block's 'refs';
 *  - the head is freed once it has no cursor and is not the tail, so memory
 *    is bounded by the furthest-behind cursor plus two blocks (the partly
 *    read one and the spare kept against malloc churn);
 *  - runs never mix senders and append only ever adds whole messages, so a
 *    run boundary inside a block that is not at a LF exists only where a
 *    message continues into the next block. */
#include "bcastlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct LogRun {
        uint64_t sender;
        uint32_t off;
        uint32_t len;
} LogRun;

struct LogBlock {
        LogBlock *next;
        uint64_t start; /* global position of data[0] */
        uint32_t used;  /* data bytes */
        uint32_t n_runs;
        uint32_t refs; /* cursors in this block */
        uint32_t pad_;
        char data[];
};

#define BLOCK_AREA (BCASTLOG_BLOCK_SIZE - sizeof(LogBlock))
_Static_assert(BLOCK_AREA % _Alignof(LogRun) == 0, "run table must be aligned");

struct BcastLog {
        LogBlock *head;
        LogBlock *tail;
        LogBlock *spare; /* one freed block kept to avoid malloc churn */
        size_t n_blocks;
};

static LogRun *block_run(const LogBlock *b, uint32_t i) {
        return (LogRun *)(uintptr_t)(b->data + BLOCK_AREA) - 1 - i;
}

static size_t block_free_bytes(const LogBlock *b) {
        return BLOCK_AREA - b->used - (size_t)b->n_runs * sizeof(LogRun);
}

static LogBlock *log_block_alloc(BcastLog *log) {
        LogBlock *b = TAKE_PTR(log->spare);
        if (!b)
                b = malloc(BCASTLOG_BLOCK_SIZE);
        if (b)
                *b = (LogBlock){0};
        return b;
}

static void log_block_release(BcastLog *log, LogBlock *b) {
        if (!log->spare)
                log->spare = b;
        else
                free(b);
}

int bcastlog_new(BcastLog **ret) {
        BcastLog *log = calloc(1, sizeof(*log));
        if (!log)
                return -ENOMEM;
        log->head = log->tail = log_block_alloc(log);
        if (!log->head) {
                free(log);
                return -ENOMEM;
        }
        log->n_blocks = 1;
        *ret = log;
        return 0;
}

BcastLog *bcastlog_free(BcastLog *log) {
        if (!log)
                return NULL;
        for (LogBlock *b = log->head, *next; b; b = next) {
                next = b->next;
                free(b);
        }
        free(log->spare);
        free(log);
        return NULL;
}

uint64_t bcastlog_end(const BcastLog *log) {
        return log->tail->start + log->tail->used;
}

size_t bcastlog_memory(const BcastLog *log) {
        return (log->n_blocks + (log->spare ? 1 : 0)) * BCASTLOG_BLOCK_SIZE;
}

/* Frees blocks no cursor can reach any more. With no cursor at all, the
 * tail is emptied in place. */
static void log_trim(BcastLog *log) {
        while (log->head != log->tail && log->head->refs == 0) {
                LogBlock *b = log->head;
                log->head = b->next;
                log->n_blocks--;
                log_block_release(log, b);
        }
        if (log->head == log->tail && log->tail->refs == 0) {
                log->tail->start += log->tail->used;
                log->tail->used = 0;
                log->tail->n_runs = 0;
        }
}

/* Space for bytes in a fresh block when each block needs one run. */
#define BLOCK_PAYLOAD (BLOCK_AREA - sizeof(LogRun))

static bool tail_extends_run(const LogBlock *b, uint64_t sender) {
        if (b->n_runs == 0)
                return false;
        const LogRun *r = block_run(b, b->n_runs - 1);
        return r->sender == sender && r->off + r->len == b->used;
}

/* Room for sender's bytes in block b right now. */
static size_t block_room(const LogBlock *b, uint64_t sender) {
        size_t free_bytes = block_free_bytes(b);
        if (tail_extends_run(b, sender))
                return free_bytes;
        return free_bytes > sizeof(LogRun) ? free_bytes - sizeof(LogRun) : 0;
}

static void block_put(LogBlock *b, uint64_t sender, const char *p, size_t n) {
        if (!tail_extends_run(b, sender)) {
                *block_run(b, b->n_runs) = (LogRun){.sender = sender, .off = b->used, .len = 0};
                b->n_runs++;
        }
        memcpy(b->data + b->used, p, n);
        b->used += (uint32_t)n;
        block_run(b, b->n_runs - 1)->len += (uint32_t)n;
}

int bcastlog_append(BcastLog *log, uint64_t sender, const struct iovec *iov, size_t n) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += iov[i].iov_len;
        if (total == 0)
                return 0;

        /* Allocate every block needed first, so that a failure leaves no
         * half message behind. */
        size_t room = block_room(log->tail, sender);
        LogBlock *fresh = NULL, **link = &fresh;
        for (size_t have = room; have < total; have += BLOCK_PAYLOAD) {
                LogBlock *b = log_block_alloc(log);
                if (!b) {
                        for (LogBlock *next; fresh; fresh = next) {
                                next = fresh->next;
                                free(fresh);
                        }
                        return -ENOMEM;
                }
                *link = b;
                link = &b->next;
        }

        for (size_t i = 0; i < n; i++) {
                const char *p = iov[i].iov_base;
                size_t left = iov[i].iov_len;
                while (left > 0) {
                        LogBlock *t = log->tail;
                        size_t k = MIN(left, block_room(t, sender));
                        if (k == 0) {
                                LogBlock *b = fresh;
                                /* 'fresh' holds exactly the blocks counted above: each put shrinks
                                 * block_room() by k */
                                /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
                                fresh = b->next;
                                b->next = NULL;
                                b->start = t->start + t->used;
                                t->next = b;
                                log->tail = b;
                                log->n_blocks++;
                                continue;
                        }
                        block_put(t, sender, p, k);
                        p += k;
                        left -= k;
                }
        }
        /* The estimate is exact, but never leak if it ever over-counts. */
        for (LogBlock *next; fresh; fresh = next) {
                next = fresh->next;
                log_block_release(log, fresh);
        }
        log_trim(log);
        return 0;
}

/* --- cursors --------------------------------------------------------------- */

static void cursor_move(BcastLog *log, LogCursor *c, LogBlock *b, uint32_t off, uint32_t run) {
        if (c->blk != b) {
                LogBlock *old = c->blk;
                b->refs++;
                c->blk = b;
                old->refs--;
                if (old->refs == 0)
                        log_trim(log);
        }
        c->off = off;
        c->run = run;
}

void bcastlog_cursor_init(BcastLog *log, LogCursor *c) {
        LogBlock *t = log->tail;
        *c = (LogCursor){
                .blk = t,
                .off = t->used,
                .run = t->n_runs ? t->n_runs - 1 : 0,
        };
        t->refs++;
}

void bcastlog_cursor_release(BcastLog *log, LogCursor *c) {
        if (!c->blk)
                return;
        c->blk->refs--;
        c->blk = NULL;
        log_trim(log);
}

uint64_t bcastlog_backlog(const BcastLog *log, const LogCursor *c) {
        return bcastlog_end(log) - (c->blk->start + c->off);
}

/* A read position, walked span by span. The same walk serves fill, advance
 * and drop so that they can never disagree about what is sent. */
typedef struct Walk {
        LogBlock *blk;
        uint32_t off;
        uint32_t run;
        bool mid;
        uint64_t skipped; /* bytes of 'skip' runs stepped over */
} Walk;

static Walk walk_from(const LogCursor *c) {
        return (Walk){.blk = c->blk, .off = c->off, .run = c->run, .mid = c->mid_message};
}

/* Moves w to the start of its next byte, across run and block ends.
 * Returns that run, or NULL at the end of the log. */
static const LogRun *walk_settle(Walk *w) {
        for (;;) {
                if (w->run < w->blk->n_runs) {
                        const LogRun *r = block_run(w->blk, w->run);
                        if (w->off < r->off + r->len)
                                return r;
                        if (w->run + 1 < w->blk->n_runs) {
                                w->run++;
                                continue;
                        }
                }
                if (w->off < w->blk->used || !w->blk->next)
                        return NULL;
                w->blk = w->blk->next;
                w->off = 0;
                w->run = 0;
        }
}

/* The next span to send: sets *ret_p / *ret_len and returns true, or false
 * at the end. Runs of 'skip' are stepped over, except the rest of a message
 * already partly delivered (possible when echo was switched off by a
 * reload), which is sent up to its LF so the message stays whole. */
static bool walk_span(Walk *w, uint64_t skip, const char **ret_p, size_t *ret_len) {
        for (;;) {
                const LogRun *r = walk_settle(w);
                if (!r)
                        return false;
                const char *p = w->blk->data + w->off;
                size_t len = r->off + r->len - w->off;
                if (r->sender != skip) {
                        *ret_p = p;
                        *ret_len = len;
                        return true;
                }
                if (w->mid) {
                        const char *lf = memchr(p, '\n', len);
                        *ret_p = p;
                        *ret_len = lf ? (size_t)(lf - p) + 1 : len;
                        return true;
                }
                w->off = r->off + r->len;
                w->skipped += len;
        }
}

static void walk_consume(Walk *w, const char *p, size_t k) {
        w->off += (uint32_t)k;
        w->mid = p[k - 1] != '\n';
}

size_t bcastlog_fill(const BcastLog *log _unused_, const LogCursor *c, uint64_t skip, struct iovec *iov,
                     size_t max_iov, size_t max_bytes, size_t *ret_bytes) {
        Walk w = walk_from(c);
        size_t n = 0, bytes = 0;
        const char *p;
        size_t len;

        while (bytes < max_bytes && walk_span(&w, skip, &p, &len)) {
                size_t k = MIN(len, max_bytes - bytes);
                if (n > 0 && (char *)iov[n - 1].iov_base + iov[n - 1].iov_len == p)
                        iov[n - 1].iov_len += k;
                else if (n < max_iov)
                        iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)p, .iov_len = k};
                else
                        break;
                bytes += k;
                walk_consume(&w, p, k);
        }
        *ret_bytes = bytes;
        return n;
}

static void cursor_store(BcastLog *log, LogCursor *c, const Walk *w) {
        cursor_move(log, c, w->blk, w->off, w->run);
        c->mid_message = w->mid;
}

uint64_t bcastlog_advance(BcastLog *log, LogCursor *c, uint64_t skip, size_t bytes) {
        Walk w = walk_from(c);
        const char *p;
        size_t len;

        while (bytes > 0 && walk_span(&w, skip, &p, &len)) {
                size_t k = MIN(len, bytes);
                walk_consume(&w, p, k);
                bytes -= k;
        }
        /* Rest on the next byte to send, so own runs pin no block. */
        (void)walk_span(&w, skip, &p, &len);
        cursor_store(log, c, &w);
        return w.skipped;
}

uint64_t bcastlog_skip_ahead(const BcastLog *log _unused_, const LogCursor *c, uint64_t skip) {
        Walk w = walk_from(c);
        const char *p;
        size_t len;

        while (walk_span(&w, skip, &p, &len))
                walk_consume(&w, p, len);
        return w.skipped;
}

static size_t count_lf(const char *p, size_t len) {
        size_t n = 0;
        for (const char *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
                n++;
        return n;
}

int bcastlog_cursor_drop(BcastLog *log, LogCursor *c, uint64_t skip, uint64_t skip_ahead, uint64_t limit,
                         LogDrop *ret) {
        Walk w = walk_from(c);
        const char *p;
        size_t len;
        _cleanup_free_ char *rest = NULL;
        size_t rest_len = 0;

        if (w.mid) {
                /* Measure, then copy, the remainder of the current message. */
                Walk m = w;
                while (m.mid && walk_span(&m, skip, &p, &len)) {
                        const char *lf = memchr(p, '\n', len);
                        size_t k = lf ? (size_t)(lf - p) + 1 : len;
                        rest_len += k;
                        walk_consume(&m, p, k);
                }
                rest = malloc(MAX(rest_len, (size_t)1));
                if (!rest)
                        return -ENOMEM;
                size_t copied = 0;
                while (w.mid && walk_span(&w, skip, &p, &len)) {
                        const char *lf = memchr(p, '\n', len);
                        size_t k = lf ? (size_t)(lf - p) + 1 : len;
                        memcpy(rest + copied, p, k);
                        copied += k;
                        walk_consume(&w, p, k);
                }
        }

        /* Skip whole messages until at most 'limit' bytes wait for the
         * reader, its own runs not counted. Within another sender's run the
         * own bytes ahead are constant, so the stop is just past the first
         * LF at or after position 'need' (every message starts right after a
         * LF); an own run is stepped over whole. */
        uint64_t end = bcastlog_end(log), dropped = 0;
        bool boundary = true;
        const LogRun *r;
        while ((r = walk_settle(&w))) {
                uint64_t pos = w.blk->start + w.off;
                uint64_t own = skip_ahead > w.skipped ? MIN(skip_ahead - w.skipped, end - pos) : 0;
                if (boundary && end - pos - own <= limit)
                        break;
                p = w.blk->data + w.off;
                len = r->off + r->len - w.off;
                if (r->sender == skip) {
                        w.off += (uint32_t)len;
                        w.skipped += len;
                        boundary = p[len - 1] == '\n';
                        continue;
                }
                uint64_t need = end - own > limit ? end - own - limit - 1 : 0;
                size_t k = len;
                bool found = false;
                if (pos + len > need) {
                        size_t from = need > pos ? (size_t)(need - pos) : 0;
                        const char *lf = memchr(p + from, '\n', len - from);
                        if (lf) {
                                k = (size_t)(lf - p) + 1;
                                found = true;
                        }
                }
                dropped += count_lf(p, k);
                w.off += (uint32_t)k;
                boundary = p[k - 1] == '\n';
                if (found)
                        break;
        }
        w.mid = false;
        (void)walk_span(&w, skip, &p, &len);
        cursor_store(log, c, &w);

        *ret = (LogDrop){
                .messages = dropped,
                .skipped = w.skipped,
                .rest = rest_len ? TAKE_PTR(rest) : NULL,
                .rest_len = rest_len,
        };
        return 0;
}
