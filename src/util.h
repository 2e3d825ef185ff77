/* Small helpers shared by every module: scope-bound cleanup (systemd style),
 * ownership hand-off, and an intrusive doubly-linked list. Header-only so the
 * pure modules stay free of link-time dependencies. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
/* Through void *: the member's address is suitably aligned for its struct, which
 * -Wcast-align (clang) cannot know from a char *. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Hand ownership on: returns the value and leaves the variable empty so the
 * cleanup attribute does nothing. */
#define TAKE_PTR(p)                                                                                         \
        ({                                                                                                  \
                __typeof__(p) _p = (p);                                                                     \
                (p) = NULL;                                                                                 \
                _p;                                                                                         \
        })
#define TAKE_FD(fd)                                                                                         \
        ({                                                                                                  \
                int _fd = (fd);                                                                             \
                (fd) = -1;                                                                                  \
                _fd;                                                                                        \
        })

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* close() that keeps errno, for cleanup paths that must not clobber it. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void)close(fd);
                errno = saved;
        }
        return -1;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

/* Intrusive circular list; an unlinked node points at itself so that
 * list_unlink() is always safe and list_linked() is a cheap test. */
typedef struct ListNode {
        struct ListNode *next, *prev;
} ListNode;

static inline void list_init(ListNode *n) {
        n->next = n->prev = n;
}
static inline bool list_empty(const ListNode *head) {
        return head->next == head;
}
static inline bool list_linked(const ListNode *n) {
        return n->next != n;
}
static inline void list_unlink(ListNode *n) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
        list_init(n);
}
static inline void list_push_back(ListNode *head, ListNode *n) {
        n->prev = head->prev;
        n->next = head;
        head->prev->next = n;
        head->prev = n;
}
static inline void list_move_back(ListNode *head, ListNode *n) {
        list_unlink(n);
        list_push_back(head, n);
}
static inline ListNode *list_pop_front(ListNode *head) {
        if (list_empty(head))
                return NULL;
        ListNode *n = head->next;
        list_unlink(n);
        return n;
}
/* Moves every node of 'from' to the end of 'to'. */
static inline void list_splice_back(ListNode *to, ListNode *from) {
        if (list_empty(from))
                return;
        from->next->prev = to->prev;
        from->prev->next = to;
        to->prev->next = from->next;
        to->prev = from->prev;
        list_init(from);
}
