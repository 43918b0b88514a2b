/*
 * worker.h - one pre-forked worker process: builds its handler context
 * (client cache, lazy database connection) and serves FastCGI requests until
 * told to stop.
 */
#ifndef TOKEND_WORKER_H
#define TOKEND_WORKER_H

#include "tokend/config.h"
#include "tokend/key_set.h"

/* Runs in the child after fork. Returns the process exit status (0 after a
 * requested stop, 1 on a start-up failure, logged). */
int worker_main(const struct tokend_config *config, const struct key_set *keys, int listen_fd);

#endif
