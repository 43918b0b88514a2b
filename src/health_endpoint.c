/*
 * health_endpoint.c - GET /health: is this instance fit to serve?
 *
 * 200 {"status":"ok",...} when all four hold, else 503 with every failing
 * check named in "reasons":
 *   workers   as many live worker slots as the instance should have
 *             (`workers`, or one per CPU);
 *   flusher   a live flusher slot whose heartbeat is recent (it goes round
 *             its loop every few milliseconds, a database step may hold it
 *             for up to five times db_timeout_ms);
 *   database  the flusher's last database contact worked and was within
 *             health_db_interval_ms (the flusher pings when it has nothing
 *             to write);
 *   queue     depth below health_queue_high_water percent of capacity.
 * GET /health?live answers 200 as soon as a worker can answer at all
 * (liveness); it looks at nothing else.
 *
 * No token needed, so the answer names no pid, key or client.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "tokend/admin_endpoint.h"
#include "tokend/health_endpoint.h"
#include "tokend/instance_stats.h"

#define FLUSHER_HEARTBEAT_MIN_MS 10000

static bool pid_alive(int32_t pid)
{
    return pid > 0 && !(kill(pid, 0) != 0 && errno == ESRCH);
}

void health_handle(struct handler_context *ctx, const struct http_request *req,
                   struct http_response *resp)
{
    if (strcmp(req->query, "live") == 0 || strncmp(req->query, "live&", 5) == 0) {
        http_response_json(resp, 200, "{\"status\":\"live\"}");
        return;
    }
    if (req->query[0] != '\0') {
        http_response_oauth_error(resp, 400, "invalid_request",
                                  "the only query /health takes is ?live");
        return;
    }
    if (ctx->segment == NULL) {
        http_response_json(resp, 503,
                           "{\"status\":\"unavailable\",\"reasons\":[\"no shared segment\"]}");
        return;
    }
    const struct tokend_config *config = ctx->config;
    const struct stats_region *region = ctx->segment->stats;
    int64_t now_ms = stats_wall_ms();

    int running = 0;
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        const struct stats_slot *slot = &region->slots[i];
        if (atomic_load_explicit(&slot->role, memory_order_relaxed) == STAT_ROLE_WORKER &&
            pid_alive(atomic_load_explicit(&slot->pid, memory_order_acquire))) {
            running++;
        }
    }
    bool workers_ok = running >= ctx->worker_count;

    const struct stats_slot *flusher = admin_find_flusher(region);
    int64_t heartbeat_limit = 6 * (int64_t)config->db_timeout_ms;
    if (heartbeat_limit < FLUSHER_HEARTBEAT_MIN_MS) {
        heartbeat_limit = FLUSHER_HEARTBEAT_MIN_MS;
    }
    int64_t heartbeat_age =
        flusher != NULL ? now_ms - stats_gauge_get(flusher, GAUGE_HEARTBEAT_MS) : -1;
    bool flusher_ok = flusher != NULL &&
                      pid_alive(atomic_load_explicit(&flusher->pid, memory_order_relaxed)) &&
                      heartbeat_age < heartbeat_limit;

    int64_t db_last_ok = flusher != NULL ? stats_gauge_get(flusher, GAUGE_DB_LAST_OK_MS) : 0;
    int64_t db_age = db_last_ok > 0 ? now_ms - db_last_ok : -1;
    bool db_ok = flusher != NULL && stats_gauge_get(flusher, GAUGE_DB_UP) == 1 && db_age >= 0 &&
                 db_age <= config->health_db_interval_ms;

    struct token_queue *queue = &ctx->segment->queue;
    uint64_t depth = token_queue_depth(queue);
    uint64_t high_water = queue->capacity * (uint64_t)config->health_queue_high_water / 100;
    bool queue_ok = depth < high_water;

    bool ok = workers_ok && flusher_ok && db_ok && queue_ok;
    struct buffer *out = &resp->body;
    resp->status = ok ? 200 : 503;
    buffer_reset(out);
    buffer_printf(out, "{\"status\":\"%s\",\"reasons\":[", ok ? "ok" : "unavailable");
    const char *sep = "";
    if (!workers_ok) {
        buffer_printf(out, "%s\"%d of %d workers running\"", sep, running, ctx->worker_count);
        sep = ",";
    }
    if (!flusher_ok) {
        buffer_printf(out, "%s\"%s\"", sep,
                      flusher == NULL ? "no flusher running" : "the flusher is not responding");
        sep = ",";
    }
    if (!db_ok) {
        if (db_age < 0) {
            buffer_printf(out, "%s\"the database has not been reached\"", sep);
        } else {
            buffer_printf(out, "%s\"the database was last reached %.1f s ago\"", sep,
                          (double)db_age / 1000.0);
        }
        sep = ",";
    }
    if (!queue_ok) {
        buffer_printf(out, "%s\"the token queue is above %d%% of its capacity\"", sep,
                      config->health_queue_high_water);
    }
    buffer_printf(out,
                  "],\"checks\":{\"workers\":{\"ok\":%s,\"running\":%d,\"expected\":%d},"
                  "\"flusher\":{\"ok\":%s},\"database\":{\"ok\":%s,\"last_ok_age_s\":",
                  workers_ok ? "true" : "false", running, ctx->worker_count,
                  flusher_ok ? "true" : "false", db_ok ? "true" : "false");
    if (db_age >= 0) {
        buffer_printf(out, "%.3f", (double)db_age / 1000.0);
    } else {
        buffer_append_str(out, "null");
    }
    buffer_printf(out,
                  "},\"queue\":{\"ok\":%s,\"depth\":%llu,\"capacity\":%llu,"
                  "\"high_water\":%llu}}}",
                  queue_ok ? "true" : "false", (unsigned long long)depth,
                  (unsigned long long)queue->capacity, (unsigned long long)high_water);
    http_response_add_header(resp, "Cache-Control", "no-store");
    if (buffer_failed(out)) {
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
    }
}
