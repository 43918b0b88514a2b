/*
 * metrics_endpoint.c - GET /metrics in the Prometheus text format 0.0.4.
 *
 * Every family gets HELP and TYPE lines; counters end in _total; the token
 * endpoint's latency is a histogram (tokend_token_request_duration_seconds,
 * _bucket with cumulative counts per `le`, _sum, _count) from the fixed
 * buckets of instance_stats.h. Counters are instance totals: the retired
 * counts of processes that died plus every live slot, so they never go
 * down while the segment lives. Gauges are read from the live slots.
 * Label values are fixed strings (no client ids), so nothing needs escaping
 * and the cardinality is bounded.
 *
 * Access: the admin token (admin_authorize, in the router), since the
 * figures say how busy the service is and which errors clients meet.
 */
#include <stdatomic.h>

#include "tokend/admin_endpoint.h"
#include "tokend/instance_stats.h"
#include "tokend/metrics_endpoint.h"
#include "tokend/token_introspection.h"

static void family(struct buffer *out, const char *name, const char *type, const char *help)
{
    buffer_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct buffer *out, const char *name, const char *help, uint64_t value)
{
    family(out, name, "counter", help);
    buffer_printf(out, "%s %llu\n", name, (unsigned long long)value);
}

static void gauge(struct buffer *out, const char *name, const char *help, double value)
{
    family(out, name, "gauge", help);
    buffer_printf(out, "%s %.17g\n", name, value);
}

static const struct {
    enum stat_counter counter;
    const char *error;
} token_errors[] = {
    {STAT_TOKEN_INVALID_REQUEST, "invalid_request"},
    {STAT_TOKEN_INVALID_CLIENT, "invalid_client"},
    {STAT_TOKEN_UNAUTHORIZED_CLIENT, "unauthorized_client"},
    {STAT_TOKEN_UNSUPPORTED_GRANT_TYPE, "unsupported_grant_type"},
    {STAT_TOKEN_INVALID_SCOPE, "invalid_scope"},
    {STAT_TOKEN_INVALID_TARGET, "invalid_target"},
    {STAT_TOKEN_TEMPORARILY_UNAVAILABLE, "temporarily_unavailable"},
    {STAT_TOKEN_SERVER_ERROR, "server_error"},
    {STAT_TOKEN_OTHER_ERROR, "other"},
};

/* The cache families, one sample per cache and result. */
static void append_cache_families(struct buffer *out, const uint64_t *c, const int64_t *sizes)
{
    family(out, "tokend_cache_lookups_total", "counter",
           "Cache lookups by cache and result (hit, negative_hit: a cached unknown client or "
           "inactive token, miss).");
    for (size_t i = 0; i < STAT_CACHE_COUNT; i++) {
        const struct stat_cache_layout *cache = &stat_caches[i];
        buffer_printf(out,
                      "tokend_cache_lookups_total{cache=\"%s\",result=\"hit\"} %llu\n"
                      "tokend_cache_lookups_total{cache=\"%s\",result=\"negative_hit\"} %llu\n"
                      "tokend_cache_lookups_total{cache=\"%s\",result=\"miss\"} %llu\n",
                      cache->name, (unsigned long long)c[cache->hits], cache->name,
                      (unsigned long long)c[cache->negative_hits], cache->name,
                      (unsigned long long)c[cache->misses]);
    }
    family(out, "tokend_cache_evictions_total", "counter",
           "Cache entries pushed out to make room (LRU).");
    for (size_t i = 0; i < STAT_CACHE_COUNT; i++) {
        buffer_printf(out, "tokend_cache_evictions_total{cache=\"%s\"} %llu\n", stat_caches[i].name,
                      (unsigned long long)c[stat_caches[i].evictions]);
    }
    family(out, "tokend_cache_expirations_total", "counter",
           "Cache entries dropped because their TTL ran out.");
    for (size_t i = 0; i < STAT_CACHE_COUNT; i++) {
        buffer_printf(out, "tokend_cache_expirations_total{cache=\"%s\"} %llu\n",
                      stat_caches[i].name, (unsigned long long)c[stat_caches[i].expirations]);
    }
    family(out, "tokend_cache_entries", "gauge", "Entries in the caches of all live workers.");
    for (size_t i = 0; i < STAT_CACHE_COUNT; i++) {
        buffer_printf(out, "tokend_cache_entries{cache=\"%s\"} %lld\n", stat_caches[i].name,
                      (long long)sizes[i]);
    }
}

/* Introspection answers by result and reason, revocation answers by
 * result. */
static void append_introspection_families(struct buffer *out, const uint64_t *c)
{
    family(out, "tokend_introspections_total", "counter",
           "Introspection answers: active, or inactive by reason (cached_inactive: a cached "
           "inactive answer), or unavailable (503, no verdict).");
    for (int outcome = 0; outcome < INTROSPECT_OUTCOME_COUNT; outcome++) {
        const char *result = outcome == INTROSPECT_ACTIVE        ? "active"
                             : outcome == INTROSPECT_UNAVAILABLE ? "unavailable"
                                                                 : "inactive";
        buffer_printf(out, "tokend_introspections_total{result=\"%s\",reason=\"%s\"} %llu\n",
                      result, introspection_outcome_name((enum introspection_outcome)outcome),
                      (unsigned long long)c[STAT_INTROSPECT_ACTIVE + outcome]);
    }
    counter(out, "tokend_introspection_refused_total",
            "Introspection requests refused: malformed, client not authenticated or not allowed.",
            c[STAT_INTROSPECT_REFUSED]);
    family(out, "tokend_revocations_total", "counter",
           "Revocation answers: revoked, not_owner and inactive (200 with no effect), "
           "unavailable (503), refused (4xx).");
    static const struct {
        enum stat_counter counter;
        const char *result;
    } revocations[] = {
        {STAT_REVOKE_REVOKED, "revoked"},   {STAT_REVOKE_NOT_OWNER, "not_owner"},
        {STAT_REVOKE_INACTIVE, "inactive"}, {STAT_REVOKE_UNAVAILABLE, "unavailable"},
        {STAT_REVOKE_REFUSED, "refused"},
    };
    for (size_t i = 0; i < sizeof(revocations) / sizeof(revocations[0]); i++) {
        buffer_printf(out, "tokend_revocations_total{result=\"%s\"} %llu\n", revocations[i].result,
                      (unsigned long long)c[revocations[i].counter]);
    }
}

void metrics_handle(struct handler_context *ctx, struct http_response *resp)
{
    const struct stats_region *region = ctx->segment->stats;
    struct stats_totals totals;
    stats_totals(region, &totals);
    const uint64_t *c = totals.counters;
    int64_t cache_sizes[STAT_CACHE_COUNT] = {0};
    int64_t revoked_jtis = 0;
    int workers = 0;
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        const struct stats_slot *slot = &region->slots[i];
        if (atomic_load_explicit(&slot->pid, memory_order_acquire) > 0 &&
            atomic_load_explicit(&slot->role, memory_order_relaxed) == STAT_ROLE_WORKER) {
            workers++;
            for (size_t k = 0; k < STAT_CACHE_COUNT; k++) {
                cache_sizes[k] += stats_gauge_get(slot, stat_caches[k].size);
            }
            int64_t revoked = stats_gauge_get(slot, GAUGE_REVOKED_JTIS);
            revoked_jtis = revoked > revoked_jtis ? revoked : revoked_jtis;
        }
    }
    const struct stats_slot *flusher = admin_find_flusher(region);
    struct token_queue *queue = &ctx->segment->queue;
    uint64_t depth = token_queue_depth(queue);
    int64_t now_ms = stats_wall_ms();
    int64_t oldest_s = flusher != NULL ? stats_gauge_get(flusher, GAUGE_QUEUE_OLDEST_S) : 0;

    struct buffer *out = &resp->body;
    buffer_reset(out);
    counter(out, "tokend_requests_total", "FastCGI requests answered by the workers.",
            c[STAT_REQUESTS]);

    append_cache_families(out, c, cache_sizes);
    counter(out, "tokend_tokens_issued_total", "Access tokens issued (every one recorded).",
            c[STAT_TOKENS_ISSUED]);
    family(out, "tokend_token_errors_total", "counter",
           "Token endpoint error answers by RFC 6749 error code.");
    for (size_t i = 0; i < sizeof(token_errors) / sizeof(token_errors[0]); i++) {
        buffer_printf(out, "tokend_token_errors_total{error=\"%s\"} %llu\n", token_errors[i].error,
                      (unsigned long long)c[token_errors[i].counter]);
    }

    family(out, "tokend_token_request_duration_seconds", "histogram",
           "Time the token endpoint took per request, measured inside the worker.");
    uint64_t cumulative = 0;
    for (int i = 0; i < STAT_LATENCY_BOUNDS; i++) {
        cumulative += totals.latency[i];
        buffer_printf(out, "tokend_token_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                      (double)stat_latency_bounds_us[i] / 1e6, (unsigned long long)cumulative);
    }
    cumulative += totals.latency[STAT_LATENCY_BOUNDS];
    buffer_printf(out,
                  "tokend_token_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "tokend_token_request_duration_seconds_sum %.6f\n"
                  "tokend_token_request_duration_seconds_count %llu\n",
                  (unsigned long long)cumulative, (double)c[STAT_LATENCY_SUM_US] / 1e6,
                  (unsigned long long)cumulative);

    append_introspection_families(out, c);
    gauge(out, "tokend_revoked_tokens",
          "Revoked token ids not yet expired, as the most up-to-date worker holds them.",
          (double)revoked_jtis);

    gauge(out, "tokend_queue_depth", "Token records waiting in shared memory for the flusher.",
          (double)depth);
    gauge(out, "tokend_queue_capacity", "Records the token queue holds.", (double)queue->capacity);
    gauge(out, "tokend_queue_oldest_age_seconds",
          "Age of the oldest record still queued (0 when empty).",
          depth > 0 && oldest_s > 0 && now_ms / 1000 > oldest_s ? (double)(now_ms / 1000 - oldest_s)
                                                                : 0.0);
    counter(out, "tokend_queue_enqueued_total", "Token records put into the queue.",
            c[STAT_QUEUE_ENQUEUED]);
    counter(out, "tokend_queue_full_total",
            "Token requests answered 503 because the queue stayed full.", c[STAT_QUEUE_FULL]);
    counter(out, "tokend_flushed_total", "Token records committed to PostgreSQL.", c[STAT_FLUSHED]);
    counter(out, "tokend_flush_batches_total", "COPY transactions committed.",
            c[STAT_FLUSH_BATCHES]);
    counter(out, "tokend_flush_errors_total", "Batches that failed and were retried.",
            c[STAT_FLUSH_ERRORS]);
    gauge(out, "tokend_flush_last_duration_seconds", "Duration of the last committed batch.",
          flusher != NULL ? (double)stats_gauge_get(flusher, GAUGE_LAST_FLUSH_US) / 1e6 : 0.0);
    gauge(out, "tokend_database_up", "1 when the flusher's last database contact worked, else 0.",
          flusher != NULL && stats_gauge_get(flusher, GAUGE_DB_UP) == 1 ? 1.0 : 0.0);
    gauge(out, "tokend_workers", "Live worker processes.", (double)workers);
    gauge(out, "tokend_flusher_up", "1 when a flusher process is running, else 0.",
          flusher != NULL ? 1.0 : 0.0);
    counter(out, "tokend_processes_retired_total",
            "Worker and flusher processes that ended (their counts stay in the totals).",
            totals.retired_processes);
    counter(out, "tokend_admin_events_total",
            "Admin events published (clear, invalidate, cleanup, revoke).",
            admin_event_published(ctx->segment->events));

    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    http_response_add_header(resp, "Cache-Control", "no-store");
    if (buffer_failed(out)) {
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
    }
}
