/*
 * router.c - which handler serves which method and path.
 *
 * The table is small and fixed, so a linear scan with exact string matches
 * is both the simplest and the fastest choice. When the issuer has a path
 * (https://host/auth) the endpoints are advertised under it, so a request
 * path starting with that prefix is matched without it; a web server that
 * strips the prefix itself works too. A known path with another
 * method answers 405 with Allow; HEAD is served wherever GET is (the
 * transport drops the body). Unknown paths answer 404 in JSON so clients
 * that parse every answer as JSON never trip.
 *
 * /admin/... and /metrics pass admin_authorize() first; /health needs no
 * token. The token endpoint's latency (measured here, around the handler)
 * and its outcome by RFC 6749 error code go to the worker's stats slot;
 * introspection and revocation count their own outcomes.
 */
#include <string.h>
#include <time.h>

#include "tokend/admin_endpoint.h"
#include "tokend/discovery_endpoint.h"
#include "tokend/health_endpoint.h"
#include "tokend/instance_stats.h"
#include "tokend/introspect_endpoint.h"
#include "tokend/metrics_endpoint.h"
#include "tokend/router.h"
#include "tokend/token_endpoint.h"

enum route_id {
    ROUTE_TOKEN,
    ROUTE_INTROSPECT,
    ROUTE_REVOKE,
    ROUTE_JWKS,
    ROUTE_METADATA,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_ADMIN_CACHE_STATS,
    ROUTE_ADMIN_CACHE_CLEAR,
    ROUTE_ADMIN_CACHE_INVALIDATE,
    ROUTE_ADMIN_CACHE_CLEANUP,
    ROUTE_ADMIN_QUEUE_STATS,
};

struct route {
    const char *path;
    const char *allow; /* the methods, as the Allow header lists them */
    enum route_id id;
};

static const struct route routes[] = {
    {"/oauth/token", "POST", ROUTE_TOKEN},
    {"/oauth/introspect", "POST", ROUTE_INTROSPECT},
    {"/oauth/revoke", "POST", ROUTE_REVOKE},
    {"/.well-known/jwks.json", "GET, HEAD", ROUTE_JWKS},
    {"/.well-known/oauth-authorization-server", "GET, HEAD", ROUTE_METADATA},
    {"/health", "GET, HEAD", ROUTE_HEALTH},
    {"/metrics", "GET, HEAD", ROUTE_METRICS},
    {"/admin/cache/stats", "GET, HEAD", ROUTE_ADMIN_CACHE_STATS},
    {"/admin/cache/clear", "POST", ROUTE_ADMIN_CACHE_CLEAR},
    {"/admin/cache/invalidate", "POST", ROUTE_ADMIN_CACHE_INVALIDATE},
    {"/admin/cache/cleanup", "POST", ROUTE_ADMIN_CACHE_CLEANUP},
    {"/admin/queue/stats", "GET, HEAD", ROUTE_ADMIN_QUEUE_STATS},
};

static bool method_allowed(const struct route *route, const char *method)
{
    if (strcmp(route->allow, "POST") == 0) {
        return strcmp(method, "POST") == 0;
    }
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static const struct {
    const char *error;
    enum stat_counter counter;
} token_error_counters[] = {
    {"invalid_request", STAT_TOKEN_INVALID_REQUEST},
    {"invalid_client", STAT_TOKEN_INVALID_CLIENT},
    {"unauthorized_client", STAT_TOKEN_UNAUTHORIZED_CLIENT},
    {"unsupported_grant_type", STAT_TOKEN_UNSUPPORTED_GRANT_TYPE},
    {"invalid_scope", STAT_TOKEN_INVALID_SCOPE},
    {"invalid_target", STAT_TOKEN_INVALID_TARGET},
    {"temporarily_unavailable", STAT_TOKEN_TEMPORARILY_UNAVAILABLE},
    {"server_error", STAT_TOKEN_SERVER_ERROR},
};

static int64_t monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* Counts a token endpoint answer that is not a token. */
static void count_token_error(struct stats_slot *slot, const struct http_response *resp)
{
    enum stat_counter counter = STAT_TOKEN_OTHER_ERROR;
    for (size_t i = 0; resp->oauth_error != NULL &&
                       i < sizeof(token_error_counters) / sizeof(token_error_counters[0]);
         i++) {
        if (strcmp(resp->oauth_error, token_error_counters[i].error) == 0) {
            counter = token_error_counters[i].counter;
            break;
        }
    }
    stats_add(slot, counter, 1);
}

static void handle_token(struct handler_context *ctx, const struct http_request *req,
                         struct http_response *resp)
{
    int64_t started = ctx->stats != NULL ? monotonic_us() : 0;
    token_endpoint_handle(ctx, req, resp);
    if (ctx->stats != NULL) {
        stats_observe_latency(ctx->stats, (uint64_t)(monotonic_us() - started));
        if (resp->status != 200) {
            count_token_error(ctx->stats, resp);
        }
    }
}

void router_handle(struct handler_context *ctx, const struct http_request *req,
                   struct http_response *resp)
{
    const char *path = req->path;
    if (ctx->path_prefix_len > 0 && strncmp(path, ctx->path_prefix, ctx->path_prefix_len) == 0 &&
        path[ctx->path_prefix_len] == '/') {
        path += ctx->path_prefix_len;
    }
    const struct route *route = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) == 0) {
            route = &routes[i];
            break;
        }
    }
    if (route == NULL) {
        http_response_json(resp, 404,
                           "{\"error\":\"not_found\",\"error_description\":\"no such endpoint\"}");
        return;
    }
    if (!method_allowed(route, req->method)) {
        if (route->id == ROUTE_TOKEN) {
            stats_add(ctx->stats, STAT_TOKEN_OTHER_ERROR, 1);
        }
        http_response_json(resp, 405,
                           "{\"error\":\"method_not_allowed\","
                           "\"error_description\":\"method not allowed on this endpoint\"}");
        http_response_add_header(resp, "Allow", route->allow);
        return;
    }
    bool admin = route->id >= ROUTE_METRICS;
    if (admin && !admin_authorize(ctx, req, resp)) {
        return;
    }
    switch (route->id) {
    case ROUTE_TOKEN:
        handle_token(ctx, req, resp);
        break;
    case ROUTE_INTROSPECT:
        introspect_endpoint_handle(ctx, req, resp);
        break;
    case ROUTE_REVOKE:
        revoke_endpoint_handle(ctx, req, resp);
        break;
    case ROUTE_JWKS:
        discovery_handle_jwks(ctx, resp);
        break;
    case ROUTE_METADATA:
        discovery_handle_metadata(ctx, resp);
        break;
    case ROUTE_HEALTH:
        health_handle(ctx, req, resp);
        break;
    case ROUTE_METRICS:
        metrics_handle(ctx, resp);
        break;
    case ROUTE_ADMIN_CACHE_STATS:
        admin_handle_cache_stats(ctx, req, resp);
        break;
    case ROUTE_ADMIN_CACHE_CLEAR:
        admin_handle_cache_action(ctx, req, resp, ADMIN_EVENT_CLEAR);
        break;
    case ROUTE_ADMIN_CACHE_INVALIDATE:
        admin_handle_cache_action(ctx, req, resp, ADMIN_EVENT_INVALIDATE);
        break;
    case ROUTE_ADMIN_CACHE_CLEANUP:
        admin_handle_cache_action(ctx, req, resp, ADMIN_EVENT_CLEANUP);
        break;
    case ROUTE_ADMIN_QUEUE_STATS:
        admin_handle_queue_stats(ctx, req, resp);
        break;
    }
}
