/*
 * child_process.c - the common start of the master's children.
 *
 * The stop flag is the child's own (a worker's, the flusher's); the handler
 * only stores into it, the one thing a signal handler may safely do. The
 * signals stay blocked outside the child's chosen waiting points, so the
 * handler never interrupts a system call in the middle of a request or a
 * database transaction.
 *
 * Readiness: the master may hand a child the write end of a pipe before
 * the child starts its work (child_process_set_ready_fd); the child writes
 * one byte on it once it can serve (child_process_ready) and closes it.
 * End of file without that byte tells the master the child died first.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tokend/child_process.h"

static volatile sig_atomic_t *stop_flag;
static int ready_fd = -1;

static void on_stop_signal(int signo)
{
    (void)signo;
    if (stop_flag != NULL) {
        *stop_flag = 1;
    }
}

bool child_process_setup(const char *name, volatile sig_atomic_t *stop, sigset_t *stop_signals,
                         sigset_t *wait_mask)
{
    pid_t master = getppid();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    prctl(PR_SET_NAME, name);
    stop_flag = stop;
    struct sigaction stop_action = {.sa_handler = on_stop_signal};
    sigemptyset(&stop_action.sa_mask);
    sigaction(SIGTERM, &stop_action, NULL);
    sigaction(SIGINT, &stop_action, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(stop_signals);
    sigaddset(stop_signals, SIGTERM);
    sigaddset(stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, stop_signals, wait_mask);
    sigdelset(wait_mask, SIGTERM);
    sigdelset(wait_mask, SIGINT);
    return getppid() == master;
}

void child_process_set_ready_fd(int fd)
{
    ready_fd = fd;
}

void child_process_ready(void)
{
    if (ready_fd < 0) {
        return;
    }
    const char byte = 'R';
    while (write(ready_fd, &byte, 1) < 0 && errno == EINTR) {
    }
    close(ready_fd);
    ready_fd = -1;
}
