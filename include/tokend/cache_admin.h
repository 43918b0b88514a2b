/*
 * cache_admin.h - bringing one worker's caches (client records,
 * introspection answers) and revoked set up to date with the instance's
 * admin events (clear, invalidate, cleanup, revoke).
 */
#ifndef TOKEND_CACHE_ADMIN_H
#define TOKEND_CACHE_ADMIN_H

#include <stdbool.h>

#include "tokend/admin_events.h"
#include "tokend/handler_context.h"

/* The names of the caches in the admin API, the metrics and CLEAR
 * events. */
#define CACHE_NAME_CLIENTS       "clients"
#define CACHE_NAME_INTROSPECTION "introspection"

/* True when an admin event was published that this worker has not applied:
 * one atomic load, cheap enough for every request. */
static inline bool cache_admin_pending(const struct handler_context *ctx)
{
    return ctx->segment != NULL &&
           admin_event_published(ctx->segment->events) != ctx->events_applied;
}

/* Drops the expired entries of both caches and of the revoked set (the
 * worker's periodic sweep and ADMIN_EVENT_CLEANUP). */
void cache_admin_sweep(struct handler_context *ctx);

/* Applies every pending event to the caches, copies the caches' counters
 * and size into the worker's stats slot and then records the sequence
 * there (where admin actions wait for it), so that an action reported
 * complete is also visible in the stats. */
void cache_admin_apply(struct handler_context *ctx);

/* Copies the caches' counters and sizes into the worker's stats slot
 * (no-op without one). */
void cache_admin_publish_stats(struct handler_context *ctx);

#endif
