/*
 * listen_socket.c - the FastCGI listening socket.
 *
 * Either inherited on fd 0 (spawn-fcgi and mod_fcgid put it there: the
 * FastCGI spec's FCGI_LISTENSOCK_FILENO), passed by systemd socket
 * activation (fd 3, announced by LISTEN_PID and LISTEN_FDS, sd_listen_fds(3);
 * those variables are removed once read so no child mistakes them for its
 * own), or bound here from `listen`:
 * "unix:/path" or "host:port" (host may be a name, an IPv4 address or a
 * bracketed IPv6 address). A unix socket file left by a crashed instance is
 * removed only if nothing answers on it, so a second instance never steals
 * a live socket. The socket is made non-blocking: workers wait for it with
 * epoll and accept only when a connection is ready, so an accept that
 * another worker won returns EAGAIN instead of blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tokend/listen_socket.h"
#include "tokend/status.h"

#define SYSTEMD_FIRST_FD 3 /* SD_LISTEN_FDS_START */

static bool is_listening_socket(int fd);

bool listen_socket_inherited(void)
{
    return is_listening_socket(STDIN_FILENO);
}

static bool is_listening_socket(int fd)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0;
}

int listen_socket_from_systemd(char *error, size_t error_size)
{
    const char *pid_text = getenv("LISTEN_PID");
    const char *fds_text = getenv("LISTEN_FDS");
    if (pid_text == NULL || fds_text == NULL) {
        return TK_DECLINED;
    }
    char *end;
    long pid = strtol(pid_text, &end, 10);
    bool for_us = *end == '\0' && pid == (long)getpid();
    long count = strtol(fds_text, &end, 10);
    bool count_ok = *end == '\0' && end != fds_text;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!for_us) {
        return TK_DECLINED;
    }
    if (!count_ok || count != 1) {
        snprintf(error, error_size,
                 "systemd passed %ld sockets (LISTEN_FDS); tokend serves exactly one: give its "
                 ".socket unit one ListenStream=",
                 count_ok ? count : 0L);
        return TK_ERROR;
    }
    int fd = SYSTEMD_FIRST_FD;
    if (!is_listening_socket(fd)) {
        snprintf(error, error_size,
                 "fd %d from systemd (LISTEN_FDS) is not a listening stream socket", fd);
        return TK_ERROR;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        snprintf(error, error_size, "socket from systemd on fd %d: %s", fd, strerror(errno));
        return TK_ERROR;
    }
    return fd;
}

int listen_socket_describe(int fd, char *out, size_t out_size)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        return TK_ERROR;
    }
    char host[NI_MAXHOST], port[NI_MAXSERV];
    switch (addr.ss_family) {
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&addr;
        if (len <= offsetof(struct sockaddr_un, sun_path) || un->sun_path[0] == '\0') {
            return TK_ERROR; /* unnamed or abstract */
        }
        snprintf(out, out_size, "unix:%.*s", (int)(len - offsetof(struct sockaddr_un, sun_path)),
                 un->sun_path);
        return TK_OK;
    }
    case AF_INET:
    case AF_INET6:
        if (getnameinfo((struct sockaddr *)&addr, len, host, sizeof(host), port, sizeof(port),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
            return TK_ERROR;
        }
        snprintf(out, out_size, addr.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
        return TK_OK;
    default:
        return TK_ERROR;
    }
}

const char *listen_socket_unix_path(const char *spec)
{
    return strncmp(spec, "unix:", 5) == 0 ? spec + 5 : NULL;
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int listen_socket_adopt_inherited(char *error, size_t error_size)
{
    if (set_nonblocking(STDIN_FILENO) != 0) {
        snprintf(error, error_size, "inherited socket on fd 0: %s", strerror(errno));
        return TK_ERROR;
    }
    return STDIN_FILENO;
}

static int open_unix(const char *path, unsigned mode, int backlog, char *error, size_t error_size)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (path[0] == '\0' || strlen(path) >= sizeof(addr.sun_path)) {
        snprintf(error, error_size, "unix socket path '%s' is empty or too long", path);
        return TK_ERROR;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(error, error_size, "socket: %s", strerror(errno));
        return TK_ERROR;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(error, error_size, "%s exists and is not a socket", path);
            goto fail;
        }
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            snprintf(error, error_size, "%s is in use by a running server", path);
            goto fail;
        }
        close(fd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || unlink(path) != 0) {
            snprintf(error, error_size, "cannot replace stale socket %s: %s", path,
                     strerror(errno));
            goto fail;
        }
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        snprintf(error, error_size, "bind %s: %s", path, strerror(errno));
        goto fail;
    }
    if (chmod(path, mode) != 0) {
        snprintf(error, error_size, "chmod %s: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    if (listen(fd, backlog) != 0 || set_nonblocking(fd) != 0) {
        snprintf(error, error_size, "listen %s: %s", path, strerror(errno));
        unlink(path);
        goto fail;
    }
    return fd;
fail:
    if (fd >= 0) {
        close(fd);
    }
    return TK_ERROR;
}

static int open_tcp(const char *spec, int backlog, char *error, size_t error_size)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || (size_t)(colon - spec) >= sizeof(host) ||
        colon[1] == '\0') {
        snprintf(error, error_size, "listen '%s': expected unix:/path or host:port", spec);
        return TK_ERROR;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host) - 2);
        host[strlen(host) - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int gai = getaddrinfo(host, colon + 1, &hints, &found);
    if (gai != 0) {
        snprintf(error, error_size, "listen '%s': %s", spec, gai_strerror(gai));
        return TK_ERROR;
    }
    int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, backlog) != 0 ||
        set_nonblocking(fd) != 0) {
        snprintf(error, error_size, "listen '%s': %s", spec, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(found);
        return TK_ERROR;
    }
    freeaddrinfo(found);
    return fd;
}

int listen_socket_open(const char *spec, unsigned mode, int backlog, char *error, size_t error_size)
{
    const char *path = listen_socket_unix_path(spec);
    return path != NULL ? open_unix(path, mode, backlog, error, error_size)
                        : open_tcp(spec, backlog, error, error_size);
}
