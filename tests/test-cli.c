/* End-to-end tests of the command line, configuration errors, exit codes
 * and Unix socket file handling (epoll-broadcaster.conf(5), epoll-broadcaster(8)). */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#if defined(__has_include)
#if __has_include("build-config.h")
#include "build-config.h"
#endif
#endif

TestSuite(cli, .fini = harness_cleanup, .timeout = 60);

/* Runs the daemon to completion; returns its exit status. */
static int run(Daemon *d, const char *conf, char *const argv[]) {
        daemon_spawn_raw(d, conf, argv);
        int st = daemon_wait(d, 5000);
        if (st == -1) {
                char *log = daemon_log_text(d);
                cr_assert_fail("still running after 5 s; log:\n%s", log);
                free(log);
        }
        return st;
}

/* Expects exit 78 and one "error: " line naming eb.conf:LINE and the setting
 * (in quotes; NULL for syntax errors). */
static void expect_config_error(const char *conf, int line, const char *setting) {
        Daemon d;
        int st = run(&d, conf, NULL);
        char *log = daemon_log_text(&d);
        cr_assert(st == 78, "exit status %d for an invalid config (want 78); log:\n%s", st, log);
        char where[32], quoted[64];
        snprintf(where, sizeof where, "eb.conf:%d", line);
        snprintf(quoted, sizeof quoted, "'%s'", setting ? setting : "");
        const char *needles[] = {"error: ", where, setting ? quoted : NULL, NULL};
        cr_assert(daemon_log_line_has(&d, needles, 0), "no line with \"error: \", \"%s\"%s%s; log:\n%s",
                  where, setting ? " and " : "", setting ? quoted : "", log);
        cr_assert(strstr(log, d.conf_path), "the error does not give the file's path %s; log:\n%s",
                  d.conf_path, log);
        free(log);
        daemon_stop(&d);
}

#define HEAD "listen = [\"127.0.0.1:@PORT@\"];\nlog_level = \"info\";\n"

Test(cli, config_value_out_of_range) {
        expect_config_error(HEAD "max_clients = 0;\n", 3, "max_clients");
}

Test(cli, config_unknown_setting) {
        expect_config_error(HEAD "max_clinets = 10;\n", 3, "max_clinets");
}

Test(cli, config_wrong_type) {
        expect_config_error(HEAD "max_clients = \"many\";\n", 3, "max_clients");
}

Test(cli, config_bad_listen_address) {
        expect_config_error("log_level = \"info\";\n# the next line is wrong\n"
                            "listen = [\"127.0.0.1:99999\"];\n",
                            3, "listen");
}

Test(cli, config_bad_slow_client_value) {
        expect_config_error(HEAD "\nslow_client = \"ignore\";\n", 4, "slow_client");
}

Test(cli, config_bad_log_level) {
        expect_config_error("listen = [\"127.0.0.1:@PORT@\"];\nlog_level = \"loud\";\n", 2, "log_level");
}

Test(cli, config_bad_prefix_directive) {
        expect_config_error(HEAD "prefix = \"%x \";\n", 3, "prefix");
}

Test(cli, config_queue_smaller_than_message) {
        /* Either line may be blamed, but one of the two settings named. */
        Daemon d;
        int st = run(&d, HEAD "max_message_bytes = 65536;\nmax_queue_bytes = 2048;\n", NULL);
        char *log = daemon_log_text(&d);
        cr_assert(st == 78, "exit %d (want 78); log:\n%s", st, log);
        const char *a[] = {"error: ", "eb.conf:4", "'max_queue_bytes'", NULL};
        const char *b[] = {"error: ", "eb.conf:3", "'max_message_bytes'", NULL};
        cr_assert(daemon_log_line_has(&d, a, 0) || daemon_log_line_has(&d, b, 0),
                  "error does not name the line and setting; log:\n%s", log);
        free(log);
        daemon_stop(&d);
}

Test(cli, config_syntax_error) {
        Daemon d;
        int st = run(&d, HEAD "max_clients = ;\n", NULL);
        char *log = daemon_log_text(&d);
        cr_assert(st == 78, "exit %d for a syntax error (want 78); log:\n%s", st, log);
        const char *n[] = {"error: ", "eb.conf:3", NULL};
        cr_assert(daemon_log_line_has(&d, n, 0), "syntax error not located; log:\n%s", log);
        free(log);
        daemon_stop(&d);
}

Test(cli, missing_config_file) {
        Daemon d;
        daemon_init(&d);
        char path[160];
        snprintf(path, sizeof path, "%s/no-such.conf", d.dir);
        char *argv[] = {(char *)"-c", path, NULL};
        daemon_exec(&d, NULL, argv);
        int st = daemon_wait(&d, 5000);
        char *log = daemon_log_text(&d);
        cr_assert(st == 78, "exit %d for a missing -c file (want 78); log:\n%s", st, log);
        cr_assert(strstr(log, path), "the error does not name %s; log:\n%s", path, log);
        cr_assert(strstr(log, "error: "), "no \"error: \" line; log:\n%s", log);
        free(log);
        daemon_stop(&d);
}

Test(cli, check_config_valid) {
        char *argvs[2][2] = {{(char *)"-t", NULL}, {(char *)"--check-config", NULL}};
        for (int i = 0; i < 2; i++) {
                Daemon d;
                int st = run(&d, HEAD "max_clients = 4321;\nprefix = \"%i> \";\n", argvs[i]);
                char *out = daemon_out_text(&d), *log = daemon_log_text(&d);
                cr_assert(st == 0, "%s on a valid file: exit %d; stderr:\n%s", argvs[i][0], st, log);
                cr_assert(strstr(out, "max_clients") && strstr(out, "4321"),
                          "%s does not print the effective settings on stdout:\n%s", argvs[i][0], out);
                cr_assert(strstr(out, "max_queue_bytes") && strstr(out, "1048576"),
                          "%s does not print defaults it applied:\n%s", argvs[i][0], out);
                free(out);
                free(log);
                daemon_stop(&d);
        }
}

/* Settings that could not be printed are a failure, not "valid". */
Test(cli, check_config_stdout_full) {
        char *argv[] = {(char *)"-t", NULL};
        Daemon d;
        daemon_init(&d);
        cr_assert(symlink("/dev/full", d.out_path) == 0, "symlink: %s", strerror(errno));
        daemon_exec(&d, HEAD, argv);
        int st = daemon_wait(&d, 5000);
        char *log = daemon_log_text(&d);
        cr_assert(st == 1, "-t with stdout on /dev/full: exit %d (want 1); stderr:\n%s", st, log);
        cr_assert(strstr(log, "No space left on device"), "the error is not shown; stderr:\n%s", log);
        free(log);
        daemon_stop(&d);
}

Test(cli, check_config_invalid) {
        char *argv[] = {(char *)"--check-config", NULL};
        Daemon d;
        int st = run(&d, HEAD "max_clients = 0;\n", argv);
        char *log = daemon_log_text(&d);
        cr_assert(st != 0, "--check-config accepted an invalid file");
        cr_assert(st == 78, "--check-config on an invalid file: exit %d (want 78, EX_CONFIG)", st);
        const char *n[] = {"eb.conf:3", "max_clients", NULL};
        cr_assert(daemon_log_line_has(&d, n, 0), "the error is not shown; stderr:\n%s", log);
        free(log);
        daemon_stop(&d);
}

Test(cli, help) {
        char *argvs[2][2] = {{(char *)"--help", NULL}, {(char *)"-h", NULL}};
        for (int i = 0; i < 2; i++) {
                Daemon d;
                int st = run(&d, NULL, argvs[i]);
                char *out = daemon_out_text(&d);
                cr_assert(st == 0, "%s: exit %d", argvs[i][0], st);
                cr_assert(strstr(out, "epoll-broadcaster.conf"),
                          "%s does not mention the default config path on stdout:\n%s", argvs[i][0], out);
#ifdef DEFAULT_CONFIG_PATH
                cr_assert(strstr(out, DEFAULT_CONFIG_PATH), "%s does not print %s:\n%s", argvs[i][0],
                          DEFAULT_CONFIG_PATH, out);
#endif
                cr_assert(strstr(out, "--config") && strstr(out, "--check-config"),
                          "%s does not list the options:\n%s", argvs[i][0], out);
                free(out);
                daemon_stop(&d);
        }
}

Test(cli, version) {
        char *argvs[2][2] = {{(char *)"--version", NULL}, {(char *)"-V", NULL}};
        for (int i = 0; i < 2; i++) {
                Daemon d;
                int st = run(&d, NULL, argvs[i]);
                char *out = daemon_out_text(&d);
                cr_assert(st == 0, "%s: exit %d", argvs[i][0], st);
#ifdef PACKAGE_VERSION
                cr_assert(strstr(out, PACKAGE_VERSION), "%s does not print %s:\n%s", argvs[i][0],
                          PACKAGE_VERSION, out);
#else
                cr_assert(strpbrk(out, "0123456789"), "%s prints no version:\n%s", argvs[i][0], out);
#endif
                free(out);
                daemon_stop(&d);
        }
}

Test(cli, unknown_option_exits_2) {
        char *argvs[2][2] = {{(char *)"--no-such-option", NULL}, {(char *)"-Z", NULL}};
        for (int i = 0; i < 2; i++) {
                Daemon d;
                int st = run(&d, NULL, argvs[i]);
                char *log = daemon_log_text(&d);
                cr_assert(st == 2, "%s: exit %d (want 2)", argvs[i][0], st);
                cr_assert(log[0] != '\0', "%s: nothing said on stderr", argvs[i][0]);
                free(log);
                daemon_stop(&d);
        }
}

Test(cli, unexpected_argument_exits_2) {
        char *argv[] = {(char *)"stray-argument", NULL};
        Daemon d;
        int st = run(&d, HEAD, argv);
        cr_assert(st == 2, "a stray argument: exit %d (want 2, usage error)", st);
        daemon_stop(&d);
}

Test(cli, address_in_use_exits_1) {
        Daemon d;
        daemon_init(&d);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {
                .sin_family = AF_INET, .sin_port = htons(d.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cr_assert(bind(s, (struct sockaddr *)&a, sizeof a) == 0, "bind: %s", strerror(errno));
        cr_assert(listen(s, 8) == 0);
        daemon_exec(&d, HEAD, NULL);
        int st = daemon_wait(&d, 5000);
        char *log = daemon_log_text(&d);
        cr_assert(st == 1, "address in use: exit %d (want 1); log:\n%s", st, log);
        cr_assert(strstr(log, "error: "), "no \"error: \" line; log:\n%s", log);
        free(log);
        close(s);
        daemon_stop(&d);
}

static int unix_socket_at(const char *path, bool do_listen) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
        cr_assert(bind(s, (struct sockaddr *)&a, sizeof a) == 0, "bind %s: %s", path, strerror(errno));
        if (do_listen)
                cr_assert(listen(s, 8) == 0);
        return s;
}

#define UNIX_CONF "listen = [\"127.0.0.1:@PORT@\", \"@DIR@/eb.sock\"];\nlog_level = \"info\";\n"

/* A socket file left by a dead process (nothing listening) is replaced. */
Test(cli, stale_unix_socket_is_replaced) {
        Daemon d;
        daemon_init(&d);
        char path[128];
        snprintf(path, sizeof path, "%s/eb.sock", d.dir);
        close(unix_socket_at(path, true)); /* the file stays, nobody listens */
        struct stat st;
        cr_assert(stat(path, &st) == 0 && S_ISSOCK(st.st_mode));
        cr_assert(!harness_unix_listening(path));

        daemon_exec(&d, UNIX_CONF, NULL);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        daemon_wait_unix_listening(&d, path, 5000);
        int t = client_connect(d.port);
        int u = client_connect_unix(path);
        int both[2] = {t, u};
        clients_sync(both, 2, false);
        client_send_str(t, "to unix\n");
        char buf[64];
        size_t n = client_recv_line(u, buf, sizeof buf, 5000);
        cr_assert(n == 8 && memcmp(buf, "to unix\n", 8) == 0);
        close(t);
        close(u);
        daemon_stop(&d);
}

/* A socket file another process listens on is an address in use: exit 1,
 * and that process keeps its socket. */
Test(cli, unix_socket_in_use_exits_1) {
        Daemon d;
        daemon_init(&d);
        char path[128];
        snprintf(path, sizeof path, "%s/eb.sock", d.dir);
        int s = unix_socket_at(path, true);
        daemon_exec(&d, UNIX_CONF, NULL);
        int st = daemon_wait(&d, 5000);
        char *log = daemon_log_text(&d);
        cr_assert(st == 1, "Unix socket in use: exit %d (want 1); log:\n%s", st, log);
        free(log);
        struct stat sb;
        cr_assert(stat(path, &sb) == 0, "the daemon removed another process's socket file");
        cr_assert(harness_unix_listening(path));
        int c = client_connect_unix(path);
        close(c);
        close(s);
        daemon_stop(&d);
}

/* The socket file the daemon created is removed after a clean stop. */
Test(cli, unix_socket_removed_after_clean_stop) {
        Daemon d;
        daemon_spawn_raw(&d, UNIX_CONF, NULL);
        char path[128];
        snprintf(path, sizeof path, "%s/eb.sock", d.dir);
        daemon_wait_unix_listening(&d, path, 5000);
        daemon_wait_tcp_listening(&d, d.port, 5000);
        daemon_signal(&d, SIGTERM);
        int st = daemon_wait(&d, 5000);
        cr_assert(st == 0, "exit %d after SIGTERM", st);
        struct stat sb;
        cr_assert(stat(path, &sb) < 0 && errno == ENOENT, "%s still exists after a clean stop", path);
        /* And a restart in the same place works. */
        daemon_exec(&d, UNIX_CONF, NULL);
        daemon_wait_unix_listening(&d, path, 5000);
        daemon_signal(&d, SIGINT);
        cr_assert(daemon_wait(&d, 5000) == 0);
        cr_assert(stat(path, &sb) < 0 && errno == ENOENT);
        daemon_stop(&d);
}
