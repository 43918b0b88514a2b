/*
 * admin_endpoint.c - /admin/cache/stats, /admin/cache/{clear,invalidate,
 * cleanup} and /admin/queue/stats: the operator's view of, and hand on,
 * every worker of the instance (and with ?scope=fleet every instance
 * sharing the database).
 *
 * Access: admin_authorize() runs first for these and for /metrics. It
 * answers 403 when no admin_token_file is configured, 401 with a Bearer
 * challenge unless the request carries the admin token (compared as
 * SHA-256 digests with CRYPTO_memcmp, admin_token.c), and 429 (with
 * Retry-After) beyond admin_rate_limit requests per second of this worker.
 * Requests with the token and requests refused have a bucket each, so a
 * flood of unauthenticated requests is limited without locking the
 * operator out.
 *
 * Reading: counters come from the shared stats slots (instance_stats.h):
 * totals are the retired counts plus every live slot, and each live worker
 * gets its own entry. Queue figures come from the queue's positions and
 * the flusher's slot.
 *
 * Acting: an action is published as an admin event (admin_events.h),
 * applied by this worker at once, and every other worker is woken with
 * SIGUSR1 so it applies the event even when idle. The answer waits until
 * every live worker's slot shows the event applied (200, "complete": true)
 * or admin_timeout_ms has passed (202 with the pids still pending; they
 * apply it before their next request). While waiting this worker keeps
 * applying events itself, so two workers acting at once never wait on each
 * other. With ?scope=fleet the action also goes out as a PostgreSQL NOTIFY
 * on notify_channel, which every flusher LISTENs to (client_listener.c);
 * if that fails the answer is 503 but the local part stands.
 *
 * Bad input (unknown parameter, unknown cache, missing client_id) is a 400
 * invalid_request in the RFC 6749 §5.2 shape and changes nothing.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokend/admin_endpoint.h"
#include "tokend/cache_admin.h"
#include "tokend/http_form.h"
#include "tokend/instance_stats.h"
#include "tokend/monotonic_clock.h"
#include "tokend/status.h"

#define RESIGNAL_INTERVAL_MS 100
/* Payloads of fleet-wide actions on notify_channel; a bare payload is a
 * client id (what tokenctl sends; client_listener.c says how an id that
 * starts with '*' is told from these). */
#define FLEET_CLEAR   "*clear" /* then " <cache>" when one cache is named */
#define FLEET_CLEANUP "*cleanup"

static void json_error(struct http_response *resp, int status, const char *error,
                       const char *description)
{
    http_response_oauth_error(resp, status, error, description);
}

bool admin_authorize(struct handler_context *ctx, const struct http_request *req,
                     struct http_response *resp)
{
    if (ctx->segment == NULL) {
        json_error(resp, 503, "temporarily_unavailable", "no shared segment in this process");
        return false;
    }
    if (ctx->admin_token == NULL || !ctx->admin_token->set) {
        json_error(resp, 403, "admin_disabled",
                   "set admin_token_file in tokend.conf to enable the admin endpoints");
        return false;
    }
    enum admin_auth_result auth = admin_token_check(ctx->admin_token, req->authorization);
    int retry_after_s = 1;
    struct rate_limit *bucket =
        auth == ADMIN_AUTH_OK ? &ctx->admin_limit : &ctx->admin_refused_limit;
    if (!rate_limit_take(bucket, monotonic_ms(), &retry_after_s)) {
        json_error(resp, 429, "rate_limited", "too many admin requests; try again later");
        char value[16];
        snprintf(value, sizeof(value), "%d", retry_after_s);
        http_response_add_header(resp, "Retry-After", value);
        return false;
    }
    switch (auth) {
    case ADMIN_AUTH_OK:
        return true;
    case ADMIN_AUTH_MISSING:
        json_error(resp, 401, "unauthorized",
                   "send the admin token as Authorization: Bearer <token>");
        http_response_add_header(resp, "WWW-Authenticate", "Bearer realm=\"tokend-admin\"");
        return false;
    case ADMIN_AUTH_MALFORMED:
        json_error(resp, 401, "invalid_request", "the Authorization header is not a Bearer token");
        http_response_add_header(resp, "WWW-Authenticate",
                                 "Bearer realm=\"tokend-admin\", error=\"invalid_request\"");
        return false;
    case ADMIN_AUTH_WRONG:
        break;
    }
    json_error(resp, 401, "invalid_token", "the admin token is not valid");
    http_response_add_header(resp, "WWW-Authenticate",
                             "Bearer realm=\"tokend-admin\", error=\"invalid_token\"");
    return false;
}

/* ---- query parameters ---- */

struct admin_query {
    const char *cache;     /* NULL (every cache), "clients" or "introspection" */
    const char *scope;     /* "instance" (default) or "fleet" */
    const char *client_id; /* NULL unless given */
};

/* Parses req->query allowing only the names in `allowed` (space-separated).
 * On failure answers 400 and returns false. */
static bool parse_query(const struct http_request *req, const char *allowed,
                        struct admin_query *query, struct http_response *resp)
{
    memset(query, 0, sizeof(*query));
    query->scope = "instance";
    struct http_form form;
    const char *error = NULL;
    if (http_form_parse(req->query, strlen(req->query), req->arena, &form, &error) != TK_OK) {
        json_error(resp, 400, "invalid_request", error != NULL ? error : "malformed query");
        return false;
    }
    for (size_t i = 0; i < form.count; i++) {
        const char *name = form.params[i].name;
        size_t len = strlen(name);
        const char *at = strstr(allowed, name);
        bool known = len > 0 && at != NULL && (at == allowed || at[-1] == ' ') &&
                     (at[len] == ' ' || at[len] == '\0');
        if (!known) {
            json_error(resp, 400, "invalid_request", "unknown query parameter");
            return false;
        }
    }
    const char **fields[] = {&query->cache, &query->scope, &query->client_id};
    const char *names[] = {"cache", "scope", "client_id"};
    for (size_t i = 0; i < 3; i++) {
        const char *value = NULL;
        enum http_form_lookup found = http_form_get(&form, names[i], &value);
        if (found == HTTP_FORM_REPEATED) {
            json_error(resp, 400, "invalid_request", "a query parameter is repeated");
            return false;
        }
        if (found == HTTP_FORM_ONE) {
            *fields[i] = value;
        }
    }
    if (query->cache != NULL && strcmp(query->cache, CACHE_NAME_CLIENTS) != 0 &&
        strcmp(query->cache, CACHE_NAME_INTROSPECTION) != 0) {
        json_error(resp, 400, "invalid_request",
                   "unknown cache; the caches are: clients, introspection");
        return false;
    }
    if (strcmp(query->scope, "instance") != 0 && strcmp(query->scope, "fleet") != 0) {
        json_error(resp, 400, "invalid_request", "scope must be instance or fleet");
        return false;
    }
    return true;
}

/* ---- reading ---- */

static bool slot_live(const struct stats_slot *slot, enum stat_role role)
{
    return atomic_load_explicit(&slot->pid, memory_order_acquire) > 0 &&
           atomic_load_explicit(&slot->role, memory_order_relaxed) == (int32_t)role;
}

static void append_cache_object(struct buffer *out, const struct stat_cache_layout *cache,
                                const uint64_t *counters, int64_t size)
{
    uint64_t hits = counters[cache->hits];
    uint64_t negative = counters[cache->negative_hits];
    uint64_t misses = counters[cache->misses];
    uint64_t lookups = hits + negative + misses;
    buffer_printf(out,
                  "\"%s\":{\"hits\":%llu,\"misses\":%llu,\"negative_hits\":%llu,"
                  "\"evictions\":%llu,\"expirations\":%llu,\"size\":%lld,\"hit_rate\":%.4f}",
                  cache->name, (unsigned long long)hits, (unsigned long long)misses,
                  (unsigned long long)negative, (unsigned long long)counters[cache->evictions],
                  (unsigned long long)counters[cache->expirations], (long long)size,
                  lookups > 0 ? (double)(hits + negative) / (double)lookups : 0.0);
}

/* The "caches" object's members: every cache, or the one `only` names. */
static void append_caches(struct buffer *out, const char *only, const uint64_t *counters,
                          const int64_t *sizes)
{
    bool first = true;
    for (size_t i = 0; i < STAT_CACHE_COUNT; i++) {
        if (only != NULL && strcmp(only, stat_caches[i].name) != 0) {
            continue;
        }
        if (!first) {
            buffer_append_str(out, ",");
        }
        first = false;
        append_cache_object(out, &stat_caches[i], counters, sizes[i]);
    }
}

static void load_counters(const struct stats_slot *slot, uint64_t *out)
{
    for (int i = 0; i < STAT_COUNTER_COUNT; i++) {
        out[i] = stats_get(slot, (enum stat_counter)i);
    }
}

void admin_handle_cache_stats(struct handler_context *ctx, const struct http_request *req,
                              struct http_response *resp)
{
    struct admin_query query;
    if (!parse_query(req, "cache", &query, resp)) {
        return;
    }
    const struct stats_region *region = ctx->segment->stats;
    struct stats_totals totals;
    stats_totals(region, &totals);
    int64_t now_ms = stats_wall_ms();
    struct buffer workers;
    buffer_init(&workers);
    int64_t total_sizes[STAT_CACHE_COUNT] = {0};
    size_t live = 0;
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        const struct stats_slot *slot = &region->slots[i];
        if (!slot_live(slot, STAT_ROLE_WORKER)) {
            continue;
        }
        uint64_t counters[STAT_COUNTER_COUNT];
        load_counters(slot, counters);
        int64_t sizes[STAT_CACHE_COUNT];
        for (size_t c = 0; c < STAT_CACHE_COUNT; c++) {
            sizes[c] = stats_gauge_get(slot, stat_caches[c].size);
            total_sizes[c] += sizes[c];
        }
        int64_t started = atomic_load_explicit(&slot->started_at_ms, memory_order_relaxed);
        buffer_printf(
            &workers,
            "%s{\"pid\":%d,\"uptime_s\":%.3f,\"requests\":%llu,\"events_applied\":%llu,"
            "\"revoked_jtis\":%lld,\"caches\":{",
            live++ > 0 ? "," : "", (int)atomic_load_explicit(&slot->pid, memory_order_relaxed),
            (double)(now_ms - started) / 1000.0, (unsigned long long)counters[STAT_REQUESTS],
            (unsigned long long)atomic_load_explicit(&slot->events_applied, memory_order_relaxed),
            (long long)stats_gauge_get(slot, GAUGE_REVOKED_JTIS));
        append_caches(&workers, query.cache, counters, sizes);
        buffer_append_str(&workers, "}}");
    }
    struct buffer *out = &resp->body;
    resp->status = 200;
    buffer_reset(out);
    buffer_append_str(out, "{\"caches\":{");
    append_caches(out, query.cache, totals.counters, total_sizes);
    buffer_printf(out, "},\"workers\":[");
    buffer_append(out, workers.data, workers.len);
    buffer_printf(out, "],\"live_workers\":%zu,\"retired_processes\":%llu}", live,
                  (unsigned long long)totals.retired_processes);
    buffer_free(&workers);
    if (buffer_failed(out)) {
        json_error(resp, 500, "server_error", "out of memory");
    }
}

const struct stats_slot *admin_find_flusher(const struct stats_region *region)
{
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        if (slot_live(&region->slots[i], STAT_ROLE_FLUSHER)) {
            return &region->slots[i];
        }
    }
    return NULL;
}

void admin_handle_queue_stats(struct handler_context *ctx, const struct http_request *req,
                              struct http_response *resp)
{
    struct admin_query query;
    if (!parse_query(req, "", &query, resp)) {
        return;
    }
    struct stats_totals totals;
    stats_totals(ctx->segment->stats, &totals);
    const struct stats_slot *flusher = admin_find_flusher(ctx->segment->stats);
    struct token_queue *queue = &ctx->segment->queue;
    int64_t now_ms = stats_wall_ms();
    int64_t oldest_s = flusher != NULL ? stats_gauge_get(flusher, GAUGE_QUEUE_OLDEST_S) : 0;
    uint64_t depth = token_queue_depth(queue);
    int64_t last_ok = flusher != NULL ? stats_gauge_get(flusher, GAUGE_DB_LAST_OK_MS) : 0;
    struct buffer *out = &resp->body;
    resp->status = 200;
    buffer_reset(out);
    buffer_printf(
        out,
        "{\"depth\":%llu,\"capacity\":%llu,\"oldest_age_s\":%lld,\"enqueued\":%llu,"
        "\"queue_full\":%llu,\"flushed\":%llu,\"batches\":%llu,\"flush_errors\":%llu,"
        "\"last_flush_ms\":%.3f,\"flusher\":",
        (unsigned long long)depth, (unsigned long long)queue->capacity,
        (long long)(depth > 0 && oldest_s > 0 && now_ms / 1000 > oldest_s ? now_ms / 1000 - oldest_s
                                                                          : 0),
        (unsigned long long)totals.counters[STAT_QUEUE_ENQUEUED],
        (unsigned long long)totals.counters[STAT_QUEUE_FULL],
        (unsigned long long)totals.counters[STAT_FLUSHED],
        (unsigned long long)totals.counters[STAT_FLUSH_BATCHES],
        (unsigned long long)totals.counters[STAT_FLUSH_ERRORS],
        flusher != NULL ? (double)stats_gauge_get(flusher, GAUGE_LAST_FLUSH_US) / 1000.0 : 0.0);
    if (flusher == NULL) {
        buffer_append_str(out, "null,\"database_up\":false,\"database_last_ok_age_s\":null}");
    } else {
        buffer_printf(out, "{\"pid\":%d},\"database_up\":%s,\"database_last_ok_age_s\":",
                      (int)atomic_load_explicit(&flusher->pid, memory_order_relaxed),
                      stats_gauge_get(flusher, GAUGE_DB_UP) ? "true" : "false");
        if (last_ok > 0) {
            buffer_printf(out, "%.3f}", (double)(now_ms - last_ok) / 1000.0);
        } else {
            buffer_append_str(out, "null}");
        }
    }
    if (buffer_failed(out)) {
        json_error(resp, 500, "server_error", "out of memory");
    }
}

/* ---- acting ---- */

/* Live workers of the instance that have not applied `seq`, other than
 * this process; their pids go to `pending` (up to `max`). Returns how many
 * there are. `workers` gets the number of live workers, this one included. */
static size_t pending_workers(const struct stats_region *region, uint64_t seq, pid_t self,
                              int32_t *pending, size_t max, size_t *workers)
{
    size_t count = 0;
    *workers = 0;
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        const struct stats_slot *slot = &region->slots[i];
        if (!slot_live(slot, STAT_ROLE_WORKER)) {
            continue;
        }
        int32_t pid = atomic_load_explicit(&slot->pid, memory_order_relaxed);
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            continue; /* died; the master retires its slot */
        }
        ++*workers;
        if (pid == self ||
            atomic_load_explicit(&slot->events_applied, memory_order_acquire) >= seq) {
            continue;
        }
        if (count < max) {
            pending[count] = pid;
        }
        count++;
    }
    return count;
}

static void sleep_ms(int ms)
{
    struct timespec wait = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000};
    nanosleep(&wait, NULL);
}

/* NOTIFY notify_channel with `payload`. TK_OK or the database's status. */
static int notify_fleet(struct handler_context *ctx, const char *payload)
{
    const char *params[] = {ctx->config->notify_channel, payload};
    PGresult *result = NULL;
    int rc = db_conn_query(ctx->db, "tokend_admin_notify", "SELECT pg_notify($1, $2)", 2, params,
                           &result);
    PQclear(result);
    return rc;
}

void admin_handle_cache_action(struct handler_context *ctx, const struct http_request *req,
                               struct http_response *resp, enum admin_event_type type)
{
    struct admin_query query;
    const char *allowed = type == ADMIN_EVENT_INVALIDATE ? "client_id scope" : "cache scope";
    if (!parse_query(req, allowed, &query, resp)) {
        return;
    }
    if (type == ADMIN_EVENT_INVALIDATE &&
        (query.client_id == NULL || query.client_id[0] == '\0' ||
         strlen(query.client_id) >= TOKEN_RECORD_CLIENT_ID_SIZE)) {
        json_error(resp, 400, "invalid_request",
                   "client_id is required: the id of the client to forget (at most 127 bytes)");
        return;
    }
    /* CLEAR names its cache in the event ("" = every cache); CLEANUP
     * sweeps every cache whatever is named (it only drops what expired). */
    const char *subject = type == ADMIN_EVENT_INVALIDATE                     ? query.client_id
                          : type == ADMIN_EVENT_CLEAR && query.cache != NULL ? query.cache
                                                                             : NULL;
    uint64_t seq = 0;
    if (admin_event_publish(ctx->segment->events, type, subject, &seq) != TK_OK) {
        json_error(resp, 500, "server_error", "could not publish the admin event");
        return;
    }
    cache_admin_apply(ctx);

    bool fleet = strcmp(query.scope, "fleet") == 0;
    bool fleet_notified = false;
    if (fleet) {
        char clear_one[64];
        snprintf(clear_one, sizeof(clear_one), FLEET_CLEAR " %s",
                 query.cache != NULL ? query.cache : "");
        const char *payload = type == ADMIN_EVENT_INVALIDATE ? query.client_id
                              : type == ADMIN_EVENT_CLEAR
                                  ? (query.cache != NULL ? clear_one : FLEET_CLEAR)
                                  : FLEET_CLEANUP;
        fleet_notified = notify_fleet(ctx, payload) == TK_OK;
    }

    const struct stats_region *region = ctx->segment->stats;
    pid_t self = getpid();
    int32_t pending[64];
    size_t workers = 0;
    size_t waiting = 0;
    int64_t deadline = monotonic_ms() + ctx->config->admin_timeout_ms;
    int64_t next_signal = 0;
    for (;;) {
        cache_admin_apply(ctx); /* events of other admins, so nobody waits on us */
        waiting = pending_workers(region, seq, self, pending, 64, &workers);
        int64_t now = monotonic_ms();
        if (waiting == 0 || now >= deadline) {
            break;
        }
        if (now >= next_signal) {
            for (size_t i = 0; i < waiting && i < 64; i++) {
                kill(pending[i], SIGUSR1);
            }
            next_signal = now + RESIGNAL_INTERVAL_MS;
        }
        sleep_ms(1);
    }

    static const char *const action_names[] = {
        [ADMIN_EVENT_CLEAR] = "clear",
        [ADMIN_EVENT_INVALIDATE] = "invalidate",
        [ADMIN_EVENT_CLEANUP] = "cleanup",
    };
    struct buffer *out = &resp->body;
    buffer_reset(out);
    buffer_printf(out, "{\"action\":\"%s\",\"cache\":\"%s\",", action_names[type],
                  type == ADMIN_EVENT_INVALIDATE                     ? CACHE_NAME_CLIENTS
                  : type == ADMIN_EVENT_CLEAR && query.cache != NULL ? query.cache
                                                                     : "all");
    if (type == ADMIN_EVENT_INVALIDATE) {
        buffer_append_str(out, "\"client_id\":");
        buffer_append_json_string(out, query.client_id);
        buffer_append_str(out, ",");
    }
    buffer_printf(out,
                  "\"scope\":\"%s\",\"seq\":%llu,\"workers\":%zu,\"applied\":%zu,"
                  "\"complete\":%s,\"pending_workers\":[",
                  fleet ? "fleet" : "instance", (unsigned long long)seq, workers, workers - waiting,
                  waiting == 0 ? "true" : "false");
    for (size_t i = 0; i < waiting && i < 64; i++) {
        buffer_printf(out, "%s%d", i > 0 ? "," : "", (int)pending[i]);
    }
    buffer_append_str(out, "]");
    if (fleet) {
        buffer_printf(out, ",\"fleet_notified\":%s", fleet_notified ? "true" : "false");
    }
    buffer_append_str(out, "}");
    resp->status = fleet && !fleet_notified ? 503 : waiting == 0 ? 200 : 202;
    if (resp->status == 503) {
        http_response_add_header(resp, "Retry-After", "1");
    }
    if (buffer_failed(out)) {
        json_error(resp, 500, "server_error", "out of memory");
    }
}
