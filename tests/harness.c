/* Integration-test harness: the daemon as a child process in a private
 * temporary directory, and blocking-with-deadline client sockets.
 *
 * Invariants: every wait has a deadline; every daemon started is recorded in
 * a registry so harness_cleanup() (criterion .fini, and atexit) kills it by
 * PID and removes its directory even when the test failed; the daemon also
 * gets PR_SET_PDEATHSIG so a crashed test worker takes it along. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Time, small utilities                                                     */

int64_t harness_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int harness_slow(void) {
        static int slow;
        if (slow == 0) {
                const char *e = getenv("EB_TEST_SLOW");
                long v = e && *e ? strtol(e, NULL, 10) : 1;
                slow = v >= 1 && v <= 1000 ? (int)v : 1;
        }
        return slow;
}

int harness_ms(int ms) {
        int64_t v = (int64_t)ms * harness_slow();
        return v > INT32_MAX ? INT32_MAX : (int)v;
}

static const char *wrapper_text(void) {
        const char *w = getenv("EB_DAEMON_WRAPPER");
        return w && w[strspn(w, " \t")] ? w : NULL;
}

bool harness_wrapped(void) {
        return wrapper_text() != NULL;
}

#if defined(__SANITIZE_ADDRESS__)
#define HARNESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARNESS_ASAN 1
#endif
#endif

bool harness_rss_meaningful(void) {
#ifdef HARNESS_ASAN
        return false;
#else
        return !harness_wrapped();
#endif
}

static int remaining_ms(int64_t deadline) {
        int64_t r = deadline - harness_now_ms();
        return r < 0 ? 0 : (int)r;
}

static char *read_file_all(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "rb");
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap);
        cr_assert(buf, "out of memory");
        if (f) {
                size_t n;
                while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
                        len += n;
                        if (cap - len < 2) {
                                cap *= 2;
                                buf = realloc(buf, cap);
                                cr_assert(buf, "out of memory");
                        }
                }
                fclose(f);
        }
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return buf;
}

static void write_file_all(const char *path, const char *text) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        cr_assert(f, "cannot write %s: %s", tmp, strerror(errno));
        cr_assert(fputs(text, f) >= 0);
        cr_assert(fclose(f) == 0);
        cr_assert(rename(tmp, path) == 0, "rename %s: %s", tmp, strerror(errno));
}

static void init_once(void);

/* write() all of buf to a file; false on an error (errno set). */
static bool send_all_fd(int fd, const void *buf, size_t *len) {
        const char *p = buf;
        while (*len > 0) {
                ssize_t n = write(fd, p, *len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return false;
                p += n;
                *len -= (size_t)n;
        }
        return true;
}

const char *harness_daemon_path(void) {
        const char *p = getenv("EB_DAEMON");
        if (!p || !*p)
                p = "build/epoll-broadcaster";
        cr_assert(access(p, X_OK) == 0, "daemon binary %s not executable (set EB_DAEMON)", p);
        return p;
}

const char *harness_ebcat_path(void) {
        const char *p = getenv("EB_EBCAT");
        if (!p || !*p)
                p = "build/ebcat";
        cr_assert(access(p, X_OK) == 0, "ebcat binary %s not executable (set EB_EBCAT)", p);
        return p;
}

/* ------------------------------------------------------------------------ */
/* Ports                                                                     */

static void read_ints(const char *path, long *v, int n) {
        for (int i = 0; i < n; i++)
                v[i] = 0;
        FILE *f = fopen(path, "r");
        if (!f)
                return;
        for (int i = 0; i < n; i++)
                if (fscanf(f, "%ld", &v[i]) != 1)
                        break;
        fclose(f);
}

static bool port_bindable(uint16_t port) {
        /* The dual-stack wildcard conflicts with any bind of the port on any
         * address, v4 or v6, and (without SO_REUSEADDR) with TIME_WAIT. */
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                int off = 0;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
                struct sockaddr_in6 a = {
                        .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
                bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
                close(fd);
                return ok;
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        struct sockaddr_in a = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
        bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        return ok;
}

bool harness_port_free(uint16_t port) {
        return port_bindable(port);
}

unsigned long harness_raise_nofile(void) {
        struct rlimit rl;
        cr_assert(getrlimit(RLIMIT_NOFILE, &rl) == 0);
        if (rl.rlim_cur != rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                cr_assert(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s", strerror(errno));
        }
        return rl.rlim_cur == RLIM_INFINITY ? (unsigned long)-1 : (unsigned long)rl.rlim_cur;
}

uint16_t harness_free_port(void) {
        init_once();
        /* Outside the ephemeral range, so that no client socket of this or
         * another test can be holding it; random, so that parallel test
         * workers rarely pick the same one. */
        long range[2];
        read_ints("/proc/sys/net/ipv4/ip_local_port_range", range, 2);
        if (range[0] <= 0)
                range[0] = 32768, range[1] = 60999;
        for (int tries = 0; tries < 1000; tries++) {
                unsigned lo = 10000, hi = (unsigned)range[0] - 1;
                if (hi <= lo + 1000)
                        lo = (unsigned)range[1] + 1, hi = 65535;
                uint16_t port = (uint16_t)(lo + (unsigned)random() % (hi - lo));
                if (port_bindable(port))
                        return port;
        }
        cr_assert_fail("no free port found");
        return 0;
}

size_t harness_kernel_buffering(void) {
        long w[3];
        read_ints("/proc/sys/net/ipv4/tcp_wmem", w, 3);
        if (w[2] <= 0)
                w[2] = 4 * 1024 * 1024;
        long wmax;
        read_ints("/proc/sys/net/core/wmem_max", &wmax, 1);
        /* A daemon may set SO_SNDBUF itself (up to wmem_max, doubled). */
        long s = w[2] > 2 * wmax ? w[2] : 2 * wmax;
        return (size_t)s + 512 * 1024;
}

bool harness_have_ipv6(void) {
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        return ok;
}

/* ------------------------------------------------------------------------ */
/* Registry of started daemons                                               */

#define REGISTRY_MAX 32
static struct {
        pid_t pid;
        char dir[64];
} registry[REGISTRY_MAX];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st;
        (void)flag;
        (void)ftw;
        remove(path);
        return 0;
}

static void remove_tree(const char *dir) {
        /* EB_TEST_KEEP=1 keeps the directories (config and logs) for a look. */
        const char *keep = getenv("EB_TEST_KEEP");
        if (keep && *keep && strcmp(keep, "0") != 0) {
                fprintf(stderr, "harness: keeping %s\n", dir);
                return;
        }
        if (dir[0] && strncmp(dir, "/tmp/", 5) == 0)
                nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void harness_cleanup(void) {
        for (int i = 0; i < REGISTRY_MAX; i++) {
                if (registry[i].pid > 0) {
                        kill(registry[i].pid, SIGKILL);
                        waitpid(registry[i].pid, NULL, 0);
                        registry[i].pid = 0;
                }
                if (registry[i].dir[0]) {
                        remove_tree(registry[i].dir);
                        registry[i].dir[0] = '\0';
                }
        }
}

static void init_once(void) {
        static bool done;
        if (done)
                return;
        done = true;
        srandom((unsigned)getpid() ^ (unsigned)harness_now_ms() ^ (unsigned)time(NULL));
        signal(SIGPIPE, SIG_IGN);
        atexit(harness_cleanup);
}

static int registry_find_dir(const char *dir) {
        for (int i = 0; i < REGISTRY_MAX; i++)
                if (registry[i].dir[0] && strcmp(registry[i].dir, dir) == 0)
                        return i;
        return -1;
}

static void registry_set_pid(const char *dir, pid_t pid) {
        int i = registry_find_dir(dir);
        cr_assert(i >= 0);
        registry[i].pid = pid;
}

/* ------------------------------------------------------------------------ */
/* Daemon                                                                    */

void daemon_init(Daemon *d) {
        init_once();
        memset(d, 0, sizeof *d);
        d->reaped = true; /* nothing to reap yet */
        d->status = -1;
        snprintf(d->dir, sizeof d->dir, "/tmp/eb-test-XXXXXX");
        cr_assert(mkdtemp(d->dir), "mkdtemp: %s", strerror(errno));
        snprintf(d->conf_path, sizeof d->conf_path, "%s/eb.conf", d->dir);
        snprintf(d->log_path, sizeof d->log_path, "%s/stderr.log", d->dir);
        snprintf(d->out_path, sizeof d->out_path, "%s/stdout.log", d->dir);
        d->port = harness_free_port();
        int i;
        for (i = 0; i < REGISTRY_MAX; i++)
                if (registry[i].pid == 0 && registry[i].dir[0] == '\0')
                        break;
        cr_assert(i < REGISTRY_MAX, "too many daemons in one test");
        snprintf(registry[i].dir, sizeof registry[i].dir, "%s", d->dir);
}

/* Replaces @PORT@ and @DIR@. */
static char *expand(const Daemon *d, const char *text) {
        size_t cap = strlen(text) * 2 + 256, len = 0;
        char *out = malloc(cap);
        cr_assert(out);
        char port[16];
        snprintf(port, sizeof port, "%u", d->port);
        for (const char *p = text; *p;) {
                const char *rep = NULL;
                size_t skip = 0;
                if (strncmp(p, "@PORT@", 6) == 0)
                        rep = port, skip = 6;
                else if (strncmp(p, "@DIR@", 5) == 0)
                        rep = d->dir, skip = 5;
                size_t add = rep ? strlen(rep) : 1;
                if (len + add + 1 > cap) {
                        cap = (len + add + 1) * 2;
                        out = realloc(out, cap);
                        cr_assert(out);
                }
                if (rep) {
                        memcpy(out + len, rep, add);
                        p += skip;
                } else {
                        out[len] = *p++;
                }
                len += add;
        }
        out[len] = '\0';
        return out;
}

void daemon_write_conf(Daemon *d, const char *conf_text) {
        char *t = expand(d, conf_text);
        write_file_all(d->conf_path, t);
        free(t);
}

static char *standard_conf(const Daemon *d, const char *extra_settings) {
        char *t;
        cr_assert(asprintf(&t, "listen = [\"127.0.0.1:%u\"];\nlog_level = \"info\";\n%s%s", d->port,
                           extra_settings ? extra_settings : "", extra_settings ? "\n" : "") > 0);
        return t;
}

void daemon_write_conf_bytes(Daemon *d, const void *buf, size_t len) {
        char tmp[160];
        snprintf(tmp, sizeof tmp, "%s.tmp", d->conf_path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert(fd >= 0, "cannot write %s: %s", tmp, strerror(errno));
        size_t len_left = len;
        cr_assert(send_all_fd(fd, buf, &len_left), "write %s: %s", tmp, strerror(errno));
        cr_assert(close(fd) == 0);
        cr_assert(rename(tmp, d->conf_path) == 0, "rename %s: %s", tmp, strerror(errno));
}

void daemon_write_settings(Daemon *d, const char *extra_settings) {
        char *t = standard_conf(d, extra_settings);
        daemon_write_conf(d, t);
        free(t);
}

void daemon_exec(Daemon *d, const char *conf_text, char *const extra_argv[]) {
        const char *bin = harness_daemon_path();
        cr_assert(d->dir[0], "daemon_exec without daemon_init");
        cr_assert(d->reaped, "daemon_exec while a daemon runs");
        if (conf_text)
                daemon_write_conf(d, conf_text);

        char *argv[64];
        int argc = 0;
        argv[argc++] = (char *)bin;
        if (conf_text) {
                argv[argc++] = (char *)"-c";
                argv[argc++] = d->conf_path;
        }
        for (int i = 0; extra_argv && extra_argv[i]; i++) {
                cr_assert(argc < 62);
                argv[argc++] = extra_argv[i];
        }
        argv[argc] = NULL;

        daemon_exec_argv(d, argv, NULL, NULL, 0);
}

void daemon_exec_ports(Daemon *d, uint16_t *ports, size_t n, size_t n_listening,
                       char *(*build)(Daemon *d, const uint16_t *ports, const void *arg), const void *arg) {
        for (int attempt = 0;; attempt++) {
                daemon_init(d);
                for (size_t i = 0; i < n; i++)
                        do
                                ports[i] = harness_free_port();
                        while (ports[i] == d->port);
                char *conf = build(d, ports, arg);
                daemon_exec(d, conf, NULL);
                free(conf);
                int64_t deadline = harness_now_ms() + harness_ms(5000);
                while (daemon_running(d) && harness_now_ms() < deadline &&
                       !daemon_log_contains(d, "listening on", 0))
                        harness_sleep_ms(10);
                if (!daemon_running(d) && d->status == 1 && attempt < 3 &&
                    daemon_log_contains(d, "in use", 0)) {
                        daemon_stop(d);
                        continue;
                }
                daemon_wait_tcp_listening(d, d->port, 5000);
                for (size_t i = 0; i < n_listening; i++)
                        daemon_wait_tcp_listening(d, ports[i], 5000);
                return;
        }
}

/* The variables of systemd's protocols: a daemon started here gets only the
 * ones its test passes. */
static bool systemd_variable(const char *e) {
        static const char *const names[] = {
                "JOURNAL_STREAM=", "NOTIFY_SOCKET=", "LISTEN_FDS=",   "LISTEN_PID=",
                "LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID=", NULL};
        for (int i = 0; names[i]; i++)
                if (strncmp(e, names[i], strlen(names[i])) == 0)
                        return true;
        return false;
}

#define EXEC_MAX_EXTRA 16
#define EXEC_MAX_FDS 8
#define EXEC_MAX_ARGS 64

/* The report file of the wrapper's next run in d: a fresh name per run,
 * created here so that a daemon running as another user can write it. */
static char *wrapper_log_path(Daemon *d) {
        char *path;
        cr_assert(asprintf(&path, "%s/wrapper-%u.log", d->dir, d->runs) > 0);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
        if (d->opts.uid || d->opts.gid)
                cr_assert(fchown(fd, d->opts.uid, d->opts.gid) == 0, "chown %s: %s", path, strerror(errno));
        close(fd);
        return path;
}

/* The program a wrapper names without a slash, found in $PATH as execvp()
 * would (which cannot be used after fork: it may allocate). */
static char *find_in_path(const char *name) {
        if (strchr(name, '/'))
                return strdup(name);
        const char *path = getenv("PATH");
        char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
        cr_assert(copy);
        char *found = NULL;
        for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir && !found;
             dir = strtok_r(NULL, ":", &save)) {
                char *p;
                cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
                if (access(p, X_OK) == 0)
                        found = p;
                else
                        free(p);
        }
        free(copy);
        cr_assert(found, "EB_DAEMON_WRAPPER: %s not found in $PATH", name);
        return found;
}

/* Copies the file at from to a new file to, with mode (not masked). */
static void copy_file(const char *from, const char *to, mode_t mode) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        cr_assert(in >= 0, "%s: %s", from, strerror(errno));
        int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert(out >= 0, "%s: %s", to, strerror(errno));
        char buf[65536];
        for (;;) {
                ssize_t n = read(in, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                cr_assert(n >= 0, "read %s: %s", from, strerror(errno));
                if (n == 0)
                        break;
                size_t left = (size_t)n;
                cr_assert(send_all_fd(out, buf, &left), "write %s: %s", to, strerror(errno));
        }
        cr_assert(fchmod(out, mode) == 0, "chmod %s: %s", to, strerror(errno));
        cr_assert(close(out) == 0, "close %s: %s", to, strerror(errno));
        close(in);
}

const char *daemon_program(Daemon *d) {
        const char *bin = harness_daemon_path();
        if (!d->opts.uid)
                return bin;
        cr_assert(d->dir[0], "daemon_program without daemon_init");
        if (!d->program[0]) {
                const char *base = strrchr(bin, '/');
                int n = snprintf(d->program, sizeof d->program, "%s/%s", d->dir, base ? base + 1 : bin);
                cr_assert(n > 0 && (size_t)n < sizeof d->program, "path of the daemon's copy too long");
                /* Reachable, not listable, by the other user. */
                cr_assert(chmod(d->dir, 0711) == 0, "chmod %s: %s", d->dir, strerror(errno));
                copy_file(bin, d->program, 0755);
        }
        return d->program;
}

/* argv with the daemon's path (wherever it is: argv[0], or after
 * systemd-socket-activate's options) replaced by daemon_program(d) and the
 * wrapper's words put before it. The strings live in *store (free it, and
 * the array). */
static char **wrap_argv(Daemon *d, char *const argv[], char **store, char **program) {
        size_t argc = 0;
        while (argv[argc])
                argc++;
        cr_assert(argc < EXEC_MAX_ARGS);
        char **out = calloc(2 * EXEC_MAX_ARGS, sizeof *out);
        cr_assert(out);
        *store = *program = NULL;
        const char *w = wrapper_text();
        size_t at = argc;
        for (size_t i = 0; i < argc; i++)
                if (strcmp(argv[i], harness_daemon_path()) == 0) {
                        at = i;
                        break;
                }
        size_t k = 0;
        for (size_t i = 0; i < at; i++)
                out[k++] = argv[i];
        if (at < argc && w) {
                char *log = wrapper_log_path(d);
                /* "@LOG@" first: expand() knows "@DIR@". */
                char *t = strdup(w), *text = NULL;
                cr_assert(t);
                for (char *p; (p = strstr(t, "@LOG@"));) {
                        char *n;
                        cr_assert(asprintf(&n, "%.*s%s%s", (int)(p - t), t, log, p + 5) > 0);
                        free(t);
                        t = n;
                }
                text = expand(d, t);
                free(t);
                free(log);
                *store = text;
                size_t first = k;
                for (char *save = NULL, *word = strtok_r(text, " \t", &save); word;
                     word = strtok_r(NULL, " \t", &save)) {
                        cr_assert(k < EXEC_MAX_ARGS, "EB_DAEMON_WRAPPER has too many words");
                        out[k++] = word;
                }
                /* A path even where another program execs it. */
                cr_assert(k > first, "EB_DAEMON_WRAPPER has no words");
                *program = find_in_path(out[first]);
                out[first] = *program;
        }
        for (size_t i = at; i < argc; i++)
                out[k++] = argv[i];
        out[k] = NULL;
        if (at < argc)
                out[k - (argc - at)] = (char *)daemon_program(d);
        return out;
}

/* In the child, before exec: the options of d->opts. Only async-signal-safe
 * calls (the test may have threads); 125 is the exit status of a failure. */
static void apply_opts_in_child(const DaemonOpts *o) {
        /* Valgrind fixes the descriptor limits it lets the program have at
         * its own start, from the soft limit, and refuses to raise them: do
         * the daemon's raise to the hard limit (epoll-broadcaster(8)) for it. */
        if (!o->nofile && harness_wrapped()) {
                struct rlimit rl;
                if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                        rl.rlim_cur = rl.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        if (o->nofile) {
                struct rlimit rl = {.rlim_cur = o->nofile, .rlim_max = o->nofile};
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                        dprintf(2, "harness: setrlimit(RLIMIT_NOFILE, %lu): %s\n", o->nofile,
                                strerror(errno));
                        _exit(125);
                }
        }
        if (o->uid || o->gid) {
                if (setgroups(0, NULL) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 ||
                    setresuid(o->uid, o->uid, o->uid) < 0) {
                        dprintf(2, "harness: cannot become %u:%u: %s\n", (unsigned)o->uid, (unsigned)o->gid,
                                strerror(errno));
                        _exit(125);
                }
        }
}

bool daemon_program_runs(Daemon *d, char *why, size_t why_size) {
        const char *prog = daemon_program(d);
        int pipefd[2]; /* the child's exec errno, if exec fails */
        cr_assert(pipe2(pipefd, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        cr_assert(null >= 0);
        char *const argv[] = {(char *)prog, (char *)"--version", NULL};
        fflush(NULL);
        pid_t pid = fork();
        cr_assert(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                close(pipefd[0]);
                dup2(null, 0);
                dup2(null, 1);
                dup2(null, 2);
                apply_opts_in_child(&d->opts);
                execve(prog, argv, environ);
                int e = errno;
                (void)!write(pipefd[1], &e, sizeof e);
                _exit(127);
        }
        close(pipefd[1]);
        close(null);
        int e = 0;
        ssize_t n;
        do
                n = read(pipefd[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        close(pipefd[0]);
        int st;
        pid_t r;
        do
                r = waitpid(pid, &st, 0);
        while (r < 0 && errno == EINTR);
        cr_assert(r == pid, "waitpid: %s", strerror(errno));
        if (n == (ssize_t)sizeof e) {
                snprintf(why, why_size, "user %u, group %u cannot execute %s: %s", (unsigned)d->opts.uid,
                         (unsigned)d->opts.gid, prog, strerror(e));
                return false;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                snprintf(why, why_size, "%s --version as user %u, group %u: %s %d%s", prog,
                         (unsigned)d->opts.uid, (unsigned)d->opts.gid,
                         WIFEXITED(st) ? "exit status" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                         WIFEXITED(st) && WEXITSTATUS(st) == 125 ? " (cannot become that user)" : "");
                return false;
        }
        return true;
}

void daemon_exec_argv(Daemon *d, char *const argv_in[], const char *const extra_env[], const int *fds,
                      size_t n_fds) {
        cr_assert(d->dir[0] && d->reaped, "daemon_exec_argv: Daemon not initialised or still running");
        cr_assert(n_fds <= EXEC_MAX_FDS);
        /* Another user must reach the files in dir (but not list it). */
        if (d->opts.uid)
                cr_assert(chmod(d->dir, 0711) == 0, "chmod %s: %s", d->dir, strerror(errno));
        char *wrapper_store, *wrapper_program;
        char **argv = wrap_argv(d, argv_in, &wrapper_store, &wrapper_program);
        size_t n_env = 0, n_extra = 0;
        while (environ[n_env])
                n_env++;
        while (extra_env && extra_env[n_extra])
                n_extra++;
        char **envp = calloc(n_env + n_extra + 1, sizeof *envp);
        /* "@SELF@" values are filled in by the child, in buffers allocated
         * here (the test may have threads: no malloc after fork). */
        const char *self_tmpl[EXEC_MAX_EXTRA] = {0};
        char *self_buf[EXEC_MAX_EXTRA] = {0};
        size_t self_size[EXEC_MAX_EXTRA] = {0};
        cr_assert(envp && n_extra <= EXEC_MAX_EXTRA);
        size_t k = 0;
        for (size_t i = 0; i < n_env; i++)
                if (!systemd_variable(environ[i]))
                        envp[k++] = environ[i];
        for (size_t i = 0; i < n_extra; i++) {
                if (strstr(extra_env[i], "@SELF@")) {
                        self_tmpl[i] = extra_env[i];
                        self_size[i] = strlen(extra_env[i]) + 24;
                        self_buf[i] = malloc(self_size[i]);
                        cr_assert(self_buf[i]);
                        envp[k++] = self_buf[i];
                } else {
                        envp[k++] = (char *)extra_env[i];
                }
        }
        envp[k] = NULL;

        int err = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int out = open(d->out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert(err >= 0 && out >= 0 && in >= 0);
        pid_t parent = getpid();
        fflush(NULL);
        pid_t pid = fork();
        cr_assert(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                apply_opts_in_child(&d->opts);
                /* After the user change, which clears the death signal. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                for (size_t i = 0; i < n_extra; i++)
                        if (self_tmpl[i]) {
                                const char *at = strstr(self_tmpl[i], "@SELF@");
                                snprintf(self_buf[i], self_size[i], "%.*s%d%s", (int)(at - self_tmpl[i]),
                                         self_tmpl[i], (int)getpid(), at + 6);
                        }
                /* Out of the way first, then into place (dup2 clears
                 * FD_CLOEXEC on the copy). */
                int tmp[EXEC_MAX_FDS];
                for (size_t i = 0; i < n_fds; i++) {
                        tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 64);
                        if (tmp[i] < 0)
                                _exit(126);
                }
                dup2(in, 0);
                dup2(out, 1);
                dup2(err, 2);
                for (size_t i = 0; i < n_fds; i++)
                        if (dup2(tmp[i], 3 + (int)i) < 0)
                                _exit(126);
                /* A clean signal state: criterion or the test may block or
                 * ignore signals, and those survive exec. */
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                for (int s = 1; s < NSIG; s++)
                        signal(s, SIG_DFL);
                execve(argv[0], argv, envp);
                dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(err);
        close(out);
        close(in);
        for (size_t i = 0; i < n_extra; i++)
                free(self_buf[i]);
        free(envp);
        free(argv);
        free(wrapper_store);
        free(wrapper_program);
        d->pid = pid;
        d->reaped = false;
        d->status = -1;
        d->runs++;
        registry_set_pid(d->dir, pid);
}

void daemon_spawn_raw(Daemon *d, const char *conf_text, char *const extra_argv[]) {
        daemon_init(d);
        daemon_exec(d, conf_text, extra_argv);
}

static int decode_status(int st) {
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        if (WIFSIGNALED(st))
                return 128 + WTERMSIG(st);
        return -1;
}

static bool try_reap(Daemon *d, int flags) {
        if (d->reaped)
                return true;
        int st;
        pid_t r;
        do
                r = waitpid(d->pid, &st, flags);
        while (r < 0 && errno == EINTR);
        if (r == d->pid) {
                d->reaped = true;
                d->status = decode_status(st);
                registry_set_pid(d->dir, 0);
                return true;
        }
        cr_assert(r == 0, "waitpid(%d): %s", (int)d->pid, strerror(errno));
        return false;
}

bool daemon_running(Daemon *d) {
        if (d->pid <= 0)
                return false;
        return !try_reap(d, WNOHANG);
}

int daemon_wait(Daemon *d, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                if (try_reap(d, WNOHANG))
                        return d->status;
                if (harness_now_ms() >= deadline)
                        return -1;
                harness_sleep_ms(5);
        }
}

void daemon_signal(Daemon *d, int sig) {
        cr_assert(d->pid > 0 && !d->reaped, "signal %d to a daemon that is not running", sig);
        cr_assert(kill(d->pid, sig) == 0, "kill(%d, %d): %s", (int)d->pid, sig, strerror(errno));
}

/* Memcheck reports leaks only when the process exits by itself: SIGTERM,
 * and again every 100 ms, since a second one ends the graceful drain at
 * once (and one sent before the first was read merges with it). */
static void stop_gracefully(Daemon *d) {
        int64_t deadline = harness_now_ms() + harness_ms(30000);
        while (!try_reap(d, WNOHANG)) {
                if (harness_now_ms() >= deadline) {
                        kill(d->pid, SIGKILL);
                        try_reap(d, 0);
                        cr_assert_fail("the daemon under EB_DAEMON_WRAPPER did not exit within %d ms "
                                       "of SIGTERM",
                                       harness_ms(30000));
                }
                kill(d->pid, SIGTERM);
                harness_sleep_ms(100);
        }
}

/* A valgrind report of one run that counts errors, or has no summary (the
 * process was killed: nothing was checked). Other tools' files pass. */
static void check_wrapper_report(const char *path) {
        char *t = read_file_all(path, NULL);
        bool valgrind = strstr(t, "Memcheck") || strstr(t, "valgrind");
        const char *sum = strstr(t, "ERROR SUMMARY: ");
        if (valgrind && (!sum || strncmp(sum, "ERROR SUMMARY: 0 errors", 23) != 0)) {
                /* The report without its banner of 6 lines or so. */
                const char *from = strstr(t, "Command:");
                cr_assert_fail("%s: %s:\n%.6000s", path,
                               sum ? "valgrind found errors"
                                   : "no ERROR SUMMARY (the daemon was killed, memory unchecked)",
                               from ? from : t);
        }
        free(t);
}

static void check_wrapper_reports(const Daemon *d) {
        DIR *dir = opendir(d->dir);
        if (!dir)
                return;
        struct dirent *e;
        while ((e = readdir(dir))) {
                if (strncmp(e->d_name, "wrapper-", 8) != 0)
                        continue;
                char path[sizeof d->dir + sizeof e->d_name + 1];
                snprintf(path, sizeof path, "%s/%s", d->dir, e->d_name);
                check_wrapper_report(path);
        }
        closedir(dir);
}

void daemon_stop(Daemon *d) {
        if (d->pid > 0 && !d->reaped) {
                if (harness_wrapped()) {
                        stop_gracefully(d);
                } else {
                        kill(d->pid, SIGKILL);
                        try_reap(d, 0);
                }
        }
        char *log = NULL;
        if (d->dir[0]) {
                /* Before the directory goes (on a failure, harness_cleanup
                 * removes it; EB_TEST_KEEP=1 keeps it for a look). */
                check_wrapper_reports(d);
                log = daemon_log_text(d);
                int i = registry_find_dir(d->dir);
                remove_tree(d->dir);
                if (i >= 0) {
                        registry[i].pid = 0;
                        registry[i].dir[0] = '\0';
                }
                d->dir[0] = '\0';
        }
        /* A sanitizer build of the daemon reports on stderr: make it a test
         * failure rather than a line nobody reads. */
        static const char *const reports[] = {"AddressSanitizer", "LeakSanitizer", "runtime error:", NULL};
        for (int i = 0; log && reports[i]; i++) {
                const char *p = strstr(log, reports[i]);
                if (p) {
                        cr_assert_fail("the daemon reported \"%s\":\n%.4000s", reports[i],
                                       p > log + 200 ? p - 200 : log);
                }
        }
        free(log);
}

char *daemon_log_text(Daemon *d) {
        return read_file_all(d->log_path, NULL);
}
char *daemon_out_text(Daemon *d) {
        return read_file_all(d->out_path, NULL);
}

bool daemon_out_contains(Daemon *d, const char *needle) {
        char *t = daemon_out_text(d);
        bool r = strstr(t, needle) != NULL;
        free(t);
        return r;
}

static bool line_has_all(const char *line, size_t len, const char *const needles[]) {
        for (int i = 0; needles[i]; i++)
                if (!memmem(line, len, needles[i], strlen(needles[i])))
                        return false;
        return true;
}

static bool log_has_line(Daemon *d, const char *const needles[]) {
        size_t len;
        char *t = read_file_all(d->log_path, &len);
        bool found = false;
        for (char *p = t; p < t + len && !found;) {
                char *e = memchr(p, '\n', (size_t)(t + len - p));
                size_t l = e ? (size_t)(e - p) : (size_t)(t + len - p);
                found = line_has_all(p, l, needles);
                p += l + 1;
        }
        free(t);
        return found;
}

bool daemon_log_line_has(Daemon *d, const char *const needles[], int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                if (log_has_line(d, needles))
                        return true;
                if (harness_now_ms() >= deadline)
                        return false;
                harness_sleep_ms(20);
        }
}

bool daemon_log_contains(Daemon *d, const char *needle, int timeout_ms) {
        const char *n[] = {needle, NULL};
        return daemon_log_line_has(d, n, timeout_ms);
}

int daemon_log_count(Daemon *d, const char *needle) {
        size_t len;
        char *t = read_file_all(d->log_path, &len);
        int count = 0;
        const char *n[] = {needle, NULL};
        for (char *p = t; p < t + len;) {
                char *e = memchr(p, '\n', (size_t)(t + len - p));
                size_t l = e ? (size_t)(e - p) : (size_t)(t + len - p);
                if (line_has_all(p, l, n))
                        count++;
                p += l + 1;
        }
        free(t);
        return count;
}

long daemon_rss_kib(Daemon *d) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/status", (int)d->pid);
        FILE *f = fopen(path, "r");
        cr_assert(f, "no %s: daemon gone?", path);
        char line[256];
        long kib = -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
                        break;
        fclose(f);
        cr_assert(kib >= 0, "no VmRSS in %s", path);
        return kib;
}

int daemon_fd_count(Daemon *d) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/fd", (int)d->pid);
        DIR *dir = opendir(path);
        cr_assert(dir, "%s: %s", path, strerror(errno));
        int n = 0;
        struct dirent *e;
        while ((e = readdir(dir)))
                n += e->d_name[0] != '.';
        closedir(dir);
        return n;
}

long daemon_wait_rss_at_most(Daemon *d, long max_kib, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                long rss = daemon_rss_kib(d);
                if (rss <= max_kib || harness_now_ms() >= deadline)
                        return rss;
                harness_sleep_ms(20);
        }
}

/* /proc/net/tcp{,6}: "sl local rem st ...", local as HEX:PORTHEX, 0A = LISTEN. */
static bool tcp_listening(uint16_t port) {
        static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
        bool found = false;
        for (size_t i = 0; i < 2 && !found; i++) {
                FILE *f = fopen(files[i], "r");
                if (!f)
                        continue;
                char line[512];
                while (!found && fgets(line, sizeof line, f)) {
                        char local[128], rem[128];
                        unsigned st;
                        if (sscanf(line, " %*s %127s %127s %x", local, rem, &st) != 3)
                                continue;
                        char *colon = strrchr(local, ':');
                        if (!colon)
                                continue;
                        if (strtoul(colon + 1, NULL, 16) == port && st == 0x0A)
                                found = true;
                }
                fclose(f);
        }
        return found;
}

bool harness_unix_listening(const char *path) {
        FILE *f = fopen("/proc/net/unix", "r");
        if (!f)
                return false;
        char line[512];
        bool found = false;
        /* Num RefCount Protocol Flags Type St Inode Path */
        while (!found && fgets(line, sizeof line, f)) {
                unsigned long flags;
                unsigned type, st;
                char p[256] = "";
                if (sscanf(line, "%*s %*s %*s %lx %x %x %*s %255s", &flags, &type, &st, p) < 3)
                        continue;
                if ((flags & 0x10000) && type == SOCK_STREAM && strcmp(p, path) == 0)
                        found = true;
        }
        fclose(f);
        return found;
}

static void fail_exited(Daemon *d, const char *what) {
        char *log = daemon_log_text(d);
        cr_assert_fail("daemon exited with status %d while waiting for %s; its log:\n%s", d->status, what,
                       log);
        free(log);
}

/* Polls listening(port, path) every 10 ms until it is true; fails the test
 * with the daemon's log if the daemon exits first or timeout_ms passes. */
static void wait_listening(Daemon *d, bool (*listening)(uint16_t port, const char *path), uint16_t port,
                           const char *path, const char *what, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                if (!daemon_running(d))
                        fail_exited(d, what);
                if (listening(port, path))
                        return;
                if (harness_now_ms() >= deadline) {
                        char *log = daemon_log_text(d);
                        cr_assert_fail("timeout waiting for %s; daemon log:\n%s", what, log);
                        free(log);
                }
                harness_sleep_ms(10);
        }
}

static bool tcp_port_listening(uint16_t port, const char *path) {
        (void)path;
        return tcp_listening(port);
}

static bool unix_path_listening(uint16_t port, const char *path) {
        (void)port;
        return harness_unix_listening(path);
}

void daemon_wait_tcp_listening(Daemon *d, uint16_t port, int timeout_ms) {
        char what[64];
        snprintf(what, sizeof what, "TCP port %u to listen", port);
        wait_listening(d, tcp_port_listening, port, NULL, what, timeout_ms);
}

void daemon_wait_unix_listening(Daemon *d, const char *path, int timeout_ms) {
        char what[256];
        snprintf(what, sizeof what, "Unix socket %s to listen", path);
        wait_listening(d, unix_path_listening, 0, path, what, timeout_ms);
}

void daemon_start(Daemon *d, const char *extra_settings) {
        daemon_start_opts(d, extra_settings, NULL);
}

void daemon_start_opts(Daemon *d, const char *extra_settings, const DaemonOpts *opts) {
        for (int attempt = 0;; attempt++) {
                daemon_init(d);
                if (opts)
                        d->opts = *opts;
                char *conf = standard_conf(d, extra_settings);
                daemon_exec(d, conf, NULL);
                free(conf);
                int64_t deadline = harness_now_ms() + harness_ms(5000);
                while (daemon_running(d) && !tcp_listening(d->port) && harness_now_ms() < deadline)
                        harness_sleep_ms(10);
                if (daemon_running(d) && tcp_listening(d->port))
                        return;
                /* Someone took the port between the check and the bind:
                 * try another one. */
                if (!daemon_running(d) && d->status == 1 && attempt < 3 &&
                    daemon_log_contains(d, "in use", 0)) {
                        daemon_stop(d);
                        continue;
                }
                daemon_wait_tcp_listening(d, d->port, 0); /* fails with the log */
        }
}

/* ------------------------------------------------------------------------ */
/* Clients                                                                   */

static void set_timeouts(int fd) {
        struct timeval tv = {.tv_sec = harness_ms(5000) / 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int connect_sa(const struct sockaddr *sa, socklen_t len, int rcvbuf) {
        init_once();
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (rcvbuf > 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        set_timeouts(fd);
        if (connect(fd, sa, len) < 0) {
                int e = errno;
                close(fd);
                errno = e;
                return -1;
        }
        if (sa->sa_family != AF_UNIX) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        return fd;
}

int client_try_connect(uint16_t port) {
        struct sockaddr_in a = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        return connect_sa((struct sockaddr *)&a, sizeof a, 0);
}

int client_connect(uint16_t port) {
        int fd = client_try_connect(port);
        cr_assert(fd >= 0, "connect 127.0.0.1:%u: %s", port, strerror(errno));
        return fd;
}

void clients_connect(uint16_t port, int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                fds[i] = client_connect(port);
}

void clients_close(const int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

int client_connect_rcvbuf(uint16_t port, int rcvbuf) {
        struct sockaddr_in a = {
                .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = connect_sa((struct sockaddr *)&a, sizeof a, rcvbuf);
        cr_assert(fd >= 0, "connect 127.0.0.1:%u: %s", port, strerror(errno));
        return fd;
}

int client_connect6(uint16_t port) {
        struct sockaddr_in6 a = {
                .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        int fd = connect_sa((struct sockaddr *)&a, sizeof a, 0);
        cr_assert(fd >= 0, "connect [::1]:%u: %s", port, strerror(errno));
        return fd;
}

int client_connect_unix(const char *path) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        cr_assert(strlen(path) < sizeof a.sun_path);
        strcpy(a.sun_path, path);
        int fd = connect_sa((struct sockaddr *)&a, sizeof a, 0);
        cr_assert(fd >= 0, "connect %s: %s", path, strerror(errno));
        return fd;
}

uint16_t client_local_port(int fd) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        cr_assert(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
        if (ss.ss_family == AF_INET)
                return ntohs(((struct sockaddr_in *)&ss)->sin_port);
        cr_assert(ss.ss_family == AF_INET6, "not a TCP socket");
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Sends all of buf within timeout_ms, without blocking past it. Returns 0
 * when all was sent, -1 when the time ran out (*len then holds what is left),
 * or the errno of a failed send. */
static int send_within(int fd, const void *buf, size_t *len, int timeout_ms) {
        const char *p = buf;
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        while (*len > 0) {
                ssize_t n = send(fd, p, *len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                        p += n;
                        *len -= (size_t)n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                        int left = remaining_ms(deadline);
                        if (left == 0)
                                return -1;
                        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                        poll(&pfd, 1, left);
                        continue;
                }
                return n < 0 ? errno : EIO; /* EIO: sent 0 bytes */
        }
        return 0;
}

bool client_try_send(int fd, const void *buf, size_t len, int timeout_ms) {
        return send_within(fd, buf, &len, timeout_ms) == 0;
}

void client_send(int fd, const void *buf, size_t len) {
        int e = send_within(fd, buf, &len, 10000);
        cr_assert(e != -1, "send on fd %d blocked for 10 s (%zu bytes left)", fd, len);
        cr_assert(e == 0, "send on fd %d failed: %s", fd, e == EIO ? "0 bytes" : strerror(e));
}

void client_send_str(int fd, const char *s) {
        client_send(fd, s, strlen(s));
}

/* Waits until fd is readable (data, EOF or error); false on timeout. */
static bool wait_readable(int fd, int timeout_ms) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r;
        do
                r = poll(&pfd, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        cr_assert(r >= 0, "poll: %s", strerror(errno));
        return r > 0;
}

void client_recv_exact(int fd, void *buf, size_t len, int timeout_ms) {
        char *p = buf;
        size_t got = 0;
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        while (got < len) {
                if (!wait_readable(fd, remaining_ms(deadline)))
                        cr_assert_fail("fd %d: got %zu of %zu bytes in %d ms", fd, got, len, timeout_ms);
                ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                cr_assert(n > 0, "fd %d: %s after %zu of %zu bytes", fd, n == 0 ? "EOF" : strerror(errno),
                          got, len);
                got += (size_t)n;
        }
}

ssize_t client_try_recv_line(int fd, char *buf, size_t size, int timeout_ms) {
        cr_assert(size >= 2);
        size_t got = 0;
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                if (!wait_readable(fd, remaining_ms(deadline))) {
                        cr_assert(got == 0, "fd %d: line cut short after %zu bytes: %.*s", fd, got, (int)got,
                                  buf);
                        return 0;
                }
                ssize_t n = recv(fd, buf + got, size - 1 - got, MSG_PEEK | MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n <= 0) {
                        cr_assert(got == 0, "fd %d: %s inside a line after %zu bytes: %.*s", fd,
                                  n == 0 ? "EOF" : strerror(errno), got, (int)got, buf);
                        return -1;
                }
                char *lf = memchr(buf + got, '\n', (size_t)n);
                size_t take = lf ? (size_t)(lf - (buf + got)) + 1 : (size_t)n;
                ssize_t r = recv(fd, buf + got, take, MSG_DONTWAIT);
                cr_assert(r == (ssize_t)take, "recv after peek");
                got += take;
                if (lf) {
                        buf[got] = '\0';
                        return (ssize_t)got;
                }
                cr_assert(got < size - 1, "fd %d: line longer than %zu bytes: %.60s...", fd, size - 1, buf);
        }
}

size_t client_recv_line(int fd, char *buf, size_t size, int timeout_ms) {
        ssize_t n = client_try_recv_line(fd, buf, size, timeout_ms);
        cr_assert(n != 0, "fd %d: no line within %d ms", fd, timeout_ms);
        cr_assert(n > 0, "fd %d: closed while waiting for a line", fd);
        return (size_t)n;
}

void client_expect_line(int fd, const char *want) {
        char buf[4096];
        size_t n = client_recv_line(fd, buf, sizeof buf, 5000);
        cr_assert(n == strlen(want) && memcmp(buf, want, n) == 0, "fd %d: expected \"%s\", got \"%.*s\"", fd,
                  want, (int)n, buf);
}

bool client_recv_nothing(int fd, int wait_ms) {
        return !wait_readable(fd, harness_ms(wait_ms));
}

void client_expect_nothing(int fd, int wait_ms) {
        if (client_recv_nothing(fd, wait_ms))
                return;
        char buf[128];
        ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
        cr_assert(n != 0, "fd %d: closed where nothing should have happened", fd);
        cr_assert(n < 0, "fd %d: %zd unexpected bytes: \"%.*s\"", fd, n, (int)n, buf);
        cr_assert(errno == EAGAIN, "fd %d: %s where nothing should have happened", fd, strerror(errno));
}

bool client_wait_closed(int fd, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        char buf[65536];
        for (;;) {
                if (!wait_readable(fd, remaining_ms(deadline)))
                        return false;
                ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0)
                        return true;
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (n < 0)
                        return errno == ECONNRESET || errno == EPIPE;
        }
}

/* ------------------------------------------------------------------------ */
/* Sync barrier                                                              */

static bool ends_with(const char *s, size_t len, const char *suffix) {
        size_t l = strlen(suffix);
        return len >= l && memcmp(s + len - l, suffix, l) == 0;
}

static void expect_sync_line(int fd, const char *line, size_t len, const char *tag) {
        /* "<any prefix>SYNC.<tag>.<k>\n" */
        char needle[64];
        snprintf(needle, sizeof needle, "SYNC.%s.", tag);
        const char *p = memmem(line, len, needle, strlen(needle));
        cr_assert(p && line[len - 1] == '\n',
                  "fd %d: unexpected line during sync (a stale or foreign message?): %.*s", fd, (int)len,
                  line);
}

void clients_sync(const int *fds, size_t n, bool echo) {
        init_once();
        if (n == 0 || (n == 1 && !echo))
                return;
        int sender = fds[n - 1];
        size_t nr = echo ? n : n - 1; /* readers: fds[0..nr) */
        bool *ok = calloc(nr, sizeof *ok);
        struct pollfd *pf = calloc(nr, sizeof *pf);
        size_t *idx = calloc(nr, sizeof *idx);
        cr_assert(ok && pf && idx);
        char tag[32], line[512];
        snprintf(tag, sizeof tag, "%08lx", (unsigned long)random());
        int64_t deadline = harness_now_ms() + harness_ms(10000);
        size_t confirmed = 0;
        for (unsigned k = 0; confirmed < nr; k++) {
                cr_assert(harness_now_ms() < deadline,
                          "sync: %zu of %zu clients never received a message (not accepted?)",
                          nr - confirmed, nr);
                char msg[64];
                snprintf(msg, sizeof msg, "SYNC.%s.%u\n", tag, k);
                client_send_str(sender, msg);
                int64_t round_end = harness_now_ms() + 100 + (k < 10 ? 0 : 200);
                while (confirmed < nr && harness_now_ms() < round_end) {
                        size_t m = 0;
                        for (size_t i = 0; i < nr; i++)
                                if (!ok[i]) {
                                        pf[m] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                                        idx[m++] = i;
                                }
                        int r = poll(pf, m, remaining_ms(round_end));
                        if (r <= 0)
                                continue;
                        for (size_t j = 0; j < m; j++) {
                                if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
                                        continue;
                                size_t i = idx[j];
                                ssize_t l = client_try_recv_line(fds[i], line, sizeof line, 2000);
                                cr_assert(l > 0, "sync: client %zu (fd %d) %s", i, fds[i],
                                          l < 0 ? "was closed" : "got a partial line");
                                expect_sync_line(fds[i], line, (size_t)l, tag);
                                ok[i] = true;
                                confirmed++;
                        }
                }
        }
        char end[64];
        snprintf(end, sizeof end, "SYNC.%s.end\n", tag);
        client_send_str(sender, end);
        for (size_t i = 0; i < nr; i++) {
                for (;;) {
                        size_t l = client_recv_line(fds[i], line, sizeof line, 5000);
                        expect_sync_line(fds[i], line, l, tag);
                        if (ends_with(line, l, end))
                                break;
                }
        }
        free(ok);
        free(pf);
        free(idx);
}

void daemon_check_relays(Daemon *d) {
        cr_assert(daemon_running(d), "the daemon is gone (status %d)", d->status);
        int c[2];
        clients_connect(d->port, c, 2);
        clients_sync(c, 2, false);
        client_send_str(c[0], "fresh client a\n");
        client_expect_line(c[1], "fresh client a\n");
        client_send_str(c[1], "fresh client b\n");
        client_expect_line(c[0], "fresh client b\n");
        clients_close(c, 2);
}

void clients_expect_line(const int *fds, size_t n, const char *want, int timeout_ms) {
        size_t len = strlen(want);
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        size_t *got = calloc(n, sizeof *got); /* bytes of the line so far */
        char *buf = malloc(len + 1);
        cr_assert(ep >= 0 && got && buf);
        for (size_t i = 0; i < n; i++) {
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
                cr_assert(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) == 0, "epoll_ctl: %s", strerror(errno));
        }
        size_t done = 0;
        struct epoll_event evs[256];
        while (done < n) {
                int left = remaining_ms(deadline);
                cr_assert(left > 0, "%zu of %zu clients did not receive \"%.*s\" within %d ms", n - done, n,
                          (int)(len - 1), want, timeout_ms);
                int k = epoll_wait(ep, evs, 256, left);
                cr_assert(k >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
                for (int j = 0; j < k; j++) {
                        size_t i = evs[j].data.u64;
                        /* No further than the line: what follows is the
                         * caller's. */
                        ssize_t r = recv(fds[i], buf, len - got[i], MSG_DONTWAIT);
                        if (r < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        cr_assert(r > 0, "client %zu (fd %d): %s after %zu bytes of the line", i, fds[i],
                                  r == 0 ? "EOF" : strerror(errno), got[i]);
                        cr_assert(memcmp(buf, want + got[i], (size_t)r) == 0,
                                  "client %zu (fd %d) got \"%.*s\" at byte %zu of \"%s\"", i, fds[i], (int)r,
                                  buf, got[i], want);
                        got[i] += (size_t)r;
                        if (got[i] == len) {
                                done++;
                                epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
                        }
                }
        }
        close(ep);
        free(got);
        free(buf);
}

void daemon_start_clients(Daemon *d, const char *extra_settings, int *fds, size_t n, bool echo) {
        daemon_start(d, extra_settings);
        clients_connect(d->port, fds, n);
        clients_sync(fds, n, echo);
}

void clients_connect_slow_trio(uint16_t port, SlowTrio *t) {
        t->slow = client_connect_rcvbuf(port, 4096);
        t->healthy = client_connect(port);
        t->sender = client_connect(port);
        int all[3] = {t->slow, t->healthy, t->sender};
        clients_sync(all, 3, false);
}

void slow_trio_close(const SlowTrio *t) {
        close(t->slow);
        close(t->healthy);
        close(t->sender);
}

/* ------------------------------------------------------------------------ */
/* Sequence-numbered messages                                                */

void seq_msg_format(char *buf, size_t len, uint32_t seq) {
        cr_assert(len >= 16);
        snprintf(buf, 11, "#%08u ", seq);
        buf[10] = ' ';
        for (size_t i = 10; i < len - 1; i++)
                buf[i] = (char)('a' + (seq + i) % 26);
        buf[len - 1] = '\n';
}

long seq_msg_parse(const char *line, size_t linelen, size_t len) {
        if (linelen != len || line[0] != '#' || line[9] != ' ' || line[len - 1] != '\n')
                return -1;
        long seq = 0;
        for (int i = 1; i <= 8; i++) {
                if (line[i] < '0' || line[i] > '9')
                        return -1;
                seq = seq * 10 + (line[i] - '0');
        }
        for (size_t i = 10; i < len - 1; i++)
                if (line[i] != (char)('a' + ((size_t)seq + i) % 26))
                        return -1;
        return seq;
}

void seq_reader_init(SeqReader *r, int fd, size_t msg_len, bool strict) {
        memset(r, 0, sizeof *r);
        r->fd = fd;
        r->msg_len = msg_len;
        r->strict = strict;
        r->last_seq = -1;
        r->buf = malloc(msg_len + 1);
        cr_assert(r->buf);
}

void seq_reader_init_foreign(SeqReader *r, int fd, size_t msg_len, bool strict, size_t max_line,
                             bool (*foreign)(void *arg, const char *line, size_t len), void *arg) {
        seq_reader_init(r, fd, msg_len, strict);
        if (max_line > msg_len) {
                free(r->buf);
                r->buf = malloc(max_line + 1);
                cr_assert(r->buf);
        }
        r->max_line = max_line;
        r->foreign = foreign;
        r->foreign_arg = arg;
}

void seq_reader_expect_all(const SeqReader *r, uint64_t count, const char *who) {
        cr_assert(r->error[0] == '\0', "%s: %s", who, r->error);
        cr_assert(r->received == count, "%s got %llu of %llu messages", who, (unsigned long long)r->received,
                  (unsigned long long)count);
}

void seq_reader_free(SeqReader *r) {
        free(r->buf);
        r->buf = NULL;
}

static void seq_reader_error(SeqReader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seq_reader_error(SeqReader *r, const char *fmt, ...) {
        if (r->error[0])
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
}

static void seq_reader_line(SeqReader *r, const char *line, size_t len) {
        long s = seq_msg_parse(line, len, r->msg_len);
        if (s < 0 && r->foreign) {
                if (r->foreign(r->foreign_arg, line, len))
                        r->n_foreign++;
                else
                        seq_reader_error(r,
                                         "fd %d: unexpected line after %llu messages and %llu others "
                                         "(%zu bytes): %.40s",
                                         r->fd, (unsigned long long)r->received,
                                         (unsigned long long)r->n_foreign, len, line);
                return;
        }
        if (s < 0) {
                seq_reader_error(r, "fd %d: malformed or partial message #%llu (%zu bytes): %.40s", r->fd,
                                 (unsigned long long)r->received, len, line);
                return;
        }
        if (s <= r->last_seq) {
                seq_reader_error(r, "fd %d: message %ld after %ld (order broken or repeated)", r->fd, s,
                                 r->last_seq);
        } else if (s != r->last_seq + 1) {
                if (r->strict)
                        seq_reader_error(r, "fd %d: message %ld after %ld (messages lost)", r->fd, s,
                                         r->last_seq);
                r->gaps += (uint64_t)(s - r->last_seq - 1);
        }
        r->last_seq = s;
        r->received++;
}

ssize_t seq_reader_poll(SeqReader *r, size_t max_bytes) {
        char chunk[65536];
        size_t want = sizeof chunk;
        if (max_bytes && max_bytes < want)
                want = max_bytes;
        ssize_t n = recv(r->fd, chunk, want, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return 0;
        if (n <= 0) {
                if (r->buf_len)
                        seq_reader_error(r, "fd %d: stream ended inside a message (%zu bytes)", r->fd,
                                         r->buf_len);
                r->eof = true;
                return -1;
        }
        r->bytes += (uint64_t)n;
        const char *p = chunk, *end = chunk + n;
        while (p < end) {
                const char *lf = memchr(p, '\n', (size_t)(end - p));
                size_t take = lf ? (size_t)(lf - p) + 1 : (size_t)(end - p);
                size_t limit = r->max_line > r->msg_len ? r->max_line : r->msg_len;
                if (r->buf_len + take > limit) {
                        seq_reader_error(r, "fd %d: line longer than %zu bytes (interleaved?)", r->fd,
                                         limit);
                        /* resynchronise at the next LF */
                        r->buf_len = 0;
                        p += take;
                        continue;
                }
                memcpy(r->buf + r->buf_len, p, take);
                r->buf_len += take;
                p += take;
                if (lf) {
                        r->buf[r->buf_len] = '\0'; /* for a foreign line's sscanf */
                        seq_reader_line(r, r->buf, r->buf_len);
                        r->buf_len = 0;
                }
        }
        return n;
}

void pump_seq(int sender, SeqReader *const readers[], size_t n_readers, uint32_t count, size_t msg_len,
              Daemon *d, long *max_rss_kib, int timeout_ms) {
        pump_seq_tick(sender, readers, n_readers, count, msg_len, d, max_rss_kib, timeout_ms, NULL, NULL);
}

void pump_seq_tick(int sender, SeqReader *const readers[], size_t n_readers, uint32_t count, size_t msg_len,
                   Daemon *d, long *max_rss_kib, int timeout_ms, bool (*tick)(void *arg), void *arg) {
        bool ticking = tick != NULL;
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        /* Batches of messages so that one send() carries many. */
        const uint32_t batch = (uint32_t)(65536 / msg_len) + 1;
        char *out = malloc((size_t)batch * msg_len);
        cr_assert(out);
        size_t out_len = 0, out_off = 0;
        uint32_t next = 0;
        struct pollfd *pf = calloc(n_readers + 1, sizeof *pf);
        cr_assert(pf);
        int64_t last_rss = 0;
        if (max_rss_kib)
                *max_rss_kib = 0;
        for (;;) {
                if (out_off == out_len && next < count) {
                        out_len = out_off = 0;
                        for (uint32_t i = 0; i < batch && next < count; i++, next++) {
                                seq_msg_format(out + out_len, msg_len, next);
                                out_len += msg_len;
                        }
                }
                bool sending = out_off < out_len;
                bool readers_done = true;
                for (size_t i = 0; i < n_readers; i++)
                        if (!readers[i]->eof && !readers[i]->error[0] && readers[i]->received < count)
                                readers_done = false;
                if (ticking)
                        ticking = tick(arg);
                if (!sending && readers_done && !ticking)
                        break;
                if (d && max_rss_kib && harness_now_ms() - last_rss >= 20) {
                        long rss = daemon_rss_kib(d);
                        if (rss > *max_rss_kib)
                                *max_rss_kib = rss;
                        last_rss = harness_now_ms();
                }
                int left = remaining_ms(deadline);
                if (left == 0) {
                        char msg[1024];
                        int off = snprintf(msg, sizeof msg, "pump: timeout; sent %u of %u;%s",
                                           next - (uint32_t)((out_len - out_off) / msg_len), count,
                                           ticking ? " the tick's work not done;" : "");
                        for (size_t i = 0; i < n_readers && off < (int)sizeof msg; i++)
                                off += snprintf(msg + off, sizeof msg - (size_t)off,
                                                " reader %zu got %llu (last %ld);", i,
                                                (unsigned long long)readers[i]->received,
                                                readers[i]->last_seq);
                        free(out);
                        free(pf);
                        cr_assert_fail("%s", msg);
                }
                size_t m = 0;
                for (size_t i = 0; i < n_readers; i++)
                        pf[m++] = (struct pollfd){.fd = readers[i]->eof ? -1 : readers[i]->fd,
                                                  .events = POLLIN};
                pf[m++] = (struct pollfd){.fd = sending ? sender : -1, .events = POLLOUT};
                int r = poll(pf, m, left < 50 ? left : 50);
                if (r < 0 && errno == EINTR)
                        continue;
                cr_assert(r >= 0, "poll: %s", strerror(errno));
                for (size_t i = 0; i < n_readers; i++)
                        if (pf[i].revents)
                                while (seq_reader_poll(readers[i], 0) > 0)
                                        ;
                if (sending && pf[n_readers].revents) {
                        ssize_t n =
                                send(sender, out + out_off, out_len - out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n > 0)
                                out_off += (size_t)n;
                        else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                                free(out);
                                free(pf);
                                cr_assert_fail("pump: the sender's send failed (%s) after %u of %u "
                                               "messages: the daemon cut off the sender",
                                               strerror(errno),
                                               next - (uint32_t)((out_len - out_off) / msg_len), count);
                        }
                }
        }
        free(out);
        free(pf);
}

/* One figure ("clients", "accepted"...) of the last statistics line the
 * daemon logged. */
long long daemon_stat_logged(Daemon *d, const char *name) {
        char *log = daemon_log_text(d);
        const char *last = NULL;
        for (const char *p = log; (p = strstr(p, "stats: ")); p++)
                last = p;
        cr_assert(last, "no statistics line in the log");
        char key[32];
        snprintf(key, sizeof key, " %s=", name);
        const char *k = strstr(last, key), *eol = strchr(last, '\n');
        cr_assert(k && (!eol || k < eol), "no %s in the statistics line", name);
        long long v = strtoll(k + strlen(key), NULL, 10);
        free(log);
        return v;
}

/* The figure from a fresh statistics line (SIGUSR1). */
long long daemon_stat(Daemon *d, const char *name) {
        int before = daemon_log_count(d, "stats: ");
        daemon_signal(d, SIGUSR1);
        int64_t deadline = harness_now_ms() + harness_ms(5000);
        while (daemon_log_count(d, "stats: ") <= before) {
                cr_assert(harness_now_ms() < deadline, "no statistics line within 5 s of SIGUSR1");
                harness_sleep_ms(10);
        }
        return daemon_stat_logged(d, name);
}

/* Asks for statistics until figure name is want (the daemon closes a
 * client when it reads the EOF, a moment after our close); returns the last
 * value seen. */
long long daemon_wait_stat(Daemon *d, const char *name, long long want, int timeout_ms) {
        int64_t deadline = harness_now_ms() + harness_ms(timeout_ms);
        for (;;) {
                long long v = daemon_stat(d, name);
                if (v == want || harness_now_ms() >= deadline)
                        return v;
                harness_sleep_ms(50);
        }
}
