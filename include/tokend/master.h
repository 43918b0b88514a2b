/*
 * master.h - the supervisor: forks the workers and the flusher, restarts any
 * that die (with backoff), and on SIGTERM/SIGINT stops the workers, lets the
 * flusher drain the token queue, and exits 0; on SIGHUP reloads the
 * configuration and keys and replaces the workers one at a time. It never
 * serves requests and takes no part in the queue protocol.
 */
#ifndef TOKEND_MASTER_H
#define TOKEND_MASTER_H

#include "tokend/server_settings.h"
#include "tokend/shm_segment.h"

/* Runs the instance until SIGTERM/SIGINT; SIGHUP reloads `settings` from
 * the same configuration file and replaces the workers one at a time.
 * Takes ownership of `settings` (allocated with malloc; replaced on each
 * successful reload and freed before returning). `unix_path_to_remove`
 * (copied; NULL for an inherited socket or TCP) is unlinked at the stop.
 * Returns the exit status of tokend. */
int master_run(struct server_settings *settings, struct shm_segment *segment, int listen_fd,
               const char *unix_path_to_remove);

#endif
