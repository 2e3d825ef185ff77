/* Unit tests for ratelimit.c: a fixed window of 'interval' allowing 'burst'
 * events; the next window (or a flush after expiry) reports how many were
 * refused. Times are passed in, so every case is exact. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "ratelimit.h"

#define SEC 1000000ULL
#define SENTINEL 0xdeadbeefu

/* Counts one event; checks the verdict and what *ret_suppressed received. */
static void expect(RateLimit *rl, uint64_t now, bool allowed, uint32_t suppressed) {
        uint32_t s = SENTINEL;
        bool r = ratelimit_below(rl, now, &s);
        cr_assert_eq(r, allowed, "t=%llu: expected %s, got %s", (unsigned long long)now,
                     allowed ? "allowed" : "refused", r ? "allowed" : "refused");
        cr_assert_eq(s, suppressed, "t=%llu: suppressed reported %u, expected %u", (unsigned long long)now,
                     s, suppressed);
}

/* n events a microsecond apart from t on, each allowed (or each refused)
 * and none reporting suppressed events. */
static void expect_events(RateLimit *rl, uint64_t t, int n, bool allowed) {
        for (int i = 0; i < n; i++)
                expect(rl, t + (uint64_t)i, allowed, 0);
}

Test(ratelimit, burst_allowed_then_refused) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 3);
        uint64_t t0 = 5 * SEC;

        expect_events(&rl, t0, 3, true);
        expect_events(&rl, t0 + 3, 10, false);
        /* Still the same window one microsecond before it ends. */
        expect(&rl, t0 + SEC - 1, false, 0);
        cr_assert_eq(rl.suppressed, 11);
}

Test(ratelimit, new_window_reports_suppressed_once) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 2);
        uint64_t t0 = 100;

        expect(&rl, t0, true, 0);
        expect(&rl, t0 + 10, true, 0);
        expect(&rl, t0 + 20, false, 0);
        expect(&rl, t0 + 30, false, 0);
        expect(&rl, t0 + 40, false, 0);

        /* Exactly one interval after the window opened: a new window, which
         * reports the three refused events, and allows a full burst again. */
        uint64_t t1 = t0 + SEC;
        expect(&rl, t1, true, 3);
        expect(&rl, t1 + 1, true, 0);
        expect(&rl, t1 + 2, false, 0);

        /* The next window reports only its predecessor's count. */
        uint64_t t2 = t1 + SEC;
        expect(&rl, t2, true, 1);
        /* A window without refusals reports 0. */
        expect(&rl, t2 + 5 * SEC, true, 0);
}

Test(ratelimit, window_opens_at_first_event_not_at_init) {
        /* The window starts at the first event, however late it comes. */
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 1);
        uint64_t t0 = 1000 * SEC;

        expect(&rl, t0, true, 0);
        expect(&rl, t0 + SEC - 1, false, 0);
        expect(&rl, t0 + SEC, true, 1);
}

Test(ratelimit, long_idle_gap_is_one_new_window) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 1);

        expect_events(&rl, SEC, 1, true);
        expect_events(&rl, SEC + 1, 2, false);
        /* Hours later: the old count is reported once, not per window missed. */
        expect(&rl, 7200 * SEC, true, 2);
        expect(&rl, 7200 * SEC + 1, false, 0);
}

Test(ratelimit, null_ret_suppressed_is_accepted) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 1);

        cr_assert(ratelimit_below(&rl, 10, NULL));
        cr_assert_not(ratelimit_below(&rl, 11, NULL));
        cr_assert_not(ratelimit_below(&rl, 12, NULL));
        /* The count is kept even though nobody asked for it. */
        expect(&rl, 10 + SEC, true, 2);
}

Test(ratelimit, flush_inside_window_returns_zero_and_keeps_count) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 1);
        uint64_t t0 = 50 * SEC;

        expect_events(&rl, t0, 1, true);
        expect_events(&rl, t0 + 1, 2, false);

        /* The window is still open: nothing to report, nothing lost. */
        cr_assert_eq(ratelimit_flush(&rl, t0 + SEC - 1), 0);
        expect(&rl, t0 + SEC - 1, false, 0);

        /* The next event in a new window reports all three. */
        expect(&rl, t0 + SEC, true, 3);
}

Test(ratelimit, flush_after_expiry_reports_and_resets) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 2);
        uint64_t t0 = 3 * SEC;

        expect(&rl, t0, true, 0);
        expect(&rl, t0, true, 0);
        for (int i = 0; i < 5; i++)
                expect(&rl, t0 + 1, false, 0);

        /* A timer after the flood has stopped reports it... */
        cr_assert_eq(ratelimit_flush(&rl, t0 + SEC), 5);
        /* ...exactly once: neither a second flush nor the next event repeat it. */
        cr_assert_eq(ratelimit_flush(&rl, t0 + 2 * SEC), 0);
        expect_events(&rl, t0 + 2 * SEC + 1, 2, true);
        expect_events(&rl, t0 + 2 * SEC + 3, 1, false);
}

Test(ratelimit, flush_without_events_returns_zero) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 2);

        cr_assert_eq(ratelimit_flush(&rl, 0), 0);
        cr_assert_eq(ratelimit_flush(&rl, 10 * SEC), 0);
        /* A flush with nothing counted does not consume the burst. */
        expect_events(&rl, 10 * SEC + 1, 2, true);
        expect_events(&rl, 10 * SEC + 3, 1, false);
}

Test(ratelimit, flush_after_allowed_only_window_returns_zero) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 3);

        expect_events(&rl, SEC, 2, true);
        cr_assert_eq(ratelimit_flush(&rl, 2 * SEC), 0);
        /* The flush opened a fresh window: a full burst again. */
        expect_events(&rl, 2 * SEC + 1, 3, true);
        expect_events(&rl, 2 * SEC + 4, 1, false);
}

Test(ratelimit, window_opens_at_first_event_even_near_time_zero) {
        /* A monotonic clock may start near 0: the window is still anchored
         * at the first event, not at 0. */
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 1);

        expect(&rl, 500000, true, 0);
        /* 1.2 s after 0 but only 0.7 s after the first event: same window. */
        expect(&rl, 1200000, false, 0);
        expect(&rl, 1500000, true, 1);
}

Test(ratelimit, window_after_flush_opens_at_next_event) {
        RateLimit rl = RATELIMIT_INIT(1 * SEC, 1);

        expect(&rl, 10 * SEC, true, 0);
        expect(&rl, 10 * SEC + 1, false, 0);
        cr_assert_eq(ratelimit_flush(&rl, 11 * SEC), 1);
        /* The flood resumes half a second after the timer's flush: the new
         * window starts with it, so 0.7 s later is still inside it. */
        expect(&rl, 11 * SEC + SEC / 2, true, 0);
        expect(&rl, 12 * SEC + SEC / 5, false, 0);
        expect(&rl, 12 * SEC + SEC / 2, true, 1);
}
