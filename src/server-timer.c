/* The housekeeping tick (once a second, or at half the watchdog period, and
 * every 100 ms while stopping): pets the watchdog, reports suppressed
 * warnings, returns free heap, restores the reserve descriptor, resumes
 * paused listeners, refreshes STATUS=, closes clients whose unfinished line
 * is older than partial_timeout, and while stopping closes lingering
 * clients once their peer has everything, or all of them at the deadline. */
#include "server-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>

#include "log.h"
#include "notify.h"

#define TICK_USEC USEC_PER_SEC
#define TRIM_STEP ((size_t)1024 * 1024) /* newly free heap bytes worth a malloc_trim() */

int server_arm_timer(Server *s, uint64_t interval_usec) {
        struct itimerspec its = {
                .it_interval = {.tv_sec = (time_t)(interval_usec / USEC_PER_SEC),
                                .tv_nsec = (long)(interval_usec % USEC_PER_SEC) * 1000},
        };
        its.it_value = its.it_interval;
        return timerfd_settime(s->timer_src.fd, 0, &its, NULL) < 0 ? -errno : 0;
}

/* A lingering client (stopping, or after its WebSocket close frame or HTTP
 * response) whose every byte the peer acknowledged has nothing left to
 * lose. One whose write failed is still being read, not drained. */
static void server_check_linger(Server *s) {
        for (ListNode *n = s->linger_list.next, *next; n != &s->linger_list; n = next) {
                next = n->next;
                Client *c = container_of(n, Client, link);
                int queued;
                if (c->phase == CLIENT_LINGER && !c->output_failed &&
                    (ioctl(c->src.fd, SIOCOUTQ, &queued) < 0 || queued == 0))
                        server_close_client(s, c, NULL);
        }
}

/* Like nginx's client_body_timeout and HAProxy's 'timeout http-request':
 * an unfinished line may wait so long for its end, and no longer, or a
 * client could hold max_message_bytes of memory forever. */
static void server_check_partial_age(Server *s, Client *c, void *arg) {
        uint32_t now = *(const uint32_t *)arg, timeout = s->config->partial_timeout;
        /* Whole seconds: more than 'timeout' of them apart is surely longer
         * than the timeout, and at most two seconds more. */
        if (c->phase != CLIENT_OPEN || client_pending_input(c) == 0 || now - c->framer.since <= timeout)
                return;
        s->stats.partial_disconnects++;
        server_warn(s, WARN_PARTIAL, c,
                    "unfinished line older than partial_timeout (%" PRIu32 " s); disconnecting", timeout);
        server_close_client(s, c, "unfinished line timed out");
}

/* A TLS client has handshake_timeout seconds to finish its handshake. */
static void server_check_handshake(Server *s, Client *c, void *arg) {
        uint32_t now = *(const uint32_t *)arg;
        if (c->phase != CLIENT_OPEN || client_established(c) ||
            now - client_handshake_since(c) <= s->config->tls.handshake_timeout)
                return;
        s->stats.tls_failures++;
        server_warn(s, WARN_TLS, c,
                    "no TLS handshake within handshake_timeout (%" PRIu32 " s); disconnecting",
                    s->config->tls.handshake_timeout);
        server_close_client(s, c, "TLS handshake timed out");
}

/* glibc gives heap memory back only from the top of the heap, and whatever
 * was allocated last pins it there: after 1,000 clients held partial lines
 * and left, the daemon stayed 16 MiB larger for good. Once a second, when
 * at least TRIM_STEP more heap is free than at its lowest since the last
 * trim, malloc_trim() returns the free pages, inside the heap too. */
static void server_trim_memory(Server *s) {
#ifdef __GLIBC__
        struct mallinfo2 mi = mallinfo2();
        if (mi.fordblks < s->free_floor)
                s->free_floor = mi.fordblks;
        if (mi.fordblks - s->free_floor < TRIM_STEP)
                return;
        (void)malloc_trim(0);
        s->free_floor = mi.fordblks;
#else
        (void)s;
#endif
}

static void server_on_timer(Source *src, uint32_t events _unused_, void *userdata) {
        Server *s = userdata;
        uint64_t expirations;

        if (read(src->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
                log_warning("cannot read the timer: %m");

        if (s->watchdog)
                notify_watchdog();
        uint64_t now = now_usec();
        for (size_t i = 0; i < ARRAY_SIZE(s->warn_limit); i++) {
                uint32_t suppressed = ratelimit_flush(&s->warn_limit[i], now);
                if (suppressed > 0)
                        log_warning("%" PRIu32 " similar warnings suppressed", suppressed);
        }
        server_trim_memory(s);
        if (s->reserve_fd < 0)
                s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        server_resume_listeners(s);
        if (s->phase == PHASE_RUNNING) {
                uint32_t now_s = (uint32_t)(now / USEC_PER_SEC);
                if (s->config->partial_timeout > 0 && s->partial_bytes > 0)
                        server_client_list_for_each(s, server_check_partial_age, &now_s);
                if (s->handshakes > 0)
                        server_client_list_for_each(s, server_check_handshake, &now_s);
                server_ws_tick(s, now_s);
                server_update_status(s);
        }
        server_check_linger(s);
        if (s->phase == PHASE_DRAINING) {
                if (now >= s->drain_deadline) {
                        log_notice("shutdown_timeout reached with %zu client%s left", s->n_clients,
                                   s->n_clients == 1 ? "" : "s");
                        s->phase = PHASE_DONE;
                }
        }
}

int server_add_timer(Server *s) {
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = loop_add(s->loop, &s->timer_src, fd, server_on_timer);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        /* Pet the watchdog at half its period, from the loop itself, so a
         * stuck loop is noticed. */
        uint64_t watchdog_usec = notify_watchdog_usec();
        s->watchdog = watchdog_usec > 0;
        s->tick_usec = s->watchdog ? MAX(MIN(TICK_USEC, watchdog_usec / 2), 1000) : TICK_USEC;
        return server_arm_timer(s, s->tick_usec);
}
