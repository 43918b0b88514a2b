/*
 * revocation_view.c - the worker's revocation set and when to (re)read it
 * (see revocation_view.h for the rules).
 *
 * Ordering: the worker records how far it has applied the event ring
 * before it first reads the table (worker.c claims its stats slot with the
 * ring's position, then serves). A revocation is written to the table
 * before its event is published, so one published before that position
 * is in the table, and one published after it reaches the worker as an
 * event: none falls between.
 *
 * Failure: an out-of-memory add leaves the jti out of the set; the view is
 * then marked stale so the next answer reads the table again. While the
 * set is stale (or was never read) and the table cannot be read, nothing
 * is answered "active": introspection answers 503, cached answers too,
 * since the set may lack a revocation.
 */
#include "tokend/instance_stats.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/revocation_store.h"
#include "tokend/revocation_view.h"
#include "tokend/status.h"

static void publish_size(struct handler_context *ctx)
{
    stats_gauge_set(ctx->stats, GAUGE_REVOKED_JTIS, (int64_t)revocation_set_size(ctx->revoked));
}

bool revocation_view_ready(struct handler_context *ctx)
{
    if (ctx->revocations_loaded && !ctx->revocations_stale) {
        return true;
    }
    int64_t now_ms = monotonic_ms();
    if (now_ms < ctx->revocations_retry_ms) {
        return false;
    }
    int rc = revocation_store_load(ctx->db, ctx->revoked, ctx->config->clock_skew_s,
                                   ctx->now_s() * 1000);
    if (rc == TK_OK) {
        ctx->revocations_loaded = true;
        ctx->revocations_stale = false;
        publish_size(ctx);
        return true;
    }
    if (!ctx->revocations_stale_logged) {
        log_warn("could not read the revocations table; introspection answers 503 until it can");
        ctx->revocations_stale_logged = true;
    }
    int retry_ms = ctx->config->db_retry_interval_ms;
    ctx->revocations_retry_ms = now_ms + (retry_ms > 100 ? retry_ms : 100);
    return false;
}

void revocation_view_mark_stale(struct handler_context *ctx)
{
    ctx->revocations_stale = true;
    ctx->revocations_stale_logged = false;
    ctx->revocations_retry_ms = 0;
}

void revocation_view_add(struct handler_context *ctx, const char *jti, int64_t expires_at_s)
{
    introspection_cache_remove_jti(ctx->introspection, jti);
    int64_t keep_ms =
        revocation_keep_ms(expires_at_s, ctx->config->clock_skew_s, ctx->now_s() * 1000);
    if (revocation_set_add(ctx->revoked, jti, keep_ms) == TK_ERROR) {
        log_error("out of memory remembering a revoked token; reading the revocations again");
        revocation_view_mark_stale(ctx);
    }
    publish_size(ctx);
}

bool revocation_view_contains(struct handler_context *ctx, const char *jti)
{
    return revocation_set_contains(ctx->revoked, jti);
}
