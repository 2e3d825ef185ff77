/* Splits a client's byte stream into LF-terminated messages. Pure.
 *
 * Only an unfinished line is ever stored: complete lines are handed out as
 * pointers into the caller's input, so an idle client (or one whose reads
 * end on a line boundary) owns no buffer at all. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Framer {
        char *partial; /* bytes of an unfinished line, NULL if none */
        uint32_t len;
        uint32_t cap;
        /* The last line returned lives in 'partial': drop it on the next call. */
        uint32_t handed_out;
        /* The caller's, in its padding: when the unfinished line began. */
        uint32_t since;
} Framer;

#define FRAMER_INIT                                                                                         \
        { 0 }

/* Takes the next complete line (LF included) out of *in / *in_len, moving
 * them past what it consumed. Returns 1 with *ret_line / *ret_len set (the
 * line stays valid until the next call on this framer or until the input
 * buffer is reused), 0 when the input is used up (an unfinished line is kept
 * for the next call), -EMSGSIZE as soon as a line longer than 'max' bytes (LF
 * included) is certain, or -ENOMEM. After -EMSGSIZE the framer is reset. */
int framer_next(Framer *f, const char **in, size_t *in_len, size_t max, const char **ret_line,
                size_t *ret_len);

/* At end of stream: returns 1 with the unfinished line (no LF) when there is
 * one that still fits in 'max' once a LF is appended, 0 when there is none,
 * -EMSGSIZE when it would not fit. The line stays valid until framer_reset(). */
int framer_finish(Framer *f, size_t max, const char **ret_line, size_t *ret_len);

/* Bytes of an unfinished line currently held. */
static inline size_t framer_pending(const Framer *f) {
        return f->handed_out ? 0 : f->len;
}

void framer_reset(Framer *f);
