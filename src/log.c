/* Log: owns the output format and the level filter. Each line is written
 * with one write(2) so lines from this process never tear. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static int max_priority = LOG_NOTICE;
static bool to_journal;
static bool journal_native; /* journald's socket is there for fields */
static char last_error[512];
static uint64_t client_id;
static const char *client_peer;

void log_set_client(uint64_t id, const char *peer) {
        client_id = id;
        client_peer = peer;
}

/* Fields need the native protocol; the stream carries none. Returns false
 * when journald cannot be reached, so the line goes to stderr instead. */
static bool log_to_journal_with_fields(int priority, const char *msg) {
        return sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%i", priority,
                               "SYSLOG_IDENTIFIER=epoll-broadcaster", "EB_CLIENT_ID=%" PRIu64, client_id,
                               "EB_PEER=%s", client_peer, NULL) >= 0;
}

bool log_enabled(int priority) {
        return priority <= max_priority;
}

const char *log_last_error(void) {
        return last_error;
}

/* "DEVICE:INODE" in decimal; false when either is missing or out of range
 * (sscanf's %llu would be undefined there). */
static bool parse_journal_stream(const char *e, unsigned long long *ret_dev, unsigned long long *ret_ino) {
        char *end;

        errno = 0;
        *ret_dev = strtoull(e, &end, 10);
        if (errno != 0 || end == e || *end != ':')
                return false;
        e = end + 1;
        *ret_ino = strtoull(e, &end, 10);
        return errno == 0 && end != e;
}

void log_open(void) {
        const char *e = getenv("JOURNAL_STREAM");
        struct stat st;
        unsigned long long dev, ino;

        to_journal = e && parse_journal_stream(e, &dev, &ino) && fstat(STDERR_FILENO, &st) == 0 &&
                     st.st_dev == dev && st.st_ino == ino;
        /* sd_journal_send() reports success when journald is absent. */
        journal_native = to_journal && access("/run/systemd/journal/socket", F_OK) == 0;
}

void log_set_max_priority(int p) {
        max_priority = p;
}

void log_full(int priority, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_fullv(priority, fmt, ap);
        va_end(ap);
}

void log_fullv(int priority, const char *fmt, va_list ap) {
        if (priority > max_priority)
                return;

        char line[2048];
        int n;
        if (to_journal)
                n = snprintf(line, sizeof(line), "<%d>", priority);
        else
                n = snprintf(line, sizeof(line), "%s",
                             priority <= LOG_ERR       ? "error: "
                             : priority == LOG_WARNING ? "warning: "
                                                       : "");
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        size_t len = (size_t)n + (size_t)MAX(m, 0);
        len = MIN(len, sizeof(line) - 2);
        if (priority <= LOG_ERR)
                (void)snprintf(last_error, sizeof(last_error), "%.*s", (int)(len - (size_t)n), line + n);
        if (journal_native && client_peer) {
                line[len] = '\0';
                if (log_to_journal_with_fields(priority, line + n))
                        return;
        }
        line[len++] = '\n';

        int saved = errno;
        /* Nowhere left to report a failed log write. */
        (void)!write(STDERR_FILENO, line, len);
        errno = saved;
}
