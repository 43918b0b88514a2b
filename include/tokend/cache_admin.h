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

/* Applies every pending event to ctx->cache and records the sequence in
 * the worker's stats slot (where admin actions wait for it). */
void cache_admin_apply(struct handler_context *ctx);

#endif
