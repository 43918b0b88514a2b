/*
 * test_service_notify.c - the sd_notify sender (src/service_notify.c)
 * against a datagram socket the test binds where $NOTIFY_SOCKET points:
 * messages arrive as sent, RELOADING=1 gets MONOTONIC_USEC, abstract
 * socket names work, the variable is taken out of the environment, and
 * without it (or with a name that is no socket address) nothing is sent.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tokend/service_notify.h"
#include "unit_test.h"

static char temp_dir[128];

/* A datagram socket bound at `name` ('@' = abstract), with a receive
 * timeout so a missing message fails the test instead of hanging it. */
static int bind_listener(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(addr.sun_path, name, len);
    if (name[0] == '@') {
        addr.sun_path[0] = '\0';
    }
    CHECK_INT(bind(fd, (struct sockaddr *)&addr,
                   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
              0);
    struct timeval timeout = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    return fd;
}

static void receive(int fd, char *out, size_t size)
{
    ssize_t got = recv(fd, out, size - 1, 0);
    CHECK(got > 0);
    out[got > 0 ? got : 0] = '\0';
}

static void test_messages_reach_the_socket(void)
{
    char path[256], message[1024];
    snprintf(path, sizeof(path), "%s/notify", temp_dir);
    int fd = bind_listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    service_notify_init();
    CHECK(getenv("NOTIFY_SOCKET") == NULL);
    service_notify("READY=1\nSTATUS=serving with %d workers", 4);
    receive(fd, message, sizeof(message));
    CHECK_STR(message, "READY=1\nSTATUS=serving with 4 workers");

    service_notify("RELOADING=1\nSTATUS=reloading %s", "/etc/tokend.conf");
    receive(fd, message, sizeof(message));
    const char *prefix = "RELOADING=1\nSTATUS=reloading /etc/tokend.conf\nMONOTONIC_USEC=";
    CHECK(strncmp(message, prefix, strlen(prefix)) == 0);
    const char *usec = message + strlen(prefix);
    CHECK(strlen(usec) > 0 && strspn(usec, "0123456789") == strlen(usec));
    close(fd);
    unlink(path);
}

static void test_abstract_socket(void)
{
    char name[64], message[256];
    snprintf(name, sizeof(name), "@tokend-test-notify-%d", (int)getpid());
    int fd = bind_listener(name);
    setenv("NOTIFY_SOCKET", name, 1);
    service_notify_init();
    service_notify("STOPPING=1");
    receive(fd, message, sizeof(message));
    CHECK_STR(message, "STOPPING=1");
    close(fd);
}

static void test_without_a_socket_nothing_is_sent(void)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/quiet", temp_dir);
    int fd = bind_listener(path);
    struct timeval short_wait = {.tv_usec = 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof(short_wait));
    /* Not an address: relative. Then no variable at all. */
    setenv("NOTIFY_SOCKET", "relative/notify", 1);
    service_notify_init();
    CHECK(getenv("NOTIFY_SOCKET") == NULL);
    service_notify("READY=1");
    unsetenv("NOTIFY_SOCKET");
    service_notify_init();
    service_notify("READY=1");
    char byte;
    CHECK(recv(fd, &byte, 1, 0) < 0);
    close(fd);
    unlink(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof(temp_dir), "%s/test_service_notify.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(temp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_messages_reach_the_socket);
    RUN(test_abstract_socket);
    RUN(test_without_a_socket_nothing_is_sent);
    rmdir(temp_dir);
    return unit_test_finish();
}
