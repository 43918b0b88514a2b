/*
 * cache_admin.c - applying admin events to one worker's caches (client
 * records, introspection answers) and revocation set.
 *
 * Called before each request when cache_admin_pending() says so, from the
 * transports' between-requests hook (so a worker woken by SIGUSR1 applies
 * without waiting for traffic), and by an admin request while it waits for
 * the other workers (so two workers taking admin requests at once never
 * wait on each other). Every event is idempotent: clearing, forgetting a
 * client, sweeping or revoking twice changes nothing more, so an event
 * applied again (or a clear standing in for lost events) is harmless.
 *
 * What each event does:
 *   CLEAR       empties the cache its subject names ("clients",
 *               "introspection"), or both when it names none; a clear of
 *               both (what stands in for lost events, and what a flusher
 *               publishes when it (re)subscribes) also has the revocations
 *               read again, since a revocation event may be among the lost;
 *   INVALIDATE  forgets the client and every cached introspection answer
 *               for its tokens (the client was changed, disabled, deleted
 *               or had all its tokens revoked);
 *   CLEANUP     drops expired entries of both caches and the revoked set;
 *   REVOKE      adds the jti to the revoked set and drops its answer.
 */
#include <stdatomic.h>

#include <string.h>

#include "tokend/cache_admin.h"
#include "tokend/client_cache.h"
#include "tokend/instance_stats.h"
#include "tokend/introspection_cache.h"
#include "tokend/revocation_view.h"

static void apply_one(void *context, enum admin_event_type type, const char *subject,
                      int64_t expires_at_s)
{
    struct handler_context *ctx = context;
    switch (type) {
    case ADMIN_EVENT_CLEAR:
        if (strcmp(subject, CACHE_NAME_INTROSPECTION) != 0) {
            client_cache_clear(ctx->cache);
        }
        if (strcmp(subject, CACHE_NAME_CLIENTS) != 0) {
            introspection_cache_clear(ctx->introspection);
        }
        if (subject[0] == '\0') {
            revocation_view_mark_stale(ctx);
        }
        break;
    case ADMIN_EVENT_INVALIDATE:
        client_cache_remove(ctx->cache, subject);
        introspection_cache_remove_client(ctx->introspection, subject);
        break;
    case ADMIN_EVENT_CLEANUP:
        cache_admin_sweep(ctx);
        break;
    case ADMIN_EVENT_REVOKE:
        revocation_view_add(ctx, subject, expires_at_s);
        break;
    }
    stats_add(ctx->stats, STAT_ADMIN_EVENTS_APPLIED, 1);
}

void cache_admin_sweep(struct handler_context *ctx)
{
    client_cache_sweep(ctx->cache);
    introspection_cache_sweep(ctx->introspection);
    revocation_set_sweep(ctx->revoked);
    stats_gauge_set(ctx->stats, GAUGE_REVOKED_JTIS, (int64_t)revocation_set_size(ctx->revoked));
}

void cache_admin_publish_stats(struct handler_context *ctx)
{
    struct stats_slot *slot = ctx->stats;
    if (slot == NULL) {
        return;
    }
    /* In the order of stat_caches (instance_stats.c). */
    const struct cache_stats *by_cache[STAT_CACHE_COUNT] = {
        client_cache_get_stats(ctx->cache),
        introspection_cache_get_stats(ctx->introspection),
    };
    for (size_t i = 0; i < STAT_CACHE_COUNT; i++) {
        const struct stat_cache_layout *layout = &stat_caches[i];
        stats_set(slot, layout->hits, by_cache[i]->hits);
        stats_set(slot, layout->misses, by_cache[i]->misses);
        stats_set(slot, layout->negative_hits, by_cache[i]->negative_hits);
        stats_set(slot, layout->evictions, by_cache[i]->evictions);
        stats_set(slot, layout->expirations, by_cache[i]->expirations);
        stats_gauge_set(slot, layout->size, (int64_t)by_cache[i]->size);
    }
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
