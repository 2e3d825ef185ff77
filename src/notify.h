/* Readiness and status for the service manager (sd_notify). Thin: every
 * call is a no-op when $NOTIFY_SOCKET is unset, i.e. outside systemd. */
#pragma once

#include <stdint.h>

#include "util.h"

void notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC=, as systemd 253+ expects; harmless on
 * 252. Follow with notify_ready(). */
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) _printf_(1, 2);
/* A fatal start-up error: STATUS= says why, ERRNO= carries the code. */
void notify_failed(int error, const char *fmt, ...) _printf_(2, 3);

/* The watchdog interval systemd asked for ($WATCHDOG_USEC for this PID), or
 * 0 when the watchdog is off. */
uint64_t notify_watchdog_usec(void);
void notify_watchdog(void);
