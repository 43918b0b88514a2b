/*
 * cache_admin.c - applying admin events to one worker's client cache.
 *
 * Called before each request when cache_admin_pending() says so, from the
 * transports' between-requests hook (so a worker woken by SIGUSR1 applies
 * without waiting for traffic), and by an admin request while it waits for
 * the other workers (so two workers taking admin requests at once never
 * wait on each other). Every event is idempotent: clearing, forgetting a
 * client or sweeping twice changes nothing more, so an event applied again
 * (or a clear standing in for lost events) is harmless.
 */
#include <stdatomic.h>

#include "tokend/cache_admin.h"
#include "tokend/client_cache.h"
#include "tokend/instance_stats.h"

static void apply_one(void *context, enum admin_event_type type, const char *client_id)
{
    struct handler_context *ctx = context;
    switch (type) {
    case ADMIN_EVENT_CLEAR:
        client_cache_clear(ctx->cache);
        break;
    case ADMIN_EVENT_INVALIDATE:
        client_cache_remove(ctx->cache, client_id);
        break;
    case ADMIN_EVENT_CLEANUP:
        client_cache_sweep(ctx->cache);
        break;
    }
    stats_add(ctx->stats, STAT_ADMIN_EVENTS_APPLIED, 1);
}

void cache_admin_publish_stats(struct handler_context *ctx)
{
    struct stats_slot *slot = ctx->stats;
    if (slot == NULL) {
        return;
    }
    const struct client_cache_stats *cache = client_cache_get_stats(ctx->cache);
    stats_set(slot, STAT_CACHE_HITS, cache->hits);
    stats_set(slot, STAT_CACHE_MISSES, cache->misses);
    stats_set(slot, STAT_CACHE_NEGATIVE_HITS, cache->negative_hits);
    stats_set(slot, STAT_CACHE_EVICTIONS, cache->evictions);
    stats_set(slot, STAT_CACHE_EXPIRATIONS, cache->expirations);
    stats_gauge_set(slot, GAUGE_CACHE_SIZE, (int64_t)cache->size);
}

void cache_admin_apply(struct handler_context *ctx)
{
    if (ctx->segment == NULL) {
        return;
    }
    admin_events_apply(ctx->segment->events, &ctx->events_applied, apply_one, ctx);
    cache_admin_publish_stats(ctx);
    if (ctx->stats != NULL) {
        atomic_store_explicit(&ctx->stats->events_applied, ctx->events_applied,
                              memory_order_release);
    }
}
