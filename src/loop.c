/* Loop: owns the epoll fd and the ready list. Sources are owned by their
 * modules and must be loop_remove()d before they are freed. Dispatching pops
 * sources one at a time, so a dispatch may remove any other source. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#define LOOP_MAX_EVENTS 256

struct Loop {
        int epfd;
        ListNode ready;
        void *userdata;
};

int loop_new(Loop **ret, void *userdata) {
        Loop *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        list_init(&l->ready);
        l->userdata = userdata;
        *ret = l;
        return 0;
}

Loop *loop_free(Loop *l) {
        if (!l)
                return NULL;
        safe_close(l->epfd);
        free(l);
        return NULL;
}

int loop_add(Loop *l, Source *s, int fd, SourceDispatch dispatch) {
        struct epoll_event ev = {
                .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                .data.ptr = s,
        };
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        s->fd = fd;
        s->events = 0;
        s->dispatch = dispatch;
        list_init(&s->ready);
        return 0;
}

void loop_remove(Loop *l _unused_, Source *s) {
        list_unlink(&s->ready);
        s->events = 0;
}

void loop_requeue(Loop *l, Source *s, uint32_t events) {
        s->events |= events;
        if (!list_linked(&s->ready))
                list_push_back(&l->ready, &s->ready);
}

static bool loop_has_ready(const Loop *l) {
        return !list_empty(&l->ready);
}

int loop_run_once(Loop *l, int timeout_ms) {
        struct epoll_event evs[LOOP_MAX_EVENTS];
        int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, loop_has_ready(l) ? 0 : timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        for (int i = 0; i < n; i++)
                loop_requeue(l, evs[i].data.ptr, evs[i].events);

        ListNode todo;
        list_init(&todo);
        list_splice_back(&todo, &l->ready);
        ListNode *node;
        while ((node = list_pop_front(&todo))) {
                Source *s = container_of(node, Source, ready);
                uint32_t events = s->events;
                s->events = 0;
                s->dispatch(s, events, l->userdata);
        }
        return 0;
}
