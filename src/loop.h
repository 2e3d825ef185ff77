/* The event loop: the only module that calls epoll_*.
 *
 * Every fd is registered once, edge-triggered, for input and output. Edges
 * are cached on the source and the source is put on a ready list; each round
 * swaps that list out and dispatches every source on it once. A source that
 * stopped before EAGAIN (a fairness budget) calls loop_requeue() to stay
 * ready, so no edge is ever lost and no EPOLL_CTL_MOD is needed. */
#pragma once

#include <stdint.h>
#include <sys/epoll.h>

#include "util.h"

typedef struct Source Source;
/* 'userdata' is the loop's, given to loop_new(): sources need no back
 * pointer of their own, which keeps a client small. */
typedef void (*SourceDispatch)(Source *s, uint32_t events, void *userdata);

struct Source {
        int fd;
        uint32_t events; /* received, not yet dispatched */
        ListNode ready;
        SourceDispatch dispatch;
};

typedef struct Loop Loop;

int loop_new(Loop **ret, void *userdata);
Loop *loop_free(Loop *l);

/* Registers fd (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET) as s. Returns 0, or
 * -errno with s untouched (the caller still owns and closes fd). */
int loop_add(Loop *l, Source *s, int fd, SourceDispatch dispatch);
/* Forgets a source before its fd is closed (closing deregisters the fd). */
void loop_remove(Loop *l, Source *s);
/* Dispatches s again next round with 'events', e.g. after a read budget. */
void loop_requeue(Loop *l, Source *s, uint32_t events);

/* Waits up to timeout_ms (not at all when sources are ready), then
 * dispatches every ready source once. Returns 0 or -errno. */
int loop_run_once(Loop *l, int timeout_ms);
