/*
 * admin_endpoint.h - the /admin/ endpoints and the access check they share
 * with /metrics.
 */
#ifndef TOKEND_ADMIN_ENDPOINT_H
#define TOKEND_ADMIN_ENDPOINT_H

#include <stdbool.h>

#include "tokend/admin_events.h"
#include "tokend/handler_context.h"
#include "tokend/http_request.h"
#include "tokend/http_response.h"
#include "tokend/instance_stats.h"

/* True when the request may use an admin endpoint; otherwise the answer
 * (403, 429 or 401 JSON) is already in `resp`. */
bool admin_authorize(struct handler_context *ctx, const struct http_request *req,
                     struct http_response *resp);

/* GET /admin/cache/stats[?cache=clients] */
void admin_handle_cache_stats(struct handler_context *ctx, const struct http_request *req,
                              struct http_response *resp);

/* POST /admin/cache/clear[?cache=clients], /admin/cache/invalidate?client_id=ID,
 * /admin/cache/cleanup, each with an optional scope=instance|fleet. */
void admin_handle_cache_action(struct handler_context *ctx, const struct http_request *req,
                               struct http_response *resp, enum admin_event_type type);

/* GET /admin/queue/stats */
void admin_handle_queue_stats(struct handler_context *ctx, const struct http_request *req,
                              struct http_response *resp);

/* The live flusher's slot, or NULL. */
const struct stats_slot *admin_find_flusher(const struct stats_region *region);

#endif
