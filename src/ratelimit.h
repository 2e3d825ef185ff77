/* Token-window rate limiting for log lines, so that one flood of events does
 * not become a flood of log lines. Pure: the caller passes the time. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct RateLimit {
        uint64_t interval_usec;
        uint32_t burst;
        uint64_t begin;      /* start of the current window */
        uint32_t count;      /* events in the current window */
        uint32_t suppressed; /* events refused in the current window */
} RateLimit;

#define RATELIMIT_INIT(interval, n)                                                                         \
        { .interval_usec = (interval), .burst = (n) }

/* Counts one event at now_usec; true when it may be reported. When a new
 * window opens, *ret_suppressed (may be NULL) receives the number refused in
 * the previous one, for a "N similar messages suppressed" line. */
bool ratelimit_below(RateLimit *rl, uint64_t now_usec, uint32_t *ret_suppressed);

/* Closes the window if it has expired: returns the number refused in it
 * (0 if none), so a timer can report a flood that has stopped. */
uint32_t ratelimit_flush(RateLimit *rl, uint64_t now_usec);
