/* Notify: owns the sd_notify protocol strings. Failures are deliberately
 * ignored: a notification that cannot be delivered must never stop the
 * relay, and systemd reports a missing READY=1 itself. */
#include "notify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>

void notify_ready(void) {
        (void)sd_notify(0, "READY=1\nSTATUS=Relaying");
}

void notify_stopping(void) {
        (void)sd_notify(0, "STOPPING=1\nSTATUS=Stopping: sending what is queued");
}

void notify_reloading(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading the configuration",
                         (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void notify_status(const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(buf, sizeof(buf), fmt, ap); /* a longer status is cut */
        va_end(ap);
        (void)sd_notifyf(0, "STATUS=%s", buf);
}

void notify_failed(int error, const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(buf, sizeof(buf), fmt, ap); /* a longer status is cut */
        va_end(ap);
        /* STATUS= is one line: keep the first. */
        buf[strcspn(buf, "\n")] = '\0';
        (void)sd_notifyf(0, "STATUS=%s\nERRNO=%d", buf, error);
}

uint64_t notify_watchdog_usec(void) {
        uint64_t usec = 0;
        return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void notify_watchdog(void) {
        (void)sd_notify(0, "WATCHDOG=1");
}
