/* The shared broadcast log. Pure.
 *
 * Every relayed message is copied once, into an append-only chain of blocks,
 * tagged with its sender; each client holds only a cursor into it. A
 * client's backlog is a subtraction, publishing is one append, and a block
 * is freed once no cursor is left in it (model: Redis's replication buffer).
 * Consecutive bytes from one sender form a run; runs are what the sender's
 * own cursor skips. A message may span blocks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Sender id that matches no client: pass it as 'skip' to skip nothing. */
#define BCASTLOG_NO_SENDER UINT64_MAX
/* Bytes per block, header and run table included. */
#define BCASTLOG_BLOCK_SIZE ((size_t)16 * 1024)

typedef struct BcastLog BcastLog;
typedef struct LogBlock LogBlock;

typedef struct LogCursor {
        LogBlock *blk;
        uint32_t off;     /* byte offset in blk */
        uint32_t run;     /* the run containing off (earliest at a boundary) */
        bool mid_message; /* a message has been partly delivered */
} LogCursor;

int bcastlog_new(BcastLog **ret);
BcastLog *bcastlog_free(BcastLog *log);

/* Appends the concatenation of iov[0..n) as bytes of 'sender'. The caller
 * only ever appends whole messages. All or nothing: 0, or -ENOMEM with the
 * log unchanged. */
int bcastlog_append(BcastLog *log, uint64_t sender, const struct iovec *iov, size_t n);

/* Global position of the end of the log (bytes ever appended). */
uint64_t bcastlog_end(const BcastLog *log);

/* Places a new cursor at the end of the log: it sees only later appends. */
void bcastlog_cursor_init(BcastLog *log, LogCursor *c);
/* Removes a cursor; blocks no longer needed are freed. */
void bcastlog_cursor_release(BcastLog *log, LogCursor *c);
/* Bytes from the cursor to the end, the cursor owner's own included: what
 * the log holds on its behalf. */
uint64_t bcastlog_backlog(const BcastLog *log, const LogCursor *c);

/* Fills iov with what the cursor has to send next, skipping runs of 'skip'
 * (the owner, unless echo is on), at most max_iov entries and max_bytes
 * bytes; adjacent spans are merged. Returns the number of entries and sets
 * *ret_bytes. 0 means the cursor has nothing to send. */
size_t bcastlog_fill(const BcastLog *log, const LogCursor *c, uint64_t skip, struct iovec *iov,
                     size_t max_iov, size_t max_bytes, size_t *ret_bytes);
/* Moves the cursor past 'bytes' sent from what bcastlog_fill() offered
 * (same 'skip'), then past any runs of 'skip' that follow. Returns the bytes
 * of 'skip' runs it stepped over. */
uint64_t bcastlog_advance(BcastLog *log, LogCursor *c, uint64_t skip, size_t bytes);

/* Bytes of 'skip' runs between the cursor and the end that the cursor will
 * step over (for a reader that has just stopped receiving its own messages). */
uint64_t bcastlog_skip_ahead(const BcastLog *log, const LogCursor *c, uint64_t skip);

typedef struct LogDrop {
        uint64_t messages; /* whole messages skipped that the reader would have received */
        uint64_t skipped;  /* bytes of 'skip' runs stepped over */
        char *rest;        /* the rest of a partly delivered message, to send first; or NULL */
        size_t rest_len;
} LogDrop;

/* For a reader over its limit when the policy is to drop: moves the cursor
 * forward to the first message boundary at which at most 'limit' bytes wait
 * for the reader; runs of 'skip' do not count ('skip_ahead' says how many of
 * their bytes lie ahead of the cursor). A message already partly delivered
 * is never cut: its remainder is copied to a new buffer for the caller to
 * send first. Returns 0 with *ret filled, or -ENOMEM with nothing changed. */
int bcastlog_cursor_drop(BcastLog *log, LogCursor *c, uint64_t skip, uint64_t skip_ahead, uint64_t limit,
                         LogDrop *ret);

/* Bytes of memory held by blocks (for statistics and tests). */
size_t bcastlog_memory(const BcastLog *log);
