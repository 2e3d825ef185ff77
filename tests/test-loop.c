/* Unit tests of loop.c: edges are cached and dispatched once per round, a
 * requeued source is dispatched again without a new edge, a source removed
 * by another's dispatch in the same round is not, and a failed add leaves
 * the source as it was. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

typedef struct TestSource {
        Source src;
        int calls;
        uint32_t events;
        struct TestSource *victim; /* removed from inside this one's dispatch */
} TestSource;

static void on_ready(Source *s, uint32_t events, void *userdata) {
        TestSource *t = container_of(s, TestSource, src);
        t->calls++;
        t->events |= events;
        if (t->victim)
                loop_remove(userdata, &t->victim->src);
}

static void add_pair(Loop *l, TestSource *t, int sv[2]) {
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        cr_assert_eq(loop_add(l, &t->src, sv[0], on_ready), 0);
}

Test(loop, an_edge_is_dispatched_once) {
        Loop *l;
        TestSource t = {0};
        int sv[2];
        cr_assert_eq(loop_new(&l, NULL), 0);
        add_pair(l, &t, sv);
        cr_assert_eq(loop_run_once(l, 1000), 0);
        cr_assert_eq(t.calls, 1);
        cr_assert(t.events & EPOLLOUT, "a fresh socket is writable");
        cr_assert_eq(write(sv[1], "x", 1), 1);
        cr_assert_eq(loop_run_once(l, 1000), 0);
        cr_assert_eq(t.calls, 2);
        cr_assert(t.events & EPOLLIN);
        /* No new edge: nothing is dispatched. */
        cr_assert_eq(loop_run_once(l, 0), 0);
        cr_assert_eq(t.calls, 2);
        /* Requeued (twice): dispatched once, without an edge, and the wait
         * does not block while something is ready. */
        loop_requeue(l, &t.src, EPOLLIN);
        loop_requeue(l, &t.src, EPOLLIN);
        cr_assert_eq(loop_run_once(l, -1), 0);
        cr_assert_eq(t.calls, 3);
        /* Requeued, then removed: not dispatched. */
        loop_requeue(l, &t.src, EPOLLIN);
        loop_remove(l, &t.src);
        cr_assert_eq(loop_run_once(l, 0), 0);
        cr_assert_eq(t.calls, 3);
        close(sv[0]);
        close(sv[1]);
        loop_free(l);
}

Test(loop, a_dispatch_may_remove_another_ready_source) {
        Loop *l;
        TestSource a = {0}, b = {0};
        int sa[2], sb[2];
        cr_assert_eq(loop_new(&l, NULL), 0);
        add_pair(l, &a, sa);
        add_pair(l, &b, sb);
        cr_assert_eq(loop_run_once(l, 1000), 0); /* both writable */
        loop_requeue(l, &a.src, EPOLLIN);
        loop_requeue(l, &b.src, EPOLLIN);
        a.victim = &b;
        b.victim = &a;
        cr_assert_eq(loop_run_once(l, 0), 0);
        cr_assert_eq(a.calls + b.calls, 3, "a removed source was dispatched (a %d, b %d)", a.calls, b.calls);
        close(sa[0]);
        close(sa[1]);
        close(sb[0]);
        close(sb[1]);
        loop_free(l);
}

Test(loop, a_failed_add_leaves_the_source_untouched) {
        Loop *l;
        cr_assert_eq(loop_new(&l, NULL), 0);
        Source s = {.fd = 1234};
        cr_assert_eq(loop_add(l, &s, -1, on_ready), -EBADF);
        cr_assert_eq(s.fd, 1234, "loop_add set the fd of a source it did not add");
        cr_assert_null(s.dispatch);
        loop_free(l);
}
