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
 */
#include <string.h>

#include "tokend/discovery_endpoint.h"
#include "tokend/router.h"
#include "tokend/token_endpoint.h"

enum route_id { ROUTE_TOKEN, ROUTE_JWKS, ROUTE_METADATA };

struct route {
    const char *path;
    const char *allow; /* the methods, as the Allow header lists them */
    enum route_id id;
};

static const struct route routes[] = {
    {"/oauth/token", "POST", ROUTE_TOKEN},
    {"/.well-known/jwks.json", "GET, HEAD", ROUTE_JWKS},
    {"/.well-known/oauth-authorization-server", "GET, HEAD", ROUTE_METADATA},
};

static bool method_allowed(const struct route *route, const char *method)
{
    if (route->id == ROUTE_TOKEN) {
        return strcmp(method, "POST") == 0;
    }
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
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
        http_response_json(resp, 405,
                           "{\"error\":\"method_not_allowed\","
                           "\"error_description\":\"method not allowed on this endpoint\"}");
        http_response_add_header(resp, "Allow", route->allow);
        return;
    }
    switch (route->id) {
    case ROUTE_TOKEN:
        token_endpoint_handle(ctx, req, resp);
        break;
    case ROUTE_JWKS:
        discovery_handle_jwks(ctx, resp);
        break;
    case ROUTE_METADATA:
        discovery_handle_metadata(ctx, resp);
        break;
    }
}
