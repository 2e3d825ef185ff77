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

/* Tests run one at a time (unless -j says otherwise): several large
 * transfers at once on a small machine could starve a reader long enough
 * for the daemon to cut it off as slow, which is not what they test. */
int main(int argc, char *argv[]) {
        struct criterion_test_set *tests = criterion_initialize();
        int result = 0;

        criterion_options.jobs = 1;
        if (criterion_handle_args(argc, argv, true))
                result = !criterion_run_all_tests(tests);
        criterion_finalize(tests);
        return result;
}
