/*
 * test_listen_socket.c - taking the socket systemd passes by socket
 * activation (listen_socket_from_systemd in src/listen_socket.c): only
 * when LISTEN_PID is this process, exactly one socket, a listening one,
 * made non-blocking; the variables are gone from the environment after
 * every call.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tokend/listen_socket.h"
#include "tokend/status.h"
#include "unit_test.h"

static void set_listen_env(long pid, const char *fds)
{
    char text[32];
    snprintf(text, sizeof(text), "%ld", pid);
    setenv("LISTEN_PID", text, 1);
    setenv("LISTEN_FDS", fds, 1);
    setenv("LISTEN_FDNAMES", "tokend.socket", 1);
}

static bool env_cleared(void)
{
    return getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
           getenv("LISTEN_FDNAMES") == NULL;
}

/* Puts a listening (or, with listening = false, a plain) socket on fd 3. */
static void socket_on_fd3(bool listening)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listening) {
        /* An address length of just the family asks for an autobound
         * abstract name: nothing to clean up afterwards. */
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        CHECK_INT(bind(fd, (struct sockaddr *)&addr, sizeof(sa_family_t)), 0);
        CHECK_INT(listen(fd, 4), 0);
    }
    if (fd != 3) {
        CHECK_INT(dup2(fd, 3), 3);
        close(fd);
    }
}

static void test_nothing_passed(void)
{
    char error[256];
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    CHECK_INT(listen_socket_from_systemd(error, sizeof(error)), TK_DECLINED);
    set_listen_env((long)getpid() + 1, "1"); /* meant for another process */
    CHECK_INT(listen_socket_from_systemd(error, sizeof(error)), TK_DECLINED);
    CHECK(env_cleared());
}

static void test_one_listening_socket(void)
{
    char error[256];
    socket_on_fd3(true);
    set_listen_env((long)getpid(), "1");
    CHECK_INT(listen_socket_from_systemd(error, sizeof(error)), 3);
    CHECK(env_cleared());
    CHECK((fcntl(3, F_GETFL) & O_NONBLOCK) != 0);
    close(3);
}

static void test_refused(void)
{
    char error[256];
    socket_on_fd3(true);
    set_listen_env((long)getpid(), "2");
    CHECK_INT(listen_socket_from_systemd(error, sizeof(error)), TK_ERROR);
    CHECK_STR(error, "systemd passed 2 sockets (LISTEN_FDS); tokend serves exactly one: give "
                     "its .socket unit one ListenStream=");
    CHECK(env_cleared());
    close(3);
    socket_on_fd3(false);
    set_listen_env((long)getpid(), "1");
    CHECK_INT(listen_socket_from_systemd(error, sizeof(error)), TK_ERROR);
    CHECK_STR(error, "fd 3 from systemd (LISTEN_FDS) is not a listening stream socket");
    close(3);
}

int main(void)
{
    RUN(test_nothing_passed);
    RUN(test_one_listening_socket);
    RUN(test_refused);
    return unit_test_finish();
}
