/*
 * flusher.h - the token queue's only consumer: writes batches of issued
 * tokens to PostgreSQL and releases them from the queue after COMMIT.
 */
#ifndef TOKEND_FLUSHER_H
#define TOKEND_FLUSHER_H

#include "tokend/config.h"
#include "tokend/shm_segment.h"

/* Runs in its own process until SIGTERM/SIGINT, then drains the queue and
 * returns 0 once it is empty. Returns 1 on a start-up failure (logged).
 * The caller has attached the queue. */
int flusher_main(const struct tokend_config *config, struct shm_segment *segment);

#endif
