/*
 * revoke_endpoint.c - POST /oauth/revoke (RFC 7009).
 *
 * The request is read like an introspection request (a form with `token`,
 * an optional untrusted `token_type_hint`, an authenticated client;
 * client_auth.c), and whether the token is active is
 * token_introspection.c's question.
 *
 * A client may revoke its own tokens only. The row goes to the
 * revocations table (and its NOTIFY to every other instance) before the
 * 200, then an ADMIN_EVENT_REVOKE tells the other workers of this instance,
 * which apply it before their next request. A token of another client, or
 * one that is not active (invalid, expired, revoked already), gets the same
 * 200 with no effect, as RFC 7009 §2.2 asks, and is counted. If the
 * database cannot record it the answer is 503 and nothing changed.
 *
 *
 * Answers carry Cache-Control: no-store.
 */
#include <stdio.h>
#include <string.h>

#include "tokend/admin_events.h"
#include "tokend/cache_admin.h"
#include "tokend/client_auth.h"
#include "tokend/instance_stats.h"
#include "tokend/introspect_endpoint.h"
#include "tokend/logging.h"
#include "tokend/revocation_store.h"
#include "tokend/revocation_view.h"
#include "tokend/status.h"
#include "tokend/token_introspection.h"

/* Records the revocation of the caller's own active token. Returns false
 * with the 503 answer filled when the database could not record it. */
static bool revoke(struct handler_context *ctx, const struct introspection_entry_data *data,
                   struct http_response *resp)
{
    char origin[ADMIN_EVENT_ORIGIN_SIZE] = "-";
    if (ctx->segment != NULL) {
        admin_event_origin(ctx->segment->events, origin);
    }
    if (revocation_store_record(ctx->db, data->jti, data->client_id, data->exp,
                                ctx->config->notify_channel, origin) != TK_OK) {
        oauth_unavailable(resp, "the revocation cannot be recorded right now, retry later",
                          ctx->config->db_retry_interval_ms);
        return false;
    }
    if (ctx->segment == NULL) {
        revocation_view_add(ctx, data->jti, data->exp); /* no other workers */
        return true;
    }
    if (admin_event_publish_revoke(ctx->segment->events, data->jti, data->exp, NULL) != TK_OK) {
        /* The ring's lock failed: this worker knows at once, and the
         * notice goes out again without our origin, so that our own
         * flusher passes it to the other workers. */
        revocation_view_add(ctx, data->jti, data->exp);
        log_error("could not publish a revocation event; passing it through the flusher");
        revocation_store_announce(ctx->db, data->jti, data->exp, ctx->config->notify_channel);
        return true;
    }
    cache_admin_apply(ctx); /* this worker applies its own event now */
    return true;
}

void revoke_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                            struct http_response *resp)
{
    const char *token = NULL;
    const struct client_record *client = client_authenticate_for_token(ctx, req, resp, &token);
    if (client == NULL) {
        stats_add(ctx->stats, STAT_REVOKE_REFUSED, 1);
        return;
    }
    /* The client's id, before token_introspect's client lookup can replace
     * the cache entry `client` points into. */
    char client_id[CLIENT_ID_MAX_LEN + 1];
    snprintf(client_id, sizeof(client_id), "%s", client->client_id);
    struct introspection_entry_data data;
    enum stat_counter counted = STAT_REVOKE_INACTIVE;
    switch (token_introspect(ctx, token, strlen(token), req->arena, &data)) {
    case INTROSPECT_ACTIVE:
        if (strcmp(data.client_id, client_id) != 0) {
            counted = STAT_REVOKE_NOT_OWNER;
        } else if (revoke(ctx, &data, resp)) {
            counted = STAT_REVOKE_REVOKED;
        } else {
            stats_add(ctx->stats, STAT_REVOKE_UNAVAILABLE, 1);
            return;
        }
        break;
    case INTROSPECT_NOT_YET_VALID:
        /* Issued by a host whose clock is ahead: still the owner's to
         * revoke, before it becomes valid here. */
        if (token_claims_ignoring_iat(ctx, token, strlen(token), &data) &&
            strcmp(data.client_id, client_id) == 0) {
            if (!revoke(ctx, &data, resp)) {
                stats_add(ctx->stats, STAT_REVOKE_UNAVAILABLE, 1);
                return;
            }
            counted = STAT_REVOKE_REVOKED;
        } else if (data.active) {
            counted = STAT_REVOKE_NOT_OWNER;
        }
        break;
    case INTROSPECT_UNAVAILABLE:
        stats_add(ctx->stats, STAT_REVOKE_UNAVAILABLE, 1);
        oauth_unavailable(resp, "cannot check tokens right now, retry later",
                          ctx->config->db_retry_interval_ms);
        return;
    default:
        break;
    }
    stats_add(ctx->stats, counted, 1);
    resp->status = 200;
    buffer_reset(&resp->body);
    buffer_append_str(&resp->body, "{}");
    http_response_no_store(resp);
}
