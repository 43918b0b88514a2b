/*
 * master.h - the supervisor: forks the workers, restarts any that die (with
 * backoff), and on SIGTERM/SIGINT stops them gracefully and exits 0. It
 * never serves requests and never touches shared state.
 */
#ifndef TOKEND_MASTER_H
#define TOKEND_MASTER_H

#include "tokend/config.h"
#include "tokend/key_set.h"

/* Returns the exit status of tokend. */
int master_run(const struct tokend_config *config, const struct key_set *keys, int listen_fd,
               const char *unix_path_to_remove);

#endif
