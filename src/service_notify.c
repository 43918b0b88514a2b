/*
 * service_notify.c - the sd_notify protocol, written out.
 *
 * The protocol is small and stable (sd_notify(3)): $NOTIFY_SOCKET is the
 * path of a unix datagram socket, or an abstract one when it starts with
 * '@'; a message is newline-separated KEY=VALUE assignments. tokend sends
 * READY=1 once its workers can serve, RELOADING=1 and READY=1 around a
 * reload, STOPPING=1 when it begins to stop, and STATUS= lines people read
 * in `systemctl status`. Linking libsystemd for this would add a
 * dependency for one sendto().
 *
 * State: the socket address, captured once by service_notify_init (the
 * variable is removed from the environment so children do not inherit
 * it). Each message opens, sends on and closes its own socket: messages
 * are rare (start, reload, stop).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tokend/logging.h"
#include "tokend/service_notify.h"

static struct sockaddr_un notify_address;
static socklen_t notify_address_len; /* 0: not under systemd */

void service_notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len = path != NULL ? strlen(path) : 0;
    if (len >= 2 && len < sizeof(notify_address.sun_path) && (path[0] == '/' || path[0] == '@')) {
        memset(&notify_address, 0, sizeof(notify_address));
        notify_address.sun_family = AF_UNIX;
        memcpy(notify_address.sun_path, path, len);
        if (path[0] == '@') {
            notify_address.sun_path[0] = '\0'; /* abstract namespace */
        }
        notify_address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    unsetenv("NOTIFY_SOCKET");
}

void service_notify(const char *fmt, ...)
{
    if (notify_address_len == 0) {
        return;
    }
    char message[1024];
    va_list args;
    va_start(args, fmt);
    int len = vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    if (len < 0 || (size_t)len >= sizeof(message)) {
        len = (int)strlen(message);
    }
    if (strncmp(message, "RELOADING=1", 11) == 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int more = snprintf(message + len, sizeof(message) - (size_t)len, "\nMONOTONIC_USEC=%lld",
                            (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
        if (more > 0 && (size_t)(len + more) < sizeof(message)) {
            len += more;
        }
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, message, (size_t)len, MSG_NOSIGNAL,
                         (const struct sockaddr *)&notify_address, notify_address_len) < 0) {
        log_debug("could not notify systemd (%s)", message);
    }
    if (fd >= 0) {
        close(fd);
    }
}
