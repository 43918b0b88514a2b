/*
 * cache_admin.h - bringing one worker's client cache up to date with the
 * instance's admin events (clear, invalidate, cleanup).
 */
#ifndef TOKEND_CACHE_ADMIN_H
#define TOKEND_CACHE_ADMIN_H

#include <stdbool.h>

#include "tokend/admin_events.h"
#include "tokend/handler_context.h"

/* True when an admin event was published that this worker has not applied:
 * one atomic load, cheap enough for every request. */
static inline bool cache_admin_pending(const struct handler_context *ctx)
{
    return ctx->segment != NULL &&
           admin_event_published(ctx->segment->events) != ctx->events_applied;
}

/* Applies every pending event to ctx->cache, copies the cache's counters
 * and size into the worker's stats slot and then records the sequence
 * there (where admin actions wait for it), so that an action reported
 * complete is also visible in the stats. */
void cache_admin_apply(struct handler_context *ctx);

/* Copies the cache's counters and size into the worker's stats slot
 * (no-op without one). */
void cache_admin_publish_stats(struct handler_context *ctx);

#endif
