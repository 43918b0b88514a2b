/*
 * worker.h - one worker process: builds its handler context (client cache,
 * lazy database connection) and serves FastCGI requests until told to stop.
 * Every token it issues goes into `queue` before the answer. Forked by
 * tokend's master, or started on its own by a process manager
 * (`tokend --worker` under Apache's mod_fcgid).
 */
#ifndef TOKEND_WORKER_H
#define TOKEND_WORKER_H

#include "tokend/admin_token.h"
#include "tokend/config.h"
#include "tokend/key_set.h"
#include "tokend/shm_segment.h"

/* Who started the worker, which decides what it may assume. */
enum worker_launch {
    WORKER_FORKED,    /* by tokend's master, which reaps it and retires its stats slot */
    WORKER_STANDALONE /* by a process manager that sends it one request at a time
                         (mod_fcgid): libfcgi transport whatever `transport` says, the
                         instance's worker count is not tokend's to know, and it
                         retires its own stats slot on the way out */
};

/* Runs the worker in the calling process (the child after fork, or the
 * whole `tokend --worker` process). Returns the process exit status (0
 * after a requested stop, 1 on a start-up failure, logged). */
int worker_main(const struct tokend_config *config, const struct key_set *keys,
                const struct admin_token *admin_token, int listen_fd, struct shm_segment *segment,
                enum worker_launch launch);

#endif
