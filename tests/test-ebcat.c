/* Integration tests of ebcat (ebcat(1)) against the real daemon on loopback.
 *
 * ebcat runs as a child with pipes (or files) for stdin/stdout and a pipe for
 * stderr; raw sockets from the harness play the other clients. Every wait is
 * bounded; every process started here is stopped by its PID in the fini. */

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ftw.h>
#include <termios.h>
#include <unistd.h>

#include "build-config.h"
#include "harness.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX_CHILDREN 16
#define STDIO_PIPE (-2)      /* ebcat_spawn: connect this stream to a pipe */
#define LARGE_BYTES 5000000u /* 50,000 lines of 100 bytes */

typedef struct Ebcat {
        pid_t pid;
        int in;           /* write end of ebcat's stdin, or -1 */
        int out;          /* ebcat's stdout (pipe read end, or the file), or -1 */
        bool out_is_file; /* read() returning 0 means "nothing yet" */
        int err;          /* read end of ebcat's stderr */
        char acc[65536];  /* stdout bytes read but not consumed */
        size_t acc_len;
        bool reaped;
        int status;
} Ebcat;

static pid_t children[MAX_CHILDREN];
static Daemon daemon_main;

static void suite_init(void) {
        /* Writes into the stdin pipe of an ebcat that has exited must fail
         * with EPIPE, not kill the test. */
        signal(SIGPIPE, SIG_IGN);
}

static void suite_fini(void) {
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
                if (children[i] <= 0)
                        continue;
                (void)kill(children[i], SIGKILL);
                (void)waitpid(children[i], NULL, 0);
                children[i] = 0;
        }
        harness_cleanup();
}

TestSuite(ebcat, .init = suite_init, .fini = suite_fini, .timeout = 120);

static void child_register(pid_t pid) {
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] <= 0) {
                        children[i] = pid;
                        return;
                }
        cr_assert_fail("too many children");
}

static void child_forget(pid_t pid) {
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

static uint16_t start_daemon(void) {
        daemon_start(&daemon_main, NULL);
        return daemon_main.port;
}

/* For whole-file transfers at full speed: the reader in this process can be
 * descheduled long enough to fall max_queue_bytes behind, and cutting it off
 * would then be right (docs/protocol.md). These tests are about ebcat, so the queue
 * holds the whole transfer. */
static uint16_t start_daemon_for_bulk(void) {
        daemon_start(&daemon_main, "max_queue_bytes = 16777216;");
        return daemon_main.port;
}

static const char *addr_of(uint16_t port) {
        static char buf[32];

        snprintf(buf, sizeof(buf), "127.0.0.1:%u", (unsigned)port);
        return buf;
}

/* Starts ebcat with args (NULL-terminated, after argv[0]). stdin_fd and
 * stdout_fd are STDIO_PIPE, or an fd the child gets as that stream (the
 * caller keeps and closes its copy). stderr is always a pipe. */
static void ebcat_spawn(Ebcat *e, const char *const args[], int stdin_fd, int stdout_fd) {
        const char *argv[16] = {harness_ebcat_path()};
        int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2];
        size_t n = 1;

        for (; args[n - 1]; n++) {
                cr_assert_lt(n, 15);
                argv[n] = args[n - 1];
        }
        argv[n] = NULL;

        memset(e, 0, sizeof(*e));
        e->in = e->out = e->err = -1;
        if (stdin_fd == STDIO_PIPE)
                cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
        if (stdout_fd == STDIO_PIPE)
                cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(err, O_CLOEXEC), 0);

        e->pid = fork();
        cr_assert_geq(e->pid, 0);
        if (e->pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                signal(SIGPIPE, SIG_DFL); /* as a shell would start it */
                if (dup2(stdin_fd == STDIO_PIPE ? in[0] : stdin_fd, STDIN_FILENO) < 0 ||
                    dup2(stdout_fd == STDIO_PIPE ? out[1] : stdout_fd, STDOUT_FILENO) < 0 ||
                    dup2(err[1], STDERR_FILENO) < 0)
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        child_register(e->pid);

        if (stdin_fd == STDIO_PIPE) {
                close(in[0]);
                e->in = in[1];
        }
        if (stdout_fd == STDIO_PIPE) {
                close(out[1]);
                e->out = out[0];
                cr_assert_eq(fcntl(e->out, F_SETFL, O_NONBLOCK), 0);
        }
        close(err[1]);
        e->err = err[0];
}

/* ebcat with stdin "/dev/null" and stdout a pipe. */
static void ebcat_spawn_null(Ebcat *e, const char *const args[]) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        cr_assert_geq(fd, 0);
        ebcat_spawn(e, args, fd, STDIO_PIPE);
        close(fd);
}

static void ebcat_write(Ebcat *e, const char *s) {
        size_t len = strlen(s);

        while (len > 0) {
                ssize_t n = write(e->in, s, len);
                cr_assert_gt(n, 0, "write to ebcat's stdin: %s", strerror(errno));
                s += n;
                len -= (size_t)n;
        }
}

static void ebcat_close_stdin(Ebcat *e) {
        if (e->in >= 0)
                close(e->in);
        e->in = -1;
}

/* Exit status (0..255), 128+signal, or -1 when still running after timeout. */
static int ebcat_wait(Ebcat *e, int timeout_ms) {
        int64_t end = harness_now_ms() + harness_ms(timeout_ms);

        while (!e->reaped) {
                int status;
                pid_t p = waitpid(e->pid, &status, WNOHANG);

                cr_assert_geq(p, 0);
                if (p == e->pid) {
                        e->reaped = true;
                        e->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                        child_forget(e->pid);
                        break;
                }
                if (harness_now_ms() >= end)
                        return -1;
                harness_sleep_ms(5);
        }
        return e->status;
}

/* Everything ebcat wrote to stderr; call once it has exited. */
static char *ebcat_stderr(Ebcat *e) {
        static char buf[4096];
        size_t len = 0;
        int64_t end = harness_now_ms() + harness_ms(5000);

        for (;;) {
                struct pollfd p = {.fd = e->err, .events = POLLIN};
                int left = (int)(end - harness_now_ms());

                cr_assert_gt(left, 0, "stderr of ebcat not closed");
                if (poll(&p, 1, left) <= 0)
                        continue;
                ssize_t n = read(e->err, buf + len, sizeof(buf) - 1 - len);
                cr_assert_geq(n, 0);
                if (n == 0)
                        break;
                len += (size_t)n;
                cr_assert_lt(len, sizeof(buf) - 1, "too much on stderr");
        }
        buf[len] = '\0';
        return buf;
}

static void ebcat_close(Ebcat *e) {
        ebcat_close_stdin(e);
        if (e->out >= 0)
                close(e->out);
        if (e->err >= 0)
                close(e->err);
        e->out = e->err = -1;
}

/* Runs ebcat to its end and checks its status and its stderr, which must be
 * empty (status 0) or exactly one line starting with "ebcat: ". Returns the
 * stderr text. */
static const char *ebcat_expect_exit(Ebcat *e, int status, int timeout_ms) {
        int r = ebcat_wait(e, timeout_ms);
        const char *err;

        cr_assert_neq(r, -1, "ebcat still running after %d ms", timeout_ms);
        err = ebcat_stderr(e);
        cr_assert_eq(r, status, "ebcat exited with %d, expected %d; stderr: %s", r, status, err);
        if (status == 0) {
                cr_assert_str_empty(err, "unexpected stderr: %s", err);
        } else {
                cr_assert(strncmp(err, "ebcat: ", 7) == 0, "stderr: %s", err);
                cr_assert(strchr(err, '\n') == err + strlen(err) - 1, "stderr is not exactly one line: %s",
                          err);
        }
        return err;
}

/* Reads one line of ebcat's stdout (NUL-terminated, LF kept); returns its
 * length, 0 when none came within timeout_ms, -1 at EOF. */
static ssize_t ebcat_read_line(Ebcat *e, char *line, size_t size, int timeout_ms) {
        int64_t end = harness_now_ms() + harness_ms(timeout_ms);

        for (;;) {
                char *lf = memchr(e->acc, '\n', e->acc_len);
                if (lf) {
                        size_t len = (size_t)(lf - e->acc) + 1;
                        cr_assert_lt(len, size, "line too long");
                        memcpy(line, e->acc, len);
                        line[len] = '\0';
                        memmove(e->acc, e->acc + len, e->acc_len - len);
                        e->acc_len -= len;
                        return (ssize_t)len;
                }
                cr_assert_lt(e->acc_len, sizeof(e->acc), "line too long");

                ssize_t n = read(e->out, e->acc + e->acc_len, sizeof(e->acc) - e->acc_len);
                if (n > 0) {
                        e->acc_len += (size_t)n;
                        continue;
                }
                if (n == 0 && !e->out_is_file)
                        return -1;
                cr_assert(n == 0 || errno == EAGAIN, "read: %s", strerror(errno));
                int left = (int)(end - harness_now_ms());
                if (left <= 0)
                        return 0;
                if (e->out_is_file) {
                        harness_sleep_ms(MIN(left, 5));
                } else {
                        struct pollfd p = {.fd = e->out, .events = POLLIN};
                        (void)poll(&p, 1, left);
                }
        }
}

static void ebcat_expect_line(Ebcat *e, const char *expected) {
        char line[4096];
        ssize_t n = ebcat_read_line(e, line, sizeof(line), 5000);

        cr_assert_gt(n, 0, "no line from ebcat (expected %s)", expected);
        cr_assert_str_eq(line, expected);
}

/* Makes sure ebcat's connection has been accepted by the daemon, so that it
 * receives what 'sender' sends next: sender sends sync lines until one comes
 * out of ebcat, then an end marker; ebcat's output up to the marker is sync
 * lines only. */
static void ebcat_sync(Ebcat *e, int sender) {
        char line[4096];
        int64_t end = harness_now_ms() + harness_ms(5000);
        ssize_t n;

        do {
                cr_assert_lt(harness_now_ms(), end, "ebcat never received a sync line");
                client_send_str(sender, "sync\n");
                n = ebcat_read_line(e, line, sizeof(line), 50);
                cr_assert_geq(n, 0, "ebcat's stdout closed");
        } while (n == 0);
        cr_assert_str_eq(line, "sync\n");

        client_send_str(sender, "sync-end\n");
        for (;;) {
                n = ebcat_read_line(e, line, sizeof(line), 5000);
                cr_assert_gt(n, 0, "no sync-end from ebcat");
                if (strcmp(line, "sync-end\n") == 0)
                        break;
                cr_assert_str_eq(line, "sync\n");
        }
}

/* Reads sync lines from a raw client up to and including "sync-end\n". */
static void client_skip_sync(int fd) {
        char line[4096];

        for (;;) {
                client_recv_line(fd, line, sizeof(line), 5000);
                if (strcmp(line, "sync-end\n") == 0)
                        return;
                cr_assert_str_eq(line, "sync\n");
        }
}

/* Runs ebcat with args and input on its stdin (a pipe, closed after the
 * input); the raw client c must then receive each line of lines
 * (NULL-terminated), and ebcat exit 0 with nothing on stderr. The caller
 * closes e. */
static void ebcat_run_input(Ebcat *e, const char *const args[], const char *input, int c,
                            const char *const lines[]) {
        ebcat_spawn(e, args, STDIO_PIPE, STDIO_PIPE);
        ebcat_write(e, input);
        ebcat_close_stdin(e);
        for (size_t i = 0; lines[i]; i++)
                client_expect_line(c, lines[i]);
        ebcat_expect_exit(e, 0, 3000);
}

/* size bytes of numbered lines of 100 bytes. */
static char *make_lines(size_t size) {
        char *buf = malloc(size);

        cr_assert_not_null(buf);
        cr_assert_eq(size % 100, 0);
        for (size_t i = 0; i < size / 100; i++)
                seq_msg_format(buf + i * 100, 100, (uint32_t)i);
        return buf;
}

static int write_temp_file(const void *buf, size_t len) {
        char path[] = "/tmp/test-ebcat-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC);

        cr_assert_geq(fd, 0);
        unlink(path);
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, (const char *)buf + off, len - off);
                cr_assert_gt(n, 0);
                off += (size_t)n;
        }
        cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

/* Reads exactly len bytes of ebcat's stdout within timeout_ms. */
static void ebcat_read_exact(Ebcat *e, char *buf, size_t len, int timeout_ms) {
        int64_t end = harness_now_ms() + harness_ms(timeout_ms);
        size_t got = MIN(e->acc_len, len);

        memcpy(buf, e->acc, got);
        memmove(e->acc, e->acc + got, e->acc_len - got);
        e->acc_len -= got;
        while (got < len) {
                int left = (int)(end - harness_now_ms());
                cr_assert_gt(left, 0, "only %zu of %zu bytes from ebcat in time", got, len);

                ssize_t n = read(e->out, buf + got, len - got);
                if (n > 0) {
                        got += (size_t)n;
                        continue;
                }
                cr_assert(n == 0 || errno == EAGAIN, "read: %s", strerror(errno));
                cr_assert(n < 0 || e->out_is_file, "ebcat's stdout closed after %zu of %zu bytes", got, len);
                if (n == 0 && ebcat_wait(e, 0) >= 0)
                        cr_assert_fail("ebcat exited with %d after %zu of %zu bytes; stderr: %s", e->status,
                                       got, len, ebcat_stderr(e));
                harness_sleep_ms(MIN(left, 5));
        }
}

static void assert_same_bytes(const char *got, const char *expected, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (got[i] != expected[i])
                        cr_assert_fail(
                                "first difference at byte %zu (message %zu): got '%.20s', expected '%.20s'",
                                i, i / 100, got + (i / 100) * 100, expected + (i / 100) * 100);
}

/* Gives ebcat a file as stdout; e->out reads the same file. */
static int open_output_file(char path[static 32]) {
        strcpy(path, "/tmp/test-ebcat-out-XXXXXX");
        int fd = mkostemp(path, O_CLOEXEC);
        cr_assert_geq(fd, 0);
        return fd;
}

static void attach_output_file(Ebcat *e, char *path) {
        e->out = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(e->out, 0);
        e->out_is_file = true;
        unlink(path);
}

/* ------------------------------------------------------------------------ */

Test(ebcat, send_only_from_a_pipe_delivers_each_line) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        char line[16];
        Ebcat e;

        ebcat_run_input(&e, (const char *[]){"-s", addr_of(port), NULL}, "a\nb\n", c,
                        (const char *[]){"a\n", "b\n", NULL});
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1, "ebcat -s wrote to stdout");
        cr_assert(client_recv_nothing(c, 200));
        ebcat_close(&e);
        close(c);
}

Test(ebcat, send_only_sends_a_last_line_without_lf) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        Ebcat e;

        /* The daemon appends the LF to "y". */
        ebcat_run_input(&e, (const char *[]){"--send-only", addr_of(port), NULL}, "x\ny", c,
                        (const char *[]){"x\n", "y\n", NULL});
        ebcat_close(&e);
        close(c);
}

Test(ebcat, send_only_large_input_through_a_pipe_arrives_whole_and_in_order) {
        uint16_t port = start_daemon_for_bulk();
        int c = client_connect(port);
        char *data = make_lines(LARGE_BYTES), *got = malloc(LARGE_BYTES);
        size_t sent = 0, received = 0;
        int64_t end = harness_now_ms() + harness_ms(60000);
        Ebcat e;

        cr_assert_not_null(got);
        ebcat_spawn(&e, (const char *[]){"-s", addr_of(port), NULL}, STDIO_PIPE, STDIO_PIPE);
        cr_assert_eq(fcntl(e.in, F_SETFL, O_NONBLOCK), 0);

        /* Feed the pipe and read the socket at once: a reader that stopped
         * would be cut off by the daemon as a slow reader. */
        while (received < LARGE_BYTES) {
                struct pollfd p[2] = {
                        {.fd = e.in, .events = POLLOUT},
                        {.fd = c, .events = POLLIN},
                };
                ssize_t n;

                cr_assert_lt(harness_now_ms(), end, "sent %zu, received %zu of %u bytes in 60 s", sent,
                             received, LARGE_BYTES);
                (void)poll(p, 2, 100);
                if (p[0].revents) {
                        n = write(e.in, data + sent, LARGE_BYTES - sent);
                        cr_assert(n > 0 || errno == EAGAIN, "write: %s", strerror(errno));
                        if (n > 0)
                                sent += (size_t)n;
                        if (sent == LARGE_BYTES)
                                ebcat_close_stdin(&e);
                }
                if (p[1].revents) {
                        n = recv(c, got + received, LARGE_BYTES - received, MSG_DONTWAIT);
                        cr_assert(n > 0 || (n < 0 && errno == EAGAIN), "recv: %zd %s", n, strerror(errno));
                        if (n > 0)
                                received += (size_t)n;
                }
        }
        assert_same_bytes(got, data, LARGE_BYTES);
        ebcat_expect_exit(&e, 0, 5000);
        cr_assert(client_recv_nothing(c, 200));
        ebcat_close(&e);
        close(c);
        free(data);
        free(got);
}

Test(ebcat, default_mode_large_input_from_a_file_then_ends) {
        uint16_t port = start_daemon_for_bulk();
        int c = client_connect(port);
        char *data = make_lines(LARGE_BYTES), *got = malloc(LARGE_BYTES);
        int in = write_temp_file(data, LARGE_BYTES);
        Ebcat e;

        cr_assert_not_null(got);
        ebcat_spawn(&e, (const char *[]){addr_of(port), NULL}, in, STDIO_PIPE);
        close(in);
        client_recv_exact(c, got, LARGE_BYTES, 60000);
        assert_same_bytes(got, data, LARGE_BYTES);
        ebcat_expect_exit(&e, 0, 5000);
        ebcat_close(&e);
        close(c);
        free(data);
        free(got);
}

Test(ebcat, listen_only_writes_to_a_file_ignores_stdin_and_ends_when_the_daemon_stops) {
        uint16_t port = start_daemon();
        int r = client_connect(port), c = client_connect(port);
        char path[32], line[64];
        int fd = open_output_file(path);
        Ebcat e;

        ebcat_spawn(&e, (const char *[]){"-l", addr_of(port), NULL}, STDIO_PIPE, fd);
        close(fd);
        attach_output_file(&e, path);
        ebcat_write(&e, "must-not-be-sent\n"); /* stdin stays open */

        ebcat_sync(&e, c);
        client_send_str(c, "m1\n");
        client_send_str(c, "m2\n");
        ebcat_expect_line(&e, "m1\n");
        ebcat_expect_line(&e, "m2\n");

        client_skip_sync(r);
        client_expect_line(r, "m1\n");
        client_expect_line(r, "m2\n");
        cr_assert(client_recv_nothing(r, 300), "ebcat --listen-only sent something");

        daemon_signal(&daemon_main, SIGTERM);
        ebcat_expect_exit(&e, 0, 10000);
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 0), 0, "more in the file: %s", line);
        cr_assert_eq(e.acc_len, 0);
        cr_assert_eq(daemon_wait(&daemon_main, 10000), 0);
        ebcat_close(&e);
        close(r);
        close(c);
}

Test(ebcat, listen_only_large_stream_arrives_whole_and_in_order) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        char path[32];
        int fd = open_output_file(path);
        char *data = make_lines(LARGE_BYTES), *got = malloc(LARGE_BYTES);
        Ebcat e;

        cr_assert_not_null(got);
        ebcat_spawn(&e, (const char *[]){"-l", addr_of(port), NULL}, STDIO_PIPE, fd);
        close(fd);
        attach_output_file(&e, path);
        ebcat_sync(&e, c);

        /* Keep at most WINDOW bytes in flight: the test checks what ebcat
         * delivers, not how the daemon treats a reader that a busy machine
         * starved for a moment (test-limits covers that). */
        enum { CHUNK = 100 * 1000, WINDOW = 500 * 1000 };
        size_t received = 0;
        for (size_t sent = 0; sent < LARGE_BYTES;) {
                client_send(c, data + sent, CHUNK);
                sent += CHUNK;
                if (sent - received > WINDOW) {
                        ebcat_read_exact(&e, got + received, sent - received - WINDOW, 10000);
                        received = sent - WINDOW;
                }
        }
        ebcat_read_exact(&e, got + received, LARGE_BYTES - received, 60000);
        assert_same_bytes(got, data, LARGE_BYTES);

        close(c);
        daemon_signal(&daemon_main, SIGTERM);
        ebcat_expect_exit(&e, 0, 10000);
        ebcat_close(&e);
        free(data);
        free(got);
}

Test(ebcat, default_mode_relays_both_ways_and_ends_with_stdin) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        char line[64];
        Ebcat e;

        ebcat_spawn(&e, (const char *[]){addr_of(port), NULL}, STDIO_PIPE, STDIO_PIPE);
        ebcat_sync(&e, c);

        ebcat_write(&e, "from-ebcat\n");
        client_expect_line(c, "from-ebcat\n");
        client_send_str(c, "from-raw\n");
        ebcat_expect_line(&e, "from-raw\n"); /* written while stdin is still open */

        ebcat_write(&e, "last\n");
        ebcat_close_stdin(&e);
        client_expect_line(c, "last\n");
        ebcat_expect_exit(&e, 0, 3000);
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1);
        ebcat_close(&e);
        close(c);
}

Test(ebcat, default_mode_in_a_terminal) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave;
        struct termios t;
        Ebcat e;

        if (master < 0)
                cr_skip_test("no pseudo-terminal: %s", strerror(errno));
        cr_assert_eq(grantpt(master), 0);
        cr_assert_eq(unlockpt(master), 0);
        slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        cr_assert_geq(slave, 0);
        /* Canonical input as typed in a terminal, but no echo and no CR
         * added on output, so that what comes out is ebcat's alone. */
        cr_assert_eq(tcgetattr(slave, &t), 0);
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        t.c_oflag &= ~(tcflag_t)OPOST;
        cr_assert_eq(tcsetattr(slave, TCSANOW, &t), 0);

        ebcat_spawn(&e, (const char *[]){addr_of(port), NULL}, slave, slave);
        close(slave);
        e.out = master;
        e.in = dup(master);
        cr_assert_geq(e.in, 0);
        cr_assert_eq(fcntl(e.out, F_SETFL, O_NONBLOCK), 0);

        ebcat_sync(&e, c);
        ebcat_write(&e, "typed\n");
        client_expect_line(c, "typed\n");
        client_send_str(c, "shown\n");
        ebcat_expect_line(&e, "shown\n");

        ebcat_write(&e, "\x04"); /* ^D at the start of a line: end of input */
        ebcat_expect_exit(&e, 0, 3000);
        ebcat_close(&e);
        close(c);
}

Test(ebcat, default_mode_ends_with_status_0_when_the_daemon_stops) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        Ebcat e;

        ebcat_spawn(&e, (const char *[]){addr_of(port), NULL}, STDIO_PIPE, STDIO_PIPE);
        ebcat_sync(&e, c);
        client_send_str(c, "bye\n");
        ebcat_expect_line(&e, "bye\n");

        daemon_signal(&daemon_main, SIGTERM); /* ebcat's stdin stays open */
        ebcat_expect_exit(&e, 0, 10000);
        ebcat_close(&e);
        close(c);
}

Test(ebcat, send_only_reads_and_discards_what_the_server_sends) {
        uint16_t port = start_daemon();
        int r = client_connect(port), c = client_connect(port);
        /* More than the kernel can buffer on ebcat's path plus the daemon's
         * default max_queue_bytes (1 MiB): an ebcat that did not read would
         * be cut off as a slow reader. */
        size_t total = harness_kernel_buffering() + 4 * 1024 * 1024;
        enum { MSG = 1024, PER_CHUNK = 64 };
        char *chunk = malloc(MSG * PER_CHUNK), *got = malloc(MSG * PER_CHUNK), line[64];
        uint32_t seq = 0;
        Ebcat e;

        cr_assert(chunk && got);
        ebcat_spawn(&e, (const char *[]){"-s", addr_of(port), NULL}, STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "hello\n");
        client_expect_line(r, "hello\n"); /* ebcat is connected and accepted */
        client_expect_line(c, "hello\n");

        for (size_t done = 0; done < total; done += MSG * PER_CHUNK) {
                for (size_t i = 0; i < PER_CHUNK; i++)
                        seq_msg_format(chunk + i * MSG, MSG, seq++);
                client_send(c, chunk, MSG * PER_CHUNK);
                client_recv_exact(r, got, MSG * PER_CHUNK, 10000);
                cr_assert(memcmp(got, chunk, MSG * PER_CHUNK) == 0);
        }

        ebcat_write(&e, "after\n");
        client_expect_line(r, "after\n");
        client_expect_line(c, "after\n");
        ebcat_close_stdin(&e);
        ebcat_expect_exit(&e, 0, 5000);
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1, "ebcat -s wrote to stdout");
        ebcat_close(&e);
        close(r);
        close(c);
        free(chunk);
        free(got);
}

Test(ebcat, send_only_cut_short_by_the_server_fails) {
        uint16_t port = start_daemon();
        int r = client_connect(port);
        const char *err;
        Ebcat e;

        ebcat_spawn(&e, (const char *[]){"-s", addr_of(port), NULL}, STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "hello\n");
        client_expect_line(r, "hello\n");

        daemon_signal(&daemon_main, SIGTERM); /* before ebcat's input ended */
        err = ebcat_expect_exit(&e, 1, 10000);
        cr_assert(strstr(err, addr_of(port)), "stderr: %s", err);
        ebcat_close(&e);
        close(r);
}

Test(ebcat, unix_socket_address) {
        Daemon *d = &daemon_main;
        char path[128], line[64];
        Ebcat e;
        int c;

        daemon_init(d);
        snprintf(path, sizeof(path), "%.63s/eb.sock", d->dir);
        daemon_exec(d, "listen = [\"127.0.0.1:@PORT@\", \"@DIR@/eb.sock\"];\nlog_level = \"info\";\n", NULL);
        daemon_wait_tcp_listening(d, d->port, 5000);
        daemon_wait_unix_listening(d, path, 5000);
        c = client_connect(d->port);

        ebcat_run_input(&e, (const char *[]){"-s", path, NULL}, "u1\nu2\n", c,
                        (const char *[]){"u1\n", "u2\n", NULL});
        ebcat_close(&e);

        ebcat_spawn(&e, (const char *[]){"-l", path, NULL}, STDIO_PIPE, STDIO_PIPE);
        ebcat_sync(&e, c);
        client_send_str(c, "u3\n");
        ebcat_expect_line(&e, "u3\n");
        daemon_signal(d, SIGTERM);
        ebcat_expect_exit(&e, 0, 10000);
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1);
        ebcat_close(&e);
        close(c);
}

Test(ebcat, ipv6_address) {
        Daemon *d = &daemon_main;
        char addr[64];
        Ebcat e;
        int c;

        if (!harness_have_ipv6())
                cr_skip_test("no IPv6 on loopback");
        daemon_spawn_raw(d, "listen = [\"127.0.0.1:@PORT@\", \"[::1]:@PORT@\"];\nlog_level = \"info\";\n",
                         NULL);
        daemon_wait_tcp_listening(d, d->port, 5000);
        /* That is either listener: the other may be a moment behind. */
        snprintf(addr, sizeof(addr), "listening on [::1]:%u", (unsigned)d->port);
        cr_assert(daemon_log_contains(d, addr, 5000), "no \"%s\"", addr);
        c = client_connect(d->port);

        snprintf(addr, sizeof(addr), "[::1]:%u", (unsigned)d->port);
        ebcat_run_input(&e, (const char *[]){"-s", addr, NULL}, "six\n", c, (const char *[]){"six\n", NULL});
        ebcat_close(&e);
        close(c);
}

/* Whether the host resolves "localhost" as ebcat will (any family, stream)
 * to loopback addresses only, 127.0.0.1 among them (where the daemon
 * listens); why says what it got otherwise. Name resolution belongs to the
 * host (/etc/hosts may be missing: a debootstrap root, a build chroot), not
 * to ebcat. */
static bool localhost_resolves_to_loopback(char *why, size_t why_size) {
        const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *list = NULL;
        int r = getaddrinfo("localhost", NULL, &hints, &list);
        if (r != 0) {
                snprintf(why, why_size, "getaddrinfo(\"localhost\"): %s",
                         r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
                return false;
        }
        bool v4_loopback = false, other = false;
        char text[INET6_ADDRSTRLEN] = "";
        for (const struct addrinfo *ai = list; ai; ai = ai->ai_next) {
                if (ai->ai_family == AF_INET) {
                        const struct in_addr *a = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
                        if (ntohl(a->s_addr) == INADDR_LOOPBACK)
                                v4_loopback = true;
                        else if (!other && (ntohl(a->s_addr) >> 24) != 127) {
                                other = true;
                                inet_ntop(AF_INET, a, text, sizeof text);
                        }
                } else if (ai->ai_family == AF_INET6) {
                        const struct in6_addr *a = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
                        if (!other && !IN6_IS_ADDR_LOOPBACK(a)) {
                                other = true;
                                inet_ntop(AF_INET6, a, text, sizeof text);
                        }
                }
        }
        freeaddrinfo(list);
        if (other)
                snprintf(why, why_size, "\"localhost\" resolves to %s, not a loopback address", text);
        else if (!v4_loopback)
                snprintf(why, why_size, "\"localhost\" does not resolve to 127.0.0.1");
        return v4_loopback && !other;
}

Test(ebcat, host_name_address) {
        char why[256];
        if (!localhost_resolves_to_loopback(why, sizeof why))
                cr_skip_test("the host's name resolution: %s", why);
        uint16_t port = start_daemon();
        int c = client_connect(port);
        char addr[64];
        Ebcat e;

        /* "localhost" is loopback (checked above): no query leaves the
         * machine. If it also names ::1, where nothing listens, the next
         * address is tried. */
        snprintf(addr, sizeof(addr), "localhost:%u", (unsigned)port);
        ebcat_run_input(&e, (const char *[]){"-s", addr, NULL}, "by-name\n", c,
                        (const char *[]){"by-name\n", NULL});
        ebcat_close(&e);
        close(c);
}

Test(ebcat, connection_refused_exits_1_with_one_line) {
        uint16_t port = harness_free_port();
        const char *modes[][3] = {
                {"-s", addr_of(port), NULL},
                {"-l", addr_of(port), NULL},
                {addr_of(port), NULL, NULL},
        };
        char expected[128];

        snprintf(expected, sizeof(expected), "ebcat: cannot connect to 127.0.0.1:%u: Connection refused\n",
                 (unsigned)port);
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                Ebcat e;

                ebcat_spawn_null(&e, modes[i]);
                cr_assert_str_eq(ebcat_expect_exit(&e, 1, 5000), expected);
                ebcat_close(&e);
        }
}

Test(ebcat, missing_unix_socket_exits_1_with_one_line) {
        const char *path = "/nonexistent-test-ebcat-dir/eb.sock";
        const char *err;
        Ebcat e;

        ebcat_spawn_null(&e, (const char *[]){"-l", path, NULL});
        err = ebcat_expect_exit(&e, 1, 5000);
        cr_assert(strstr(err, path), "stderr: %s", err);
        ebcat_close(&e);
}

Test(ebcat, usage_errors_exit_2_with_one_line) {
        const char *cases[][4] = {
                {"-l", "-s", NULL},
                {"--listen-only", "--send-only", NULL},
                {"-ls", "127.0.0.1:1", NULL},
                {"-x", NULL},
                {"--bogus", NULL},
                {"127.0.0.1:1", "extra", NULL},
                {"nonsense", NULL},
                {"127.0.0.1", NULL},
                {"127.0.0.1:0", NULL},
                {"127.0.0.1:65536", NULL},
                {"localhost:port", NULL},
                {"relative/path.sock", NULL},
                {"*:7878", NULL},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char line[64];
                Ebcat e;

                ebcat_spawn_null(&e, cases[i]);
                ebcat_expect_exit(&e, 2, 5000);
                cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1,
                             "case %zu: something on stdout", i);
                cr_assert_eq(e.acc_len, 0, "case %zu: something on stdout", i);
                ebcat_close(&e);
        }
}

Test(ebcat, help_and_version) {
        char line[256];
        bool saw_l = false, saw_s = false;
        ssize_t n;
        Ebcat e;

        ebcat_spawn_null(&e, (const char *[]){"--help", NULL});
        ebcat_expect_exit(&e, 0, 5000);
        ebcat_expect_line(&e, "Usage: ebcat [OPTION]... [ADDRESS]\n");
        while ((n = ebcat_read_line(&e, line, sizeof(line), 1000)) > 0) {
                saw_l |= strstr(line, "--listen-only") != NULL;
                saw_s |= strstr(line, "--send-only") != NULL;
        }
        cr_assert(saw_l && saw_s);
        ebcat_close(&e);

        ebcat_spawn_null(&e, (const char *[]){"-V", NULL});
        ebcat_expect_exit(&e, 0, 5000);
        ebcat_expect_line(&e, "ebcat " PACKAGE_VERSION "\n");
        ebcat_close(&e);
}

Test(ebcat, closed_stdout_ends_quietly) {
        uint16_t port = start_daemon();
        int c = client_connect(port);
        Ebcat e;

        ebcat_spawn_null(&e, (const char *[]){"-l", addr_of(port), NULL});
        ebcat_sync(&e, c);
        close(e.out); /* like `ebcat -l | head -1` once head is done */
        e.out = -1;
        client_send_str(c, "nobody-reads-this\n");
        ebcat_expect_exit(&e, 0, 5000);
        ebcat_close(&e);
        close(c);
}

/* --- TLS ------------------------------------------------------------------
 *
 * The daemon does not speak TLS in these tests: ebcat --tls talks to TLS
 * peers started here on 127.0.0.1 (or a Unix socket), a small Python ssl
 * server (tls-peer.py below) and openssl s_server. The certificates are made
 * once per run by main() (RSA keys take a while), in a directory it removes
 * at the end; the test processes find it in the environment. */

#define TLS_DIR_ENV "EBCAT_TEST_TLS_DIR"
#define TLS_SKIP_ENV "EBCAT_TEST_TLS_SKIP"
#define TLS_BROKEN_ENV "EBCAT_TEST_TLS_BROKEN"
#define OPENSSL_ENV "EBCAT_TEST_OPENSSL"
#define PYTHON_SKIP_ENV "EBCAT_TEST_PYTHON_SKIP"
#define PYTHON "/usr/bin/python3"
#define MAX_PEERS 4

/* A TLS server for one test at a time: accepts connections one after the
 * other. Events go to its stdout, one line each: "ready" once listening,
 * then per connection "sni=NAME" (or "-"), "eof=close_notify" or
 * "eof=unexpected" (how the client's data ended), "closed"; "handshake-failed
 * REASON" instead when the handshake fails. The bytes received go to --out,
 * unchanged.
 *   --send FILE     send FILE's bytes first
 *   --delay S       then wait S seconds before reading
 *   --rcvbuf N      SO_RCVBUF of the connections (a slow reader)
 *   --read all|line|none
 *                   read until the client's end, until a line feed, or not
 *   --echo          send back what is read
 *   --close notify|cut
 *                   end with a close_notify, or close the socket without */
static const char tls_peer_py[] =
        "import argparse, socket, ssl, sys, time\n"
        "ap = argparse.ArgumentParser()\n"
        "ap.add_argument('--cert', required=True)\n"
        "ap.add_argument('--key', required=True)\n"
        "ap.add_argument('--host', default='127.0.0.1')\n"
        "ap.add_argument('--port', type=int)\n"
        "ap.add_argument('--unix')\n"
        "ap.add_argument('--out', required=True)\n"
        "ap.add_argument('--send')\n"
        "ap.add_argument('--delay', type=float, default=0)\n"
        "ap.add_argument('--rcvbuf', type=int, default=0)\n"
        "ap.add_argument('--read', choices=['all', 'line', 'none'], default='all')\n"
        "ap.add_argument('--echo', action='store_true')\n"
        "ap.add_argument('--close', choices=['notify', 'cut'], default='notify')\n"
        "a = ap.parse_args()\n"
        "def event(text):\n"
        "    sys.stdout.write(text + '\\n')\n"
        "    sys.stdout.flush()\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
        "ctx.load_cert_chain(a.cert, a.key)\n"
        "# Tell a client's close_notify from a bare EOF (some Pythons ignore\n"
        "# an unexpected EOF by default).\n"
        "ctx.options &= ~getattr(ssl, 'OP_IGNORE_UNEXPECTED_EOF', 0)\n"
        "sni = []\n"
        "ctx.sni_callback = lambda sock, name, context: sni.append(name)\n"
        "if a.unix:\n"
        "    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    where = a.unix\n"
        "else:\n"
        "    ls = socket.socket(socket.AF_INET6 if ':' in a.host else socket.AF_INET, socket.SOCK_STREAM)\n"
        "    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "    where = (a.host, a.port)\n"
        "if a.rcvbuf:\n"
        "    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)\n"
        "ls.bind(where)\n"
        "ls.listen(8)\n"
        "payload = open(a.send, 'rb').read() if a.send else b''\n"
        "out = open(a.out, 'ab', buffering=0)\n"
        "event('ready')\n"
        "while True:\n"
        "    raw, _ = ls.accept()\n"
        "    del sni[:]\n"
        "    try:\n"
        "        conn = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)\n"
        "    except (ssl.SSLError, OSError) as e:\n"
        "        event('handshake-failed %s' % getattr(e, 'reason', e))\n"
        "        raw.close()\n"
        "        continue\n"
        "    event('sni=%s' % (sni[0] if sni and sni[0] else '-'))\n"
        "    try:\n"
        "        conn.sendall(payload)\n"
        "        time.sleep(a.delay)\n"
        "        while a.read != 'none':\n"
        "            data = conn.recv(65536)\n"
        "            if not data:\n"
        "                event('eof=close_notify')\n"
        "                break\n"
        "            out.write(data)\n"
        "            if a.echo:\n"
        "                conn.sendall(data)\n"
        "            if a.read == 'line' and b'\\n' in data:\n"
        "                break\n"
        "    except ssl.SSLEOFError:\n"
        "        event('eof=unexpected')\n"
        "    except (ssl.SSLError, OSError) as e:\n"
        "        event('error %s' % e)\n"
        "    if a.close == 'notify':\n"
        "        try:\n"
        "            conn.unwrap()\n"
        "        except (ssl.SSLError, OSError) as e:\n"
        "            event('unwrap %s' % e)\n"
        "    conn.close()\n"
        "    event('closed')\n";

/* A process serving TLS: stdin a pipe (peer_in) or /dev/null, stdout and
 * stderr files in the test's directory. */
typedef struct Peer {
        pid_t pid;
        int in; /* write end of its stdin, or -1 */
        bool reaped;
        char out_path[160], err_path[160], recv_path[160];
        uint16_t port;
} Peer;

/* The test's directory (removed by harness_cleanup) and its free port. */
static Daemon tls_box;
static unsigned n_peers;

static void tls_require(void) {
        const char *why = getenv(TLS_SKIP_ENV);

        if (why)
                cr_skip_test("%s", why);
        why = getenv(TLS_BROKEN_ENV);
        cr_assert_null(why, "openssl could not make the test certificates:\n%s", why);
        cr_assert_not_null(getenv(TLS_DIR_ENV), "main() made no certificates");
        if (tls_box.dir[0] == '\0')
                daemon_init(&tls_box);
}

static void python_require(void) {
        const char *why = getenv(PYTHON_SKIP_ENV);

        if (why)
                cr_skip_test("%s", why);
}

/* Path of a file made by main(): "ca.pem", "server.pem"... */
static const char *tls_file(const char *name) {
        static char pool[16][256];
        static size_t next;
        char *p = pool[next++ % 16];

        snprintf(p, sizeof(pool[0]), "%s/%s", getenv(TLS_DIR_ENV), name);
        return p;
}

static char *read_whole_file(const char *path, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t len = 0, cap = 4096;
        char *buf = malloc(cap + 1);

        cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
        cr_assert_not_null(buf);
        for (;;) {
                if (len == cap) {
                        cap *= 2;
                        buf = realloc(buf, cap + 1);
                        cr_assert_not_null(buf);
                }
                ssize_t n = read(fd, buf + len, cap - len);
                cr_assert_geq(n, 0, "read %s: %s", path, strerror(errno));
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        close(fd);
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return buf;
}

static void write_whole_file(const char *path, const void *buf, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, (const char *)buf + off, len - off);
                cr_assert_gt(n, 0, "write %s: %s", path, strerror(errno));
                off += (size_t)n;
        }
        close(fd);
}

/* Gives the peer its files in the test's directory. */
static void peer_init(Peer *p) {
        unsigned id = n_peers++;

        cr_assert_lt(id, MAX_PEERS, "too many peers in one test");
        memset(p, 0, sizeof(*p));
        p->in = -1;
        snprintf(p->out_path, sizeof(p->out_path), "%s/peer%u.out", tls_box.dir, id);
        snprintf(p->err_path, sizeof(p->err_path), "%s/peer%u.err", tls_box.dir, id);
        snprintf(p->recv_path, sizeof(p->recv_path), "%s/peer%u.recv", tls_box.dir, id);
        write_whole_file(p->recv_path, "", 0);
}

/* Starts argv (NULL-terminated, argv[0] a path) as the initialised peer. */
static void peer_exec(Peer *p, const char *const argv[], bool stdin_pipe) {
        int in[2] = {-1, -1}, out, err, null;

        out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert(out >= 0 && err >= 0 && null >= 0);
        if (stdin_pipe)
                cr_assert_eq(pipe2(in, O_CLOEXEC), 0);

        p->pid = fork();
        cr_assert_geq(p->pid, 0);
        if (p->pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                signal(SIGPIPE, SIG_DFL);
                if (dup2(stdin_pipe ? in[0] : null, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
                    dup2(err, STDERR_FILENO) < 0)
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        child_register(p->pid);
        close(out);
        close(err);
        close(null);
        if (stdin_pipe) {
                close(in[0]);
                p->in = in[1];
        }
}

static bool peer_exited(Peer *p) {
        if (!p->reaped && waitpid(p->pid, NULL, WNOHANG) == p->pid) {
                p->reaped = true;
                child_forget(p->pid);
        }
        return p->reaped;
}

/* Stops the peer by its PID: SIGTERM, then SIGKILL after 5 s. */
static void peer_stop(Peer *p) {
        int64_t end = harness_now_ms() + 5000;

        if (p->in >= 0)
                close(p->in);
        p->in = -1;
        if (p->pid <= 0 || peer_exited(p))
                return;
        (void)kill(p->pid, SIGTERM);
        while (!peer_exited(p)) {
                if (harness_now_ms() >= end) {
                        (void)kill(p->pid, SIGKILL);
                        (void)waitpid(p->pid, NULL, 0);
                        p->reaped = true;
                        child_forget(p->pid);
                        break;
                }
                harness_sleep_ms(5);
        }
}

static bool tcp_port_listening(uint16_t port) {
        static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
        bool found = false;

        for (size_t i = 0; i < 2 && !found; i++) {
                FILE *f = fopen(files[i], "re");
                char line[512];

                if (!f)
                        continue;
                while (!found && fgets(line, sizeof(line), f)) {
                        char local[128];
                        unsigned st;
                        char *colon;

                        if (sscanf(line, " %*s %127s %*s %x", local, &st) != 2)
                                continue;
                        colon = strrchr(local, ':');
                        found = colon && strtoul(colon + 1, NULL, 16) == port && st == 0x0A;
                }
                fclose(f);
        }
        return found;
}

/* Waits ≤ 10 s until the peer listens on its TCP port, or on path. */
static void peer_wait_listening(Peer *p, const char *path) {
        int64_t end = harness_now_ms() + harness_ms(10000);

        while (path ? !harness_unix_listening(path) : !tcp_port_listening(p->port)) {
                if (peer_exited(p))
                        cr_assert_fail("the TLS peer exited: %s", read_whole_file(p->err_path, NULL));
                cr_assert_lt(harness_now_ms(), end, "the TLS peer does not listen after 10 s");
                harness_sleep_ms(10);
        }
}

/* True when the peer's stdout has a line that is 'line', or that starts
 * with 'line' and a space (waits ≤ timeout_ms). */
static bool peer_has_event(Peer *p, const char *line, int timeout_ms) {
        int64_t end = harness_now_ms() + harness_ms(timeout_ms);
        size_t len = strlen(line);

        for (;;) {
                char *text = read_whole_file(p->out_path, NULL);
                bool found = false;

                for (const char *at = text; (at = strstr(at, line)); at += len)
                        if ((at == text || at[-1] == '\n') && (at[len] == '\n' || at[len] == ' ')) {
                                found = true;
                                break;
                        }
                free(text);
                if (found)
                        return true;
                if (harness_now_ms() >= end)
                        return false;
                harness_sleep_ms(10);
        }
}

static void peer_expect_event(Peer *p, const char *line) {
        if (!peer_has_event(p, line, 5000)) {
                char *text = read_whole_file(p->out_path, NULL);
                cr_assert_fail("the TLS peer never logged \"%s\"; it logged:\n%s", line, text);
        }
}

/* Starts tls-peer.py with cert and key (files of main()) on a free TCP port
 * of 127.0.0.1, or on the Unix socket unix_path, with extra arguments
 * (NULL-terminated, may be NULL); returns once it listens. */
static void py_peer_start(Peer *p, const char *cert, const char *key, const char *unix_path,
                          const char *const extra[]) {
        const char *argv[32] = {PYTHON};
        char script[128], port[16];
        size_t n = 1;

        peer_init(p);
        p->port = unix_path ? 0 : harness_free_port();
        snprintf(script, sizeof(script), "%s/tls-peer.py", tls_box.dir);
        write_whole_file(script, tls_peer_py, strlen(tls_peer_py));
        snprintf(port, sizeof(port), "%u", (unsigned)p->port);
        argv[n++] = script;
        argv[n++] = "--cert";
        argv[n++] = tls_file(cert);
        argv[n++] = "--key";
        argv[n++] = tls_file(key);
        argv[n++] = unix_path ? "--unix" : "--port";
        argv[n++] = unix_path ? unix_path : port;
        argv[n++] = "--out";
        argv[n++] = p->recv_path;
        for (size_t i = 0; extra && extra[i]; i++) {
                cr_assert_lt(n, 30);
                argv[n++] = extra[i];
        }
        argv[n] = NULL;

        peer_exec(p, argv, false);
        peer_wait_listening(p, unix_path);
        peer_expect_event(p, "ready");
}

/* The bytes the peer has received so far. */
static char *peer_received(Peer *p, size_t *ret_len) {
        return read_whole_file(p->recv_path, ret_len);
}

/* Waits ≤ timeout_ms until the peer has received exactly len bytes, equal
 * to want. */
static void peer_expect_received(Peer *p, const char *want, size_t len, int timeout_ms) {
        int64_t end = harness_now_ms() + harness_ms(timeout_ms);

        for (;;) {
                size_t got_len;
                char *got = peer_received(p, &got_len);

                if (got_len >= len || harness_now_ms() >= end) {
                        cr_assert_eq(got_len, len, "the TLS peer received %zu bytes, expected %zu", got_len,
                                     len);
                        assert_same_bytes(got, want, len);
                        free(got);
                        return;
                }
                free(got);
                harness_sleep_ms(10);
        }
}

static const char *tls_addr(const Peer *p) {
        return addr_of(p->port);
}

/* Like ebcat_expect_exit, for a status 0 whose stderr must be exactly
 * 'stderr_text'. */
static void ebcat_expect_exit_0_saying(Ebcat *e, const char *stderr_text, int timeout_ms) {
        int r = ebcat_wait(e, timeout_ms);
        const char *err;

        cr_assert_neq(r, -1, "ebcat still running after %d ms", timeout_ms);
        err = ebcat_stderr(e);
        cr_assert_eq(r, 0, "ebcat exited with %d; stderr: %s", r, err);
        cr_assert_str_eq(err, stderr_text);
}

/* Runs ebcat with args and input on its stdin (a pipe, closed after the
 * input); ebcat must exit 0 with nothing on stderr. The caller closes e. */
static void ebcat_run_input_tls(Ebcat *e, const char *const args[], const char *input) {
        ebcat_spawn(e, args, STDIO_PIPE, STDIO_PIPE);
        ebcat_write(e, input);
        ebcat_close_stdin(e);
        ebcat_expect_exit(e, 0, 5000);
}

/* Runs ebcat with args and stdin /dev/null; it must fail (status 1) with
 * exactly the line want on stderr. */
static void ebcat_expect_failure(const char *const args[], const char *want) {
        Ebcat e;

        ebcat_spawn_null(&e, args);
        cr_assert_str_eq(ebcat_expect_exit(&e, 1, 15000), want);
        ebcat_close(&e);
}

/* Binary bytes, every value from 0 to 255, in lines; the last one without
 * its LF (the server appends one, not ebcat). */
static size_t binary_lines(char *buf, size_t size) {
        size_t len = 0;

        for (unsigned v = 0; v < 256; v++) {
                cr_assert_lt(len + 3, size);
                buf[len++] = (char)v;
                if (v % 32 == 31)
                        buf[len++] = '\n';
        }
        memcpy(buf + len, "\r\nno-final-lf", 13);
        return len + 13;
}

Test(ebcat, tls_verified_ip_address_relays_both_ways_binary_safe) {
        tls_require();
        python_require();
        char in[512], out[512];
        size_t len = binary_lines(in, sizeof(in));
        Peer peer;
        Ebcat e;

        py_peer_start(&peer, "server.pem", "leaf.key", NULL, (const char *[]){"--echo", NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        for (size_t off = 0; off < len;) {
                ssize_t n = write(e.in, in + off, len - off);
                cr_assert_gt(n, 0);
                off += (size_t)n;
        }
        ebcat_read_exact(&e, out, len, 5000); /* echoed while stdin is open */
        assert_same_bytes(out, in, len);

        ebcat_close_stdin(&e); /* close_notify, then the server's */
        ebcat_expect_exit(&e, 0, 5000);
        cr_assert_eq(ebcat_read_line(&e, out, sizeof(out), 1000), -1, "more on stdout");
        peer_expect_received(&peer, in, len, 5000);
        peer_expect_event(&peer, "sni=-"); /* no SNI for an address */
        peer_expect_event(&peer, "eof=close_notify");
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_default_mode_large_echo_arrives_whole_and_in_order) {
        tls_require();
        python_require();
        enum { SIZE = 2000000 };
        char *data = make_lines(SIZE), *got = malloc(SIZE);
        size_t sent = 0, received = 0;
        int64_t end = harness_now_ms() + harness_ms(60000);
        Peer peer;
        Ebcat e;

        cr_assert_not_null(got);
        py_peer_start(&peer, "server.pem", "leaf.key", NULL, (const char *[]){"--echo", NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        cr_assert_eq(fcntl(e.in, F_SETFL, O_NONBLOCK), 0);
        /* Both directions at once: ebcat reads and writes TLS records in one
         * loop while neither side waits for the other. */
        while (received < SIZE) {
                struct pollfd p[2] = {
                        {.fd = e.in, .events = POLLOUT},
                        {.fd = e.out, .events = POLLIN},
                };
                ssize_t n;

                cr_assert_lt(harness_now_ms(), end, "sent %zu, received %zu of %u bytes in 60 s", sent,
                             received, SIZE);
                (void)poll(p, 2, 100);
                if (e.in >= 0 && p[0].revents) {
                        n = write(e.in, data + sent, SIZE - sent);
                        cr_assert(n > 0 || errno == EAGAIN, "write: %s", strerror(errno));
                        if (n > 0)
                                sent += (size_t)n;
                        if (sent == SIZE)
                                ebcat_close_stdin(&e);
                }
                if (p[1].revents) {
                        n = read(e.out, got + received, SIZE - received);
                        cr_assert(n > 0 || (n < 0 && errno == EAGAIN), "read: %zd %s", n, strerror(errno));
                        if (n > 0)
                                received += (size_t)n;
                }
        }
        assert_same_bytes(got, data, SIZE);
        ebcat_expect_exit(&e, 0, 5000);
        peer_expect_event(&peer, "eof=close_notify");
        ebcat_close(&e);
        peer_stop(&peer);
        free(data);
        free(got);
}

Test(ebcat, tls_host_name_is_verified_and_sent_as_sni) {
        char why[256], addr[64];
        if (!localhost_resolves_to_loopback(why, sizeof why))
                cr_skip_test("the host's name resolution: %s", why);
        tls_require();
        python_require();
        Peer peer;
        Ebcat e;

        py_peer_start(&peer, "server.pem", "leaf.key", NULL, NULL);
        snprintf(addr, sizeof(addr), "localhost:%u", (unsigned)peer.port);
        ebcat_run_input_tls(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-s", addr, NULL},
                            "by-name\n");
        peer_expect_received(&peer, "by-name\n", 8, 5000);
        peer_expect_event(&peer, "sni=localhost");
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_ipv6_address_is_verified) {
        if (!harness_have_ipv6())
                cr_skip_test("no IPv6 on loopback");
        tls_require();
        python_require();
        char addr[64];
        Peer peer;
        Ebcat e;

        py_peer_start(&peer, "server.pem", "leaf.key", NULL, (const char *[]){"--host", "::1", NULL});
        snprintf(addr, sizeof(addr), "[::1]:%u", (unsigned)peer.port);
        ebcat_run_input_tls(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-s", addr, NULL},
                            "six\n");
        peer_expect_received(&peer, "six\n", 4, 5000);
        peer_expect_event(&peer, "sni=-");
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_name_mismatch_is_refused_with_one_line) {
        tls_require();
        python_require();
        char want[256], why[256], addr[64];
        size_t len;
        Peer peer;
        Ebcat e;

        /* other.pem is from the right CA, for elsewhere.example and
         * 192.0.2.1 only. */
        py_peer_start(&peer, "other.pem", "leaf.key", NULL, NULL);
        snprintf(want, sizeof(want),
                 "ebcat: cannot connect to %s: certificate verification failed: IP address mismatch\n",
                 tls_addr(&peer));
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "must-not-be-sent\n");
        cr_assert_str_eq(ebcat_expect_exit(&e, 1, 15000), want);
        ebcat_close(&e);

        if (localhost_resolves_to_loopback(why, sizeof why)) {
                snprintf(addr, sizeof(addr), "localhost:%u", (unsigned)peer.port);
                snprintf(want, sizeof(want),
                         "ebcat: cannot connect to %s: certificate verification failed: hostname mismatch\n",
                         addr);
                ebcat_expect_failure((const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-l", addr, NULL},
                                     want);
        }
        free(peer_received(&peer, &len));
        cr_assert_eq(len, 0, "the peer received %zu bytes", len);
        peer_stop(&peer);
}

Test(ebcat, tls_untrusted_ca_is_refused_with_one_line) {
        tls_require();
        python_require();
        char want[256];
        Peer peer;

        py_peer_start(&peer, "server.pem", "leaf.key", NULL, NULL);
        snprintf(want, sizeof(want),
                 "ebcat: cannot connect to %s: certificate verification failed: unable to get local issuer "
                 "certificate\n",
                 tls_addr(&peer));
        /* Another CA given, and the system's (which know nothing of ours). */
        ebcat_expect_failure(
                (const char *[]){"--tls", "--ca", tls_file("rogue-ca.pem"), tls_addr(&peer), NULL}, want);
        ebcat_expect_failure((const char *[]){"--tls", "-s", tls_addr(&peer), NULL}, want);
        peer_expect_event(&peer, "handshake-failed TLSV1_ALERT_UNKNOWN_CA");
        peer_stop(&peer);
}

Test(ebcat, tls_insecure_connects_with_a_warning) {
        tls_require();
        python_require();
        const char *warning = "ebcat: warning: --insecure: the server's certificate is not verified\n";
        Peer peer;
        Ebcat e;

        /* Neither the CA nor the names are checked. */
        py_peer_start(&peer, "other.pem", "leaf.key", NULL, NULL);
        ebcat_spawn(&e, (const char *[]){"--tls", "--insecure", "-s", tls_addr(&peer), NULL}, STDIO_PIPE,
                    STDIO_PIPE);
        ebcat_write(&e, "unverified\n");
        ebcat_close_stdin(&e);
        ebcat_expect_exit_0_saying(&e, warning, 5000);
        peer_expect_received(&peer, "unverified\n", 11, 5000);
        ebcat_close(&e);
        peer_stop(&peer);
}

/* openssl s_server, which requires a client certificate from the test CA;
 * its stdin (p->in) goes to the client, what it receives to its stdout. */
static void s_server_start(Peer *p) {
        const char *openssl = getenv(OPENSSL_ENV);
        char accept[32];

        peer_init(p);
        p->port = harness_free_port();
        snprintf(accept, sizeof(accept), "127.0.0.1:%u", (unsigned)p->port);
        peer_exec(p,
                  (const char *[]){openssl, "s_server", "-accept", accept, "-cert", tls_file("server.pem"),
                                   "-key", tls_file("leaf.key"), "-Verify", "1", "-CAfile",
                                   tls_file("ca.pem"), "-quiet", NULL},
                  true);
        peer_wait_listening(p, NULL);
}

Test(ebcat, tls_client_certificate_is_presented) {
        tls_require();
        char line[64];
        Peer server;
        Ebcat e;

        s_server_start(&server);
        ebcat_spawn(&e,
                    (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "--cert", tls_file("client.pem"),
                                     "--key", tls_file("leaf.key"), tls_addr(&server), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "from-ebcat\n");
        int64_t end = harness_now_ms() + harness_ms(5000);
        for (;;) {
                char *got = read_whole_file(server.out_path, NULL);
                bool done = strcmp(got, "from-ebcat\n") == 0;
                free(got);
                if (done)
                        break;
                cr_assert_lt(harness_now_ms(), end, "s_server did not receive the line");
                harness_sleep_ms(10);
        }
        cr_assert_eq(write(server.in, "from-server\n", 12), 12);
        ebcat_expect_line(&e, "from-server\n");
        ebcat_close_stdin(&e);
        ebcat_expect_exit(&e, 0, 5000);
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1);
        ebcat_close(&e);
        char *log = read_whole_file(server.err_path, NULL);
        cr_assert(strstr(log, "CN = ebcat-client"), "s_server saw no client certificate:\n%s", log);
        free(log);

        /* Without one, the server refuses the connection. */
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-s", tls_addr(&server), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "anonymous\n");
        ebcat_close_stdin(&e);
        const char *err = ebcat_expect_exit(&e, 1, 5000);
        cr_assert(strstr(err, "certificate"), "stderr: %s", err);
        ebcat_close(&e);
        peer_stop(&server);
}

Test(ebcat, tls_listen_only_large_stream_then_the_server_closes) {
        tls_require();
        python_require();
        char *data = make_lines(LARGE_BYTES), *got = malloc(LARGE_BYTES), path[256], line[64];
        Peer peer;
        Ebcat e;

        cr_assert_not_null(got);
        snprintf(path, sizeof(path), "%s/stream", tls_box.dir);
        write_whole_file(path, data, LARGE_BYTES);
        py_peer_start(&peer, "server.pem", "leaf.key", NULL,
                      (const char *[]){"--send", path, "--read", "none", NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-l", tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "must-not-be-sent\n"); /* stdin stays open */
        /* A reader that starts late: ebcat's buffer fills while OpenSSL
         * holds decrypted records that no poll event announces. */
        harness_sleep_ms(300);
        ebcat_read_exact(&e, got, LARGE_BYTES, 60000);
        assert_same_bytes(got, data, LARGE_BYTES);
        ebcat_expect_exit(&e, 0, 5000); /* on the server's close_notify */
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1);
        ebcat_close(&e);
        peer_expect_event(&peer, "closed");
        cr_assert(!peer_has_event(&peer, "unwrap", 0), "ebcat did not answer the close_notify");
        peer_stop(&peer);
        free(data);
        free(got);
}

Test(ebcat, tls_records_held_inside_openssl_come_out_without_a_socket_event) {
        tls_require();
        python_require();
        /* More than the stdout pipe and ebcat's buffer hold, not a whole
         * number of records; then the server sends nothing more. */
        enum { SIZE = 300000 + 1234 };
        char *data = make_lines(300000), *got = malloc(SIZE), path[256], want[256];
        Peer peer;
        Ebcat e;

        cr_assert(data && got);
        data = realloc(data, SIZE);
        cr_assert_not_null(data);
        memset(data + 300000, 'z', 1233);
        data[SIZE - 1] = '\n';
        snprintf(path, sizeof(path), "%s/held", tls_box.dir);
        write_whole_file(path, data, SIZE);
        py_peer_start(&peer, "server.pem", "leaf.key", NULL, (const char *[]){"--send", path, NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-l", tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        /* A reader that starts late: ebcat's buffer fills while a record is
         * half read, whose rest OpenSSL holds once the socket is empty. */
        harness_sleep_ms(500);
        ebcat_read_exact(&e, got, SIZE, 5000);
        assert_same_bytes(got, data, SIZE);

        /* The server is killed: no close_notify. */
        snprintf(want, sizeof(want), "ebcat: connection to %s lost: closed without a TLS close_notify\n",
                 tls_addr(&peer));
        peer_stop(&peer);
        cr_assert_str_eq(ebcat_expect_exit(&e, 1, 5000), want);
        ebcat_close(&e);
        free(data);
        free(got);
}

Test(ebcat, tls_default_mode_ends_with_status_0_when_the_server_closes) {
        tls_require();
        python_require();
        char path[256];
        Peer peer;
        Ebcat e;

        snprintf(path, sizeof(path), "%s/bye", tls_box.dir);
        write_whole_file(path, "bye\n", 4);
        py_peer_start(&peer, "server.pem", "leaf.key", NULL,
                      (const char *[]){"--send", path, "--read", "none", NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_expect_line(&e, "bye\n");
        ebcat_expect_exit(&e, 0, 5000); /* stdin still open */
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_server_closing_without_close_notify_is_an_error) {
        tls_require();
        python_require();
        char path[256], want[256];
        Peer peer;
        Ebcat e;

        snprintf(path, sizeof(path), "%s/cut", tls_box.dir);
        write_whole_file(path, "before-the-cut\n", 15);
        py_peer_start(&peer, "server.pem", "leaf.key", NULL,
                      (const char *[]){"--send", path, "--read", "none", "--close", "cut", NULL});
        snprintf(want, sizeof(want), "ebcat: connection to %s lost: closed without a TLS close_notify\n",
                 tls_addr(&peer));
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-l", tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_expect_line(&e, "before-the-cut\n"); /* what came is written out */
        cr_assert_str_eq(ebcat_expect_exit(&e, 1, 5000), want);
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_server_may_close_without_close_notify_after_ours) {
        tls_require();
        python_require();
        Peer peer;
        Ebcat e;

        py_peer_start(&peer, "server.pem", "leaf.key", NULL,
                      (const char *[]){"--echo", "--close", "cut", NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "ping\n");
        ebcat_expect_line(&e, "ping\n");
        ebcat_close_stdin(&e);
        ebcat_expect_exit(&e, 0, 5000);
        peer_expect_event(&peer, "eof=close_notify");
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_send_only_large_input_to_a_slow_reader_arrives_whole) {
        tls_require();
        python_require();
        char *data = make_lines(LARGE_BYTES), noise[256], line[64];
        int in = write_temp_file(data, LARGE_BYTES);
        Peer peer;
        Ebcat e;

        /* The server sends too, which ebcat -s reads and discards; it starts
         * reading late and slowly, so ebcat's writes wait for the socket. */
        snprintf(noise, sizeof(noise), "%s/noise", tls_box.dir);
        write_whole_file(noise, data, 100000);
        py_peer_start(&peer, "server.pem", "leaf.key", NULL,
                      (const char *[]){"--send", noise, "--delay", "0.5", "--rcvbuf", "4096", NULL});
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-s", tls_addr(&peer), NULL},
                    in, STDIO_PIPE);
        close(in);
        ebcat_expect_exit(&e, 0, 60000);
        cr_assert_eq(ebcat_read_line(&e, line, sizeof(line), 1000), -1, "ebcat -s wrote to stdout");
        peer_expect_received(&peer, data, LARGE_BYTES, 5000);
        peer_expect_event(&peer, "eof=close_notify");
        ebcat_close(&e);
        peer_stop(&peer);
        free(data);
}

Test(ebcat, tls_send_only_cut_short_by_the_server_fails) {
        tls_require();
        python_require();
        char want[256];
        Peer peer;
        Ebcat e;

        py_peer_start(&peer, "server.pem", "leaf.key", NULL, (const char *[]){"--read", "line", NULL});
        snprintf(want, sizeof(want), "ebcat: %s closed the connection before all input was sent\n",
                 tls_addr(&peer));
        ebcat_spawn(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-s", tls_addr(&peer), NULL},
                    STDIO_PIPE, STDIO_PIPE);
        ebcat_write(&e, "hello\n");
        peer_expect_received(&peer, "hello\n", 6, 5000);
        cr_assert_str_eq(ebcat_expect_exit(&e, 1, 5000), want); /* stdin still open */
        ebcat_close(&e);
        peer_stop(&peer);
}

Test(ebcat, tls_over_a_unix_socket_verifies_the_chain_not_the_name) {
        tls_require();
        python_require();
        char path[128], want[256];
        Peer peer;
        Ebcat e;

        snprintf(path, sizeof(path), "%s/tls.sock", tls_box.dir);
        py_peer_start(&peer, "other.pem", "leaf.key", path, NULL);
        ebcat_run_input_tls(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), "-s", path, NULL},
                            "over-unix\n");
        peer_expect_received(&peer, "over-unix\n", 10, 5000);
        peer_expect_event(&peer, "sni=-");
        ebcat_close(&e);

        snprintf(want, sizeof(want),
                 "ebcat: cannot connect to %s: certificate verification failed: unable to get local issuer "
                 "certificate\n",
                 path);
        ebcat_expect_failure((const char *[]){"--tls", "--ca", tls_file("rogue-ca.pem"), "-l", path, NULL},
                             want);
        peer_stop(&peer);
}

Test(ebcat, tls_to_a_plain_server_fails_the_handshake) {
        tls_require();
        uint16_t port = start_daemon();
        int c = client_connect(port);
        int64_t end = harness_now_ms() + harness_ms(10000);
        char want[128];
        const char *err;
        Ebcat e;

        /* The relay passes ebcat's ClientHello on as bytes and sends ebcat
         * plain lines back, which are no TLS records. */
        ebcat_spawn_null(&e, (const char *[]){"--tls", "--ca", tls_file("ca.pem"), addr_of(port), NULL});
        while (ebcat_wait(&e, 0) == -1) {
                cr_assert_lt(harness_now_ms(), end, "ebcat still in the handshake after 10 s");
                client_send_str(c, "plain text\n");
                harness_sleep_ms(50);
        }
        snprintf(want, sizeof(want), "ebcat: cannot connect to %s: TLS handshake failed: ", addr_of(port));
        err = ebcat_expect_exit(&e, 1, 0);
        cr_assert(strncmp(err, want, strlen(want)) == 0, "stderr: %s", err);
        ebcat_close(&e);
        close(c);
}

Test(ebcat, tls_usage_errors_exit_2_with_one_line) {
        const char *cases[][6] = {
                {"--ca", "ca.pem", "127.0.0.1:1", NULL},
                {"--cert", "c.pem", "--key", "k.pem", "127.0.0.1:1", NULL},
                {"--insecure", "127.0.0.1:1", NULL},
                {"--tls", "--cert", "c.pem", "127.0.0.1:1", NULL},
                {"--tls", "--key", "k.pem", "127.0.0.1:1", NULL},
                {"--tls", "--insecure", "--ca", "ca.pem", "127.0.0.1:1", NULL},
                {"--tls=yes", "127.0.0.1:1", NULL},
                {"--tls", "--ca", NULL},
                {"--tls", "-l", "-s", "127.0.0.1:1", NULL},
                {"--tls", "*:7878", NULL},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                Ebcat e;

                ebcat_spawn_null(&e, cases[i]);
                ebcat_expect_exit(&e, 2, 5000);
                ebcat_close(&e);
        }
}

Test(ebcat, tls_unusable_files_exit_1_before_connecting) {
        tls_require();
        /* A port where nothing listens: the files are checked first. */
        const char *addr = addr_of(harness_free_port());
        char want[512];

        ebcat_expect_failure((const char *[]){"--tls", "--ca", "/nonexistent/ca.pem", addr, NULL},
                             "ebcat: cannot load CA certificates from /nonexistent/ca.pem: No such file or "
                             "directory\n");
        snprintf(want, sizeof(want),
                 "ebcat: cannot load CA certificates from %s: no certificate or crl found\n",
                 tls_file("leaf.key"));
        ebcat_expect_failure((const char *[]){"--tls", "--ca", tls_file("leaf.key"), addr, NULL}, want);
        ebcat_expect_failure(
                (const char *[]){"--tls", "--cert", "/nonexistent/c.pem", "--key", tls_file("leaf.key"),
                                 addr, NULL},
                "ebcat: cannot load the certificate /nonexistent/c.pem: No such file or directory\n");
        snprintf(want, sizeof(want), "ebcat: cannot load the private key %s: key values mismatch\n",
                 tls_file("rogue-ca.key"));
        ebcat_expect_failure((const char *[]){"--tls", "--cert", tls_file("client.pem"), "--key",
                                              tls_file("rogue-ca.key"), addr, NULL},
                             want);
}

/* --- The certificates of the TLS tests, made by main() --------------------- */

static bool find_in_path(const char *name, char *buf, size_t size) {
        const char *path = getenv("PATH");

        for (const char *dir = path ? path : "/usr/bin:/bin"; *dir;) {
                size_t len = strcspn(dir, ":");

                if (len > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)len, dir, name) < size &&
                    access(buf, X_OK) == 0)
                        return true;
                dir += len;
                if (*dir == ':')
                        dir++;
        }
        return false;
}

/* Runs argv (argv[0] a path) with stdout and stderr appended to log_path;
 * returns its exit status, or -1 (not run, killed, or still running after
 * 60 s, then killed by its PID). */
static int run_logged(const char *const argv[], const char *log_path) {
        int64_t end = harness_now_ms() + 60000;
        int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int status;
        pid_t pid;

        if (log < 0 || null < 0)
                return -1;
        pid = fork();
        if (pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (dup2(null, STDIN_FILENO) < 0 || dup2(log, STDOUT_FILENO) < 0 ||
                    dup2(log, STDERR_FILENO) < 0)
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(log);
        close(null);
        if (pid < 0)
                return -1;
        for (;;) {
                pid_t r = waitpid(pid, &status, WNOHANG);

                if (r == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                if (r < 0)
                        return -1;
                if (harness_now_ms() >= end) {
                        (void)kill(pid, SIGKILL);
                        (void)waitpid(pid, NULL, 0);
                        return -1;
                }
                harness_sleep_ms(10);
        }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

static char tls_dir_made[64];

/* A CA, a second CA nobody trusts, and from the first: a server certificate
 * for 127.0.0.1, ::1 and localhost, one for other names (elsewhere.example,
 * 192.0.2.1), and a client certificate; the three share leaf.key. Sets the
 * environment the tests read (TLS_DIR_ENV, OPENSSL_ENV, or TLS_SKIP_ENV with
 * the reason; PYTHON_SKIP_ENV). */
static void tls_setup(void) {
        char openssl[4096], log[128], file[16][128];
        const char *ca_ext[] = {"-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                                "keyUsage=critical,keyCertSign,cRLSign"};
        size_t n_file = 0;

        if (access(PYTHON, X_OK) != 0)
                (void)setenv(PYTHON_SKIP_ENV, PYTHON " is not installed", 1);
        else if (run_logged((const char *[]){PYTHON, "-c", "import ssl", NULL}, "/dev/null") != 0)
                (void)setenv(PYTHON_SKIP_ENV, PYTHON " has no ssl module", 1);

        if (!find_in_path("openssl", openssl, sizeof(openssl))) {
                (void)setenv(TLS_SKIP_ENV, "openssl is not installed", 1);
                return;
        }
        snprintf(tls_dir_made, sizeof(tls_dir_made), "/tmp/test-ebcat-tls-XXXXXX");
        if (!mkdtemp(tls_dir_made)) {
                tls_dir_made[0] = '\0';
                (void)setenv(TLS_SKIP_ENV, "cannot make a temporary directory", 1);
                return;
        }
        snprintf(log, sizeof(log), "%s/openssl.log", tls_dir_made);
#define F(name) (snprintf(file[n_file], sizeof(file[0]), "%s/%s", tls_dir_made, (name)), file[n_file++])
        const char *ca_key = F("ca.key"), *ca_pem = F("ca.pem"), *rogue_key = F("rogue-ca.key"),
                   *rogue_pem = F("rogue-ca.pem"), *leaf_key = F("leaf.key"), *server_pem = F("server.pem"),
                   *other_pem = F("other.pem"), *client_pem = F("client.pem");
#undef F
        const char *const cmds[][32] = {
                {openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 "/CN=ebcat test CA", "-keyout", ca_key, "-out", ca_pem, ca_ext[0], ca_ext[1], ca_ext[2],
                 ca_ext[3], NULL},
                {openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                 "/CN=ebcat rogue CA", "-keyout", rogue_key, "-out", rogue_pem, ca_ext[0], ca_ext[1],
                 ca_ext[2], ca_ext[3], NULL},
                {openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                 leaf_key, NULL},
                {openssl,
                 "req",
                 "-x509",
                 "-key",
                 leaf_key,
                 "-days",
                 "1",
                 "-subj",
                 "/CN=localhost",
                 "-addext",
                 "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
                 "-addext",
                 "basicConstraints=critical,CA:FALSE",
                 "-addext",
                 "extendedKeyUsage=serverAuth",
                 "-CA",
                 ca_pem,
                 "-CAkey",
                 ca_key,
                 "-out",
                 server_pem,
                 NULL},
                {openssl,
                 "req",
                 "-x509",
                 "-key",
                 leaf_key,
                 "-days",
                 "1",
                 "-subj",
                 "/CN=elsewhere.example",
                 "-addext",
                 "subjectAltName=DNS:elsewhere.example,IP:192.0.2.1",
                 "-addext",
                 "basicConstraints=critical,CA:FALSE",
                 "-addext",
                 "extendedKeyUsage=serverAuth",
                 "-CA",
                 ca_pem,
                 "-CAkey",
                 ca_key,
                 "-out",
                 other_pem,
                 NULL},
                {openssl,
                 "req",
                 "-x509",
                 "-key",
                 leaf_key,
                 "-days",
                 "1",
                 "-subj",
                 "/CN=ebcat-client",
                 "-addext",
                 "basicConstraints=critical,CA:FALSE",
                 "-addext",
                 "extendedKeyUsage=clientAuth",
                 "-CA",
                 ca_pem,
                 "-CAkey",
                 ca_key,
                 "-out",
                 client_pem,
                 NULL},
        };
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                if (run_logged(cmds[i], log) != 0) {
                        /* A broken openssl is not a missing one: every TLS
                         * test then fails with its output. */
                        int fd = open(log, O_RDONLY | O_CLOEXEC);
                        char text[2048] = "";
                        ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;

                        text[n > 0 ? n : 0] = '\0';
                        if (fd >= 0)
                                close(fd);
                        (void)setenv(TLS_BROKEN_ENV, text, 1);
                        break;
                }
        (void)setenv(TLS_DIR_ENV, tls_dir_made, 1);
        (void)setenv(OPENSSL_ENV, openssl, 1);
}

static void tls_teardown(void) {
        if (tls_dir_made[0] != '\0' && !getenv("EB_TEST_KEEP"))
                (void)nftw(tls_dir_made, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Tests run one at a time (unless -j says otherwise): several large
 * transfers at once on a small machine could starve a reader long enough
 * for the daemon to cut it off as slow, which is not what they test. */
int main(int argc, char *argv[]) {
        struct criterion_test_set *tests = criterion_initialize();
        int result = 0;

        criterion_options.jobs = 1;
        if (criterion_handle_args(argc, argv, true)) {
                tls_setup();
                result = !criterion_run_all_tests(tests);
                tls_teardown();
        }
        criterion_finalize(tests);
        return result;
}
