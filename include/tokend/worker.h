/*
 * worker.h - one pre-forked worker process: builds its handler context
 * (client cache, lazy database connection) and serves FastCGI requests until
 * told to stop. Every token it issues goes into `queue` before the answer.
 */
#ifndef TOKEND_WORKER_H
#define TOKEND_WORKER_H

#include "tokend/admin_token.h"
#include "tokend/config.h"
#include "tokend/key_set.h"
#include "tokend/shm_segment.h"

/* Runs in the child after fork. Returns the process exit status (0 after a
 * requested stop, 1 on a start-up failure, logged). */
int worker_main(const struct tokend_config *config, const struct key_set *keys,
                const struct admin_token *admin_token, int listen_fd, struct shm_segment *segment);

#endif
