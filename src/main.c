/* main: options, configuration, signal mask, then the server. Owns the exit
 * status contract of epoll-broadcaster(8): 0 clean stop, 2 usage, 78 configuration, 1
 * anything else. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "build-config.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "server.h"

#define EXIT_USAGE 2

static void help(void) {
        printf("Usage: epoll-broadcaster [OPTIONS]\n"
               "Relay every line a client sends to all other connected clients.\n\n"
               "  -c, --config FILE    read FILE (default: %s)\n"
               "  -t, --check-config   validate the configuration, print it, exit\n"
               "  -q, --quiet          with --check-config: print nothing when valid\n"
               "  -h, --help           show this help\n"
               "  -V, --version        show the version\n\n"
               "Settings: epoll-broadcaster.conf(5). Signals: TERM/INT stop gracefully,\n"
               "HUP reloads the configuration, USR1 logs statistics.\n",
               DEFAULT_CONFIG_PATH);
}

/* Services start with a soft limit of 1024 descriptors: take what the hard
 * limit allows, so max_clients can be reached. */
static void raise_fd_limit(uint32_t max_clients) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
                log_warning("cannot read RLIMIT_NOFILE: %m");
                return;
        }
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t want = rl.rlim_max;
                rl.rlim_cur = want;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        log_warning("cannot raise RLIMIT_NOFILE to %llu: %m", (unsigned long long)want);
                else
                        (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        /* Listeners, signalfd, timerfd, epoll, stdio and the reserve fd. */
        const rlim_t overhead = 32;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max_clients + overhead)
                log_warning("max_clients is %" PRIu32 " but only %llu file descriptors are allowed "
                            "(LimitNOFILE=); connections past that are refused",
                            max_clients, (unsigned long long)rl.rlim_cur);
}

static int block_signals(void) {
        sigset_t mask;
        sigemptyset(&mask);
        int sigs[] = {SERVER_SIGNALS};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
                sigaddset(&mask, sigs[i]);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        /* Writes use MSG_NOSIGNAL; this covers anything else. */
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return -errno;
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 't'},
                {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},      {},
        };
        const char *config_path = DEFAULT_CONFIG_PATH;
        bool explicit_path = false, check_only = false, quiet = false;
        int opt;

        log_open();
        while ((opt = getopt_long(argc, argv, "c:tqhV", options, NULL)) >= 0) {
                switch (opt) {
                case 'c':
                        config_path = optarg;
                        explicit_path = true;
                        break;
                case 't':
                        check_only = true;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'V':
                        printf("epoll-broadcaster %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                default:
                        (void)fprintf(stderr, "Try 'epoll-broadcaster --help' for more information.\n");
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                log_error("unexpected argument '%s'; try --help", argv[optind]);
                return EXIT_USAGE;
        }

        Config *config;
        bool used_defaults = false;
        char err[1024];
        /* The TLS files are checked here too, before anything listens (and
         * by --check-config, so that a reload with a bad key fails
         * visibly). */
        TlsContext *tls = NULL;
        int r = server_load_config(config_path, explicit_path, &config, &tls, &used_defaults, err,
                                   sizeof(err));
        if (r < 0) {
                log_error("%s", err);
                if (!check_only)
                        notify_failed(-r, "Configuration error: %s", err);
                return CONFIG_EXIT_CODE;
        }
        if (check_only)
                tls = tls_context_free(tls);
        if (check_only && quiet) {
                config_free(config);
                return EXIT_SUCCESS;
        }
        if (check_only) {
                if (used_defaults)
                        printf("# %s does not exist: built-in defaults\n", config_path);
                config_print(config, stdout);
                config_free(config);
                /* The settings were not printed if stdout failed (full disk, closed pipe). */
                if (fflush(stdout) != 0 || ferror(stdout)) {
                        log_error("cannot write the settings to stdout: %m");
                        return EXIT_FAILURE;
                }
                return EXIT_SUCCESS;
        }
        log_set_max_priority((int)config->log_level);
        if (used_defaults)
                log_notice("%s does not exist; using the built-in defaults", config_path);

        r = block_signals();
        if (r < 0) {
                log_error("cannot set up signal handling: %s", strerror(-r));
                tls_context_free(tls);
                config_free(config);
                return EXIT_FAILURE;
        }
        raise_fd_limit(config->max_clients);

        _cleanup_server_ Server *server = NULL;
        r = server_new(&server, config, config_path, explicit_path);
        if (r >= 0) {
                server_set_tls(server, TAKE_PTR(tls));
                r = server_listen(server);
        }
        tls_context_free(tls);
        if (r < 0) {
                notify_failed(-r, "Failed to start: %s", log_last_error());
                return EXIT_FAILURE;
        }
        r = server_run(server);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
