/*
 * master.h - the supervisor: forks the workers and the flusher, restarts any
 * that die (with backoff), and on SIGTERM/SIGINT stops the workers, lets the
 * flusher drain the token queue, and exits 0. It never serves requests and
 * takes no part in the queue protocol.
 */
#ifndef TOKEND_MASTER_H
#define TOKEND_MASTER_H

#include "tokend/admin_token.h"
#include "tokend/config.h"
#include "tokend/key_set.h"
#include "tokend/shm_segment.h"

/* Returns the exit status of tokend. */
int master_run(const struct tokend_config *config, const struct key_set *keys,
               const struct admin_token *admin_token, struct shm_segment *segment, int listen_fd,
               const char *unix_path_to_remove);

#endif
