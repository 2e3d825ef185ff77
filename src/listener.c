/* Listener: owns a listening fd and, for Unix sockets it created, the socket
 * file. It knows nothing of clients; the server decides what to do with an
 * accepted connection. */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include "log.h"

/* A Unix socket path that exists: is anything listening on it? */
static int unix_path_stale(const SockAddr *a) {
        struct stat st;
        if (lstat(a->un.sun_path, &st) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EADDRINUSE;
        /* Non-blocking: a listener with a full backlog (EAGAIN) is in use,
         * and must not stall the start. */
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe < 0)
                return -errno;
        if (connect(probe, &a->sa, a->len) == 0)
                return -EADDRINUSE;
        return errno == ECONNREFUSED ? 0 : -EADDRINUSE;
}

static int listener_bind(const SockAddr *a) {
        int family = a->sa.sa_family;
        _cleanup_close_ int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (family != AF_UNIX) {
                int on = 1;
                if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
                        return -errno;
        }
        if (family == AF_INET6) {
                /* "[::]:port" means IPv6 only; "*:port" means both. */
                int v6only = !a->any;
                if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
                        return -errno;
        }
        if (bind(fd, &a->sa, a->len) < 0)
                return -errno;
        if (listen(fd, LISTENER_BACKLOG) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int listener_open(Listener *l, const SockAddr *a) {
        *l = (Listener){.addr = *a, .src.fd = -1};
        list_init(&l->src.ready);
        addr_format_listen(a, l->name, sizeof(l->name));

        int fd = listener_bind(a);
        if (fd == -EADDRINUSE && a->sa.sa_family == AF_UNIX) {
                int r = unix_path_stale(a);
                if (r < 0)
                        return r == -ENOENT ? fd : r;
                if (unlink(a->un.sun_path) < 0 && errno != ENOENT)
                        return -errno;
                fd = listener_bind(a);
        }
        if (fd < 0)
                return fd;
        l->owns_path = a->sa.sa_family == AF_UNIX;
        l->src.fd = fd;
        return 0;
}

int listener_adopt(Listener *l, int fd) {
        *l = (Listener){.src.fd = -1};
        list_init(&l->src.ready);
        int r = sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOTSOCK;
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        l->addr.len = sizeof(l->addr.un);
        if (getsockname(fd, &l->addr.sa, &l->addr.len) < 0)
                return -errno;
        addr_format_listen(&l->addr, l->name, sizeof(l->name));
        /* systemd owns the socket and any file behind it. */
        l->owns_path = false;
        l->src.fd = fd;
        return 0;
}

int listener_adopt_passed(Listener **ret, size_t *ret_n) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names);
        if (n < 0) {
                log_error("cannot read the sockets passed by systemd: %s", strerror(-n));
                return n;
        }
        *ret = NULL;
        *ret_n = 0;
        Listener *ls = n > 0 ? calloc((size_t)n, sizeof(Listener)) : NULL;
        int r = n > 0 && !ls ? -ENOMEM : 0;
        for (int i = 0; r >= 0 && i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                r = listener_adopt(&ls[i], fd);
                if (r < 0) {
                        log_error("passed file descriptor %d is not a listening stream socket: %s", fd,
                                  strerror(-r));
                        r = -ENOTSOCK;
                        break;
                }
                /* systemd names unnamed sockets "unknown". */
                if (names && names[i] && strcmp(names[i], "unknown") != 0) {
                        ls[i].fdname = strdup(names[i]);
                        if (!ls[i].fdname)
                                r = -ENOMEM;
                }
        }
        for (int i = 0; names && names[i]; i++)
                free(names[i]);
        free(names);
        if (r < 0) {
                if (r == -ENOMEM)
                        log_error("out of memory");
                for (int i = 0; i < n; i++) {
                        safe_close(SD_LISTEN_FDS_START + i);
                        if (ls)
                                free(ls[i].fdname);
                }
                free(ls);
                return r;
        }
        *ret = ls;
        *ret_n = (size_t)n;
        return 0;
}

int listener_accept(Listener *l, struct sockaddr_storage *peer, socklen_t *peer_len) {
        *peer_len = sizeof(*peer);
        int fd = accept4(l->src.fd, (struct sockaddr *)peer, peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static void spec_free_origins(ConnSpec *spec) {
        for (size_t i = 0; i < spec->n_origins; i++)
                free(spec->origins[i]);
        free(spec->origins);
        spec->origins = NULL;
        spec->n_origins = 0;
}

int listener_set_spec(Listener *l, bool tls, uint8_t protocol, uint8_t role, char *const *origins,
                      size_t n_origins) {
        spec_free_origins(&l->spec);
        l->spec = (ConnSpec){.tls = tls, .protocol = protocol, .role = role};
        if (n_origins == 0)
                return 0;
        l->spec.origins = calloc(n_origins, sizeof(char *));
        if (!l->spec.origins)
                return -ENOMEM;
        for (size_t i = 0; i < n_origins; i++) {
                l->spec.origins[i] = strdup(origins[i]);
                if (!l->spec.origins[i]) {
                        l->spec.n_origins = i;
                        spec_free_origins(&l->spec);
                        return -ENOMEM;
                }
        }
        l->spec.n_origins = n_origins;
        return 0;
}

void listener_close(Listener *l) {
        l->src.fd = safe_close(l->src.fd);
        free(l->fdname);
        l->fdname = NULL;
        spec_free_origins(&l->spec);
        if (l->owns_path) {
                (void)unlink(l->addr.un.sun_path);
                l->owns_path = false;
        }
}
