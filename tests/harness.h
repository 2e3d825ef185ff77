/* Test harness for the integration tests: starts the real daemon (and ebcat)
 * built by meson, on 127.0.0.1 with a temporary config, and talks to it over
 * sockets. Every wait is bounded; every process started is stopped by PID. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Running the daemon under a tool (valgrind): EB_DAEMON_WRAPPER holds words
 * (split at blanks, no quoting) put before the daemon's path in every argv
 * the harness starts, systemd-socket-activate's included. In them "@DIR@"
 * becomes the Daemon's directory and "@LOG@" a fresh file in it for the
 * tool's report (created by the harness, owned by the daemon's user). With
 * a wrapper, daemon_stop() stops the daemon with SIGTERM instead of SIGKILL
 * (memcheck reports leaks only at exit) and fails the test when a valgrind
 * report in @LOG@ counts errors or is missing its summary. Valgrind cannot
 * raise RLIMIT_NOFILE for the program, so the harness starts a wrapped
 * daemon with its soft limit at the hard limit, as the daemon would set it. */
bool harness_wrapped(void);
/* EB_TEST_SLOW=N (default 1) multiplies every wait of the harness whose
 * expiry is a failure (a daemon that must start, a line that must arrive),
 * for daemons N times slower under a wrapper. Waits whose expiry is the
 * expected outcome ("nothing arrives in 200 ms") are multiplied too, which
 * only makes them stricter. Timing bounds a test asserts itself (exits
 * within shutdown_timeout) must use harness_ms() explicitly, if at all. */
int harness_slow(void);
int harness_ms(int ms);
/* False when the daemon's RSS tells nothing of what it allocated: under
 * EB_DAEMON_WRAPPER (the RSS is valgrind's) or in an AddressSanitizer build
 * (the daemon is built like the tests; its quarantine keeps freed memory by
 * design). Tests skip their RSS bounds then. */
bool harness_rss_meaningful(void);

/* Paths of the built programs; meson passes them as EB_DAEMON and EB_EBCAT. */
const char *harness_daemon_path(void);
const char *harness_ebcat_path(void);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t harness_free_port(void);

/* How the daemon process is started; zero fields change nothing. */
typedef struct DaemonOpts {
        unsigned long nofile; /* soft and hard RLIMIT_NOFILE of the daemon */
        uid_t uid;            /* run as this user and group (needs root), */
        gid_t gid;            /* with no supplementary groups */
} DaemonOpts;

typedef struct Daemon {
        pid_t pid;
        uint16_t port;       /* 127.0.0.1:port, the first listen address */
        char dir[64];        /* private temporary directory */
        char conf_path[128]; /* dir/eb.conf */
        char log_path[128];  /* dir/stderr.log: the daemon's stderr */
        /* Extensions (harness.c owns them). */
        char out_path[128]; /* dir/stdout.log: the daemon's stdout */
        bool reaped;        /* waitpid() collected the exit status */
        int status;         /* daemon_wait()'s value once reaped */
        DaemonOpts opts;    /* applied by every daemon_exec*() */
        unsigned runs;      /* processes started in this Daemon */
        char program[128];  /* dir/epoll-broadcaster once daemon_program() made it */
} Daemon;

/* Writes dir/eb.conf with `listen = ["127.0.0.1:PORT"]; log_level = "info";`
 * followed by extra_settings (libconfig text, may be NULL), starts the daemon
 * with `-c dir/eb.conf` and waits (≤ 5 s) until the port accepts (seen in
 * /proc/net/tcp as listening: no probe connection is made). */
void daemon_start(Daemon *d, const char *extra_settings);
/* Same, but with the config text given whole (the test owns 'listen'); does
 * not wait for a port. Used for config-error and exit-code tests.
 * In conf_text (and in every text below) "@PORT@" is replaced by d->port and
 * "@DIR@" by d->dir. A NULL conf_text writes no file and passes no -c: the
 * daemon gets extra_argv only (NULL-terminated, may be NULL). */
void daemon_spawn_raw(Daemon *d, const char *conf_text, char *const extra_argv[]);
/* Rewrites dir/eb.conf (for SIGHUP tests), atomically (write + rename). */
void daemon_write_conf(Daemon *d, const char *conf_text);
void daemon_signal(Daemon *d, int sig);
/* Waits ≤ timeout_ms for exit; returns the exit status (0..255), 128+signal
 * when killed, or -1 on timeout. */
int daemon_wait(Daemon *d, int timeout_ms);
/* SIGKILL if still running (SIGTERM under EB_DAEMON_WRAPPER), reap, remove
 * the directory. Safe to call twice. Fails the test if the daemon's stderr
 * holds a sanitizer report or a wrapper's report counts errors.
 * EB_TEST_KEEP=1 in the environment keeps the directories for a look. */
void daemon_stop(Daemon *d);
/* True when the daemon's stderr contains needle (waits ≤ timeout_ms). */
bool daemon_log_contains(Daemon *d, const char *needle, int timeout_ms);
/* Resident set size of the daemon in KiB (from /proc). */
long daemon_rss_kib(Daemon *d);

/* --- Extensions ----------------------------------------------------------- */

/* Stops every daemon this process started and removes its directory; safe to
 * call any time. Use as criterion .fini; it is also run at exit. Daemons are
 * started with PR_SET_PDEATHSIG = SIGKILL, so a crashed test kills them too. */
void harness_cleanup(void);
/* Creates the private directory, the file paths and a free port, starts
 * nothing (for tests that put files in dir before the daemon starts). */
void daemon_init(Daemon *d);
/* For daemons with more listeners than d->port: daemon_init(), n free
 * ports in ports[] (none equal to d->port), the configuration build()
 * returns (malloc'd; it may put files in d->dir first) started with
 * daemon_exec(), then waits until d->port and ports[0, n_listening) listen.
 * A port someone took between the check and the bind is retried with new
 * ones, as daemon_start() does. */
void daemon_exec_ports(Daemon *d, uint16_t *ports, size_t n, size_t n_listening,
                       char *(*build)(Daemon *d, const uint16_t *ports, const void *arg), const void *arg);
/* Starts the daemon in an initialised Daemon (see daemon_spawn_raw for the
 * meaning of the arguments); may be used again once the previous one exited. */
void daemon_exec(Daemon *d, const char *conf_text, char *const extra_argv[]);
/* The general form: starts argv[0] (a path; argv NULL-terminated) in an
 * initialised Daemon that runs nothing: stdin /dev/null, stdout/stderr
 * appended to d->out_path/d->log_path, a clean signal state, the environment
 * of this process minus the systemd variables (JOURNAL_STREAM, NOTIFY_SOCKET,
 * LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES, WATCHDOG_USEC, WATCHDOG_PID) plus
 * extra_env (≤ 16 "NAME=VALUE", NULL-terminated, may be NULL; "@SELF@" in one
 * becomes the child's PID, for LISTEN_PID and WATCHDOG_PID), and fds[0..n_fds)
 * (≤ 8) placed at 3, 4, … without FD_CLOEXEC. */
void daemon_exec_argv(Daemon *d, char *const argv[], const char *const extra_env[], const int *fds,
                      size_t n_fds);
/* Rewrites dir/eb.conf the way daemon_start writes it (same listen line). */
void daemon_write_settings(Daemon *d, const char *extra_settings);
/* True while the process runs (reaps it otherwise). */
bool daemon_running(Daemon *d);
/* Waits ≤ timeout_ms until a TCP socket listens on port (any local address of
 * that port, IPv4 or IPv6) or the Unix socket path listens, without
 * connecting (a probe connection would be a client). Fails the test if the
 * daemon exits meanwhile, or on timeout. */
void daemon_wait_tcp_listening(Daemon *d, uint16_t port, int timeout_ms);
void daemon_wait_unix_listening(Daemon *d, const char *path, int timeout_ms);
/* True when a Unix socket at path is in listening state (from /proc/net/unix). */
bool harness_unix_listening(const char *path);
/* True when one line of the daemon's stderr contains every needle of the
 * NULL-terminated list (waits ≤ timeout_ms). */
bool daemon_log_line_has(Daemon *d, const char *const needles[], int timeout_ms);
/* Number of lines of the daemon's stderr that contain needle. */
int daemon_log_count(Daemon *d, const char *needle);
/* The daemon's stderr / stdout as a NUL-terminated string (free() it). */
char *daemon_log_text(Daemon *d);
char *daemon_out_text(Daemon *d);
/* True when the daemon's stdout contains needle (no waiting). */
bool daemon_out_contains(Daemon *d, const char *needle);
/* True when an IPv6 socket can be bound on ::1. */
bool harness_have_ipv6(void);

/* The daemon binary a daemon_exec*() of d starts: harness_daemon_path(), or,
 * when d->opts.uid names another user, a copy of it (mode 0755) in d->dir,
 * made on first use: that user may not reach the build tree (a clone in a
 * private home, mode 0700), but can reach d->dir (mode 0711 for it). Every
 * argv that names harness_daemon_path() runs the copy then, under
 * EB_DAEMON_WRAPPER too. */
const char *daemon_program(Daemon *d);
/* True when d->opts's user and group can run daemon_program(d): it is
 * executed with --version as they would run it and must exit 0. False
 * otherwise (a /tmp mounted noexec, say), with the reason in why. */
bool daemon_program_runs(Daemon *d, char *why, size_t why_size);

/* daemon_start() with opts applied to the daemon process. */
void daemon_start_opts(Daemon *d, const char *extra_settings, const DaemonOpts *opts);
/* Writes len bytes (NUL bytes allowed) as dir/eb.conf, atomically. */
void daemon_write_conf_bytes(Daemon *d, const void *buf, size_t len);
/* Open file descriptors of the daemon (from /proc/PID/fd). */
int daemon_fd_count(Daemon *d);
/* Waits ≤ timeout_ms until the daemon's RSS is at most max_kib (freed memory
 * may go back to the kernel a round later); returns the last RSS seen, so
 * the caller fails with the figure. */
long daemon_wait_rss_at_most(Daemon *d, long max_kib, int timeout_ms);
/* The daemon still relays: two fresh clients connect, sync, and each gets
 * the line the other sends. Needs a config without prefix and no other
 * client sending meanwhile. */
void daemon_check_relays(Daemon *d);
/* True when a TCP port can be bound on every address right now. */
bool harness_port_free(uint16_t port);
/* Raises this process's soft RLIMIT_NOFILE to its hard limit; returns it. */
unsigned long harness_raise_nofile(void);

/* A connected client socket (blocking, with SO_RCVTIMEO of 5 s). */
int client_connect(uint16_t port);
/* Same over IPv6 ([::1]:port) and over a Unix socket. */
int client_connect6(uint16_t port);
int client_connect_unix(const char *path);
/* IPv4 client whose SO_RCVBUF is set to rcvbuf before connecting (a reader
 * that the kernel cannot buffer much for). */
int client_connect_rcvbuf(uint16_t port, int rcvbuf);
/* IPv4 connect that may fail: returns the fd or -1 (errno set). */
int client_try_connect(uint16_t port);
/* The local port of a TCP client socket. */
uint16_t client_local_port(int fd);
/* Connects n IPv4 clients (client_connect) into fds[0..n); closes them. */
void clients_connect(uint16_t port, int *fds, size_t n);
void clients_close(const int *fds, size_t n);
/* Sends all of buf. */
void client_send(int fd, const void *buf, size_t len);
void client_send_str(int fd, const char *s);
/* Sends all of buf within timeout_ms; false if the peer reset/closed the
 * connection or the time ran out (for clients the daemon may cut off). */
bool client_try_send(int fd, const void *buf, size_t len, int timeout_ms);
/* Reads exactly len bytes within timeout_ms; fails the test otherwise. */
void client_recv_exact(int fd, void *buf, size_t len, int timeout_ms);
/* Reads one line (LF included) into buf within timeout_ms; returns its length. */
size_t client_recv_line(int fd, char *buf, size_t size, int timeout_ms);
/* Like client_recv_line, but returns 0 when no whole line arrived in time
 * (nothing consumed if nothing had arrived) and -1 at EOF/reset; still
 * fails the test on a line longer than size-1 or a line cut short. The line
 * is NUL-terminated. */
ssize_t client_try_recv_line(int fd, char *buf, size_t size, int timeout_ms);
/* Reads one line within 5 s; fails the test unless it is exactly want. */
void client_expect_line(int fd, const char *want);
/* True when nothing at all arrives within wait_ms. */
bool client_recv_nothing(int fd, int wait_ms);
/* Fails the test, saying what came (bytes, a close, an error), unless
 * nothing arrives on fd within wait_ms. */
void client_expect_nothing(int fd, int wait_ms);
/* The next bytes every client of fds[0..n) receives are exactly want,
 * within timeout_ms in all; nothing past them is read. Reads without
 * blocking, many clients at once (epoll), so it scales to thousands. */
void clients_expect_line(const int *fds, size_t n, const char *want, int timeout_ms);
/* True when the peer closes (read returns 0 or ECONNRESET) within timeout_ms,
 * discarding whatever arrives before. */
bool client_wait_closed(int fd, int timeout_ms);

/* Makes sure the daemon has accepted every client of fds (so that all of them
 * receive what is sent next): fds[n-1] sends sync lines until every other
 * client got one, then an end marker that all read up to. Every line read on
 * the way must be a sync line (any prefix), so nothing else may be pending.
 * With echo, fds[n-1] reads its own sync lines too. Works across listeners. */
void clients_sync(const int *fds, size_t n, bool echo);

/* daemon_start(d, extra_settings), then n clients connected to it into
 * fds[0..n) and synced (clients_sync(fds, n, echo)): all accepted. */
void daemon_start_clients(Daemon *d, const char *extra_settings, int *fds, size_t n, bool echo);

/* The three clients of a slow-reader test, connected in this order and
 * synced: slow (SO_RCVBUF 4096; it reads only when the test makes it),
 * healthy (a reader that keeps up) and sender. */
typedef struct SlowTrio {
        int slow, healthy, sender;
} SlowTrio;
void clients_connect_slow_trio(uint16_t port, SlowTrio *t);
void slow_trio_close(const SlowTrio *t);

/* Sequence-numbered test messages: exactly len bytes (LF included, len ≥ 16),
 * "#<8 digits> " then filler that depends on the number, then LF. */
void seq_msg_format(char *buf, size_t len, uint32_t seq);
/* The number of a well-formed message of exactly len bytes, or -1. */
long seq_msg_parse(const char *line, size_t linelen, size_t len);

/* Reads and checks a stream of seq messages from a client, non-blocking. */
typedef struct SeqReader {
        int fd;
        size_t msg_len;
        bool strict; /* every number, no gap, or fail */
        char *buf;   /* partial line */
        size_t buf_len;
        uint64_t received; /* whole, valid messages */
        long last_seq;     /* -1 before the first */
        uint64_t gaps;     /* numbers skipped (not strict) */
        uint64_t bytes;    /* raw bytes read */
        bool eof;
        char error[256]; /* first violation; "" when none */
        /* Set by seq_reader_init_foreign; zero otherwise. */
        size_t max_line; /* longest foreign line accepted */
        bool (*foreign)(void *arg, const char *line, size_t len);
        void *foreign_arg;
        uint64_t n_foreign; /* foreign lines accepted */
} SeqReader;
void seq_reader_init(SeqReader *r, int fd, size_t msg_len, bool strict);
/* Reads what is there (at most max_bytes; 0 = no limit); returns bytes read,
 * 0 when nothing was ready, -1 at EOF or reset. */
ssize_t seq_reader_poll(SeqReader *r, size_t max_bytes);
/* A reader of a stream where seq messages are mixed with other lines (up to
 * max_line bytes, LF included): a line that is not a well-formed seq message
 * goes to foreign(arg, line, len) (NUL-terminated too), which returns false
 * for a line that must not be there (a violation, as for seq messages). */
void seq_reader_init_foreign(SeqReader *r, int fd, size_t msg_len, bool strict, size_t max_line,
                             bool (*foreign)(void *arg, const char *line, size_t len), void *arg);
void seq_reader_free(SeqReader *r);
/* Fails the test unless r saw no violation and exactly count messages
 * (who names the reader in the message). */
void seq_reader_expect_all(const SeqReader *r, uint64_t count, const char *who);

/* Sends count seq messages (numbers 0..count-1, each msg_len bytes) from
 * sender without blocking, while draining every reader of readers[]; returns
 * once everything is sent and each reader has count messages or failed, or
 * after timeout_ms (the test then fails). When d is not NULL the daemon's RSS
 * is sampled on the way; the maximum (KiB) goes to *max_rss_kib. */
void pump_seq(int sender, SeqReader *const readers[], size_t n_readers, uint32_t count, size_t msg_len,
              Daemon *d, long *max_rss_kib, int timeout_ms);
/* pump_seq that also calls tick(arg) once per round (rounds are at most
 * 50 ms apart, much less while messages flow), for a test that acts while
 * messages flow (signals, config rewrites, a concurrent attacker); it calls
 * tick until tick returns false (its work done), and does not return
 * before. timeout_ms covers the tick's work too. */
void pump_seq_tick(int sender, SeqReader *const readers[], size_t n_readers, uint32_t count, size_t msg_len,
                   Daemon *d, long *max_rss_kib, int timeout_ms, bool (*tick)(void *arg), void *arg);

/* Statistics (the SIGUSR1 line): one figure ("clients", "accepted"...) of
 * the last line logged; of a fresh one; or asked for until it is 'want'
 * (returns the last value seen). */
long long daemon_stat_logged(Daemon *d, const char *name);
long long daemon_stat(Daemon *d, const char *name);
long long daemon_wait_stat(Daemon *d, const char *name, long long want, int timeout_ms);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t harness_now_ms(void);
void harness_sleep_ms(int ms);
/* Bytes the kernel may buffer on a loopback TCP path (the sender's maximum
 * send buffer plus the receiver's maximum receive buffer); tests that must
 * overflow a daemon-side queue send more than this. */
size_t harness_kernel_buffering(void);
