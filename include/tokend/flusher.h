/*
 * flusher.h - the token queue's only consumer: writes batches of issued
 * tokens to PostgreSQL and releases them from the queue after COMMIT.
 */
#ifndef TOKEND_FLUSHER_H
#define TOKEND_FLUSHER_H

#include <stdbool.h>

#include "tokend/config.h"
#include "tokend/shm_segment.h"

/* Runs in its own process until SIGTERM/SIGINT, then drains the queue and
 * returns 0 once it is empty. Returns 1 on a start-up failure (logged).
 * The caller has attached the queue. */
int flusher_main(const struct tokend_config *config, struct shm_segment *segment);

/* True when `a` and `b` differ in anything the flusher reads (database
 * URL and password, db_timeout_ms, flush_batch, flush_interval_ms,
 * token_retention_days, health_db_interval_ms, notify_channel,
 * shutdown_timeout, log_level): a reload then replaces the flusher.
 * Cannot fail. */
bool flusher_settings_differ(const struct tokend_config *a, const struct tokend_config *b);

#endif
