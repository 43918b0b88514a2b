/*
 * child_process.h - what every child of the master (a worker, the flusher)
 * sets up first: it dies with the master, carries a name in ps, and takes
 * stop signals only where it chooses to.
 */
#ifndef TOKEND_CHILD_PROCESS_H
#define TOKEND_CHILD_PROCESS_H

#include <signal.h>
#include <stdbool.h>

/* - PR_SET_PDEATHSIG: SIGTERM when the master dies, so no child serves
 *   or writes unsupervised;
 * - PR_SET_NAME `name` (at most 15 characters): what `ps -o comm` and
 *   /proc/PID/comm show;
 * - SIGTERM and SIGINT set *stop through a handler and stay blocked; the
 *   caller unblocks them only while it waits (ppoll/epoll_pwait with
 *   *wait_mask, or sigtimedwait on *stop_signals), so a stop never cuts a
 *   request or a batch in half;
 * - SIGHUP and SIGPIPE are ignored.
 * Returns false when the master died before the death signal was armed
 * (the caller should stop at once). Cannot fail otherwise. */
bool child_process_setup(const char *name, volatile sig_atomic_t *stop, sigset_t *stop_signals,
                         sigset_t *wait_mask);

/* Remembers the write end of the master's readiness pipe (-1: none).
 * Called in the child right after fork. Cannot fail. */
void child_process_set_ready_fd(int fd);

/* Tells the master this child can serve now: one byte on the readiness
 * pipe, which is then closed. Does nothing without a pipe or the second
 * time. Cannot fail (a master that stopped listening is ignored). */
void child_process_ready(void);

#endif
