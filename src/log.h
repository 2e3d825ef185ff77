/* Logging to stderr with syslog priorities: "<N>" prefixes when stderr is
 * the journal stream, plain "warning: "/"error: " lines elsewhere. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include "util.h"

/* Detects whether stderr is connected to journald ($JOURNAL_STREAM). */
void log_open(void);
/* Lines less important than 'max_priority' (a LOG_* value) are dropped. */
void log_set_max_priority(int max_priority);
/* Whether a line of 'priority' would be written: skip formatting it if not. */
bool log_enabled(int priority);
void log_full(int priority, const char *fmt, ...) _printf_(2, 3);
void log_fullv(int priority, const char *fmt, va_list ap) _printf_(2, 0);
/* Names the client the following lines are about (NULL peer: none). In the
 * journal those lines carry EB_CLIENT_ID= and EB_PEER= fields, so
 * `journalctl EB_PEER=…` finds one client's history; elsewhere the text
 * alone says it. */
void log_set_client(uint64_t id, const char *peer);

/* The text of the last error logged ("" if none), for STATUS= on a fatal
 * start-up error. */
const char *log_last_error(void);

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
