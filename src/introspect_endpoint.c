/*
 * introspect_endpoint.c - POST /oauth/introspect (RFC 7662).
 *
 * The request is a form with `token` (and an optional `token_type_hint`,
 * accepted once and not trusted: every token is looked at as an access
 * token, the only kind tokend issues) from an authenticated client
 * (client_auth.c). The question "is this token active" is
 * token_introspection.c's.
 *
 * The client needs the client to hold the scope tokend:introspect in its
 * allowed scopes (set with tokenctl client add/set-scopes), else 403. It
 * answers {"active":false} for every inactive token without saying why;
 * the reason is counted in the metrics. 503 when it cannot decide (the
 * revocations or the client registry unreadable).
 *
 * Answers carry Cache-Control: no-store.
 */
#include <string.h>

#include "tokend/client_auth.h"
#include "tokend/instance_stats.h"
#include "tokend/introspect_endpoint.h"
#include "tokend/scope.h"
#include "tokend/token_introspection.h"

static void answer_active(struct handler_context *ctx, const struct introspection_entry_data *data,
                          struct http_response *resp)
{
    struct buffer *body = &resp->body;
    buffer_reset(body);
    buffer_append_str(body, "{\"active\":true");
    if (data->scope[0] != '\0') { /* like the token: no scope claim when none was granted */
        buffer_append_str(body, ",\"scope\":");
        buffer_append_json_string(body, data->scope);
    }
    buffer_append_str(body, ",\"client_id\":");
    buffer_append_json_string(body, data->client_id);
    buffer_append_str(body, ",\"sub\":");
    buffer_append_json_string(body, data->sub);
    buffer_append_str(body, ",\"aud\":");
    buffer_append_json_string(body, data->aud);
    buffer_append_str(body, ",\"iss\":");
    buffer_append_json_string(body, ctx->config->issuer);
    buffer_printf(body, ",\"exp\":%lld,\"iat\":%lld,\"jti\":", (long long)data->exp,
                  (long long)data->iat);
    buffer_append_json_string(body, data->jti);
    buffer_append_str(body, ",\"token_type\":\"Bearer\"}");
    resp->status = buffer_failed(body) ? 500 : 200;
    if (resp->status == 500) {
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
    }
}

void introspect_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                                struct http_response *resp)
{
    const char *token = NULL;
    const struct client_record *client = client_authenticate_for_token(ctx, req, resp, &token);
    if (client != NULL &&
        !scope_list_contains(client->allowed_scopes, INTROSPECT_PERMISSION_SCOPE)) {
        http_response_oauth_error(resp, 403, "unauthorized_client",
                                  "the client may not introspect tokens (it needs the scope "
                                  "tokend:introspect)");
        client = NULL;
    }
    if (client == NULL) {
        stats_add(ctx->stats, STAT_INTROSPECT_REFUSED, 1);
        return;
    }
    struct introspection_entry_data data;
    enum introspection_outcome outcome =
        token_introspect(ctx, token, strlen(token), req->arena, &data);
    stats_add(ctx->stats, (enum stat_counter)(STAT_INTROSPECT_ACTIVE + outcome), 1);
    switch (outcome) {
    case INTROSPECT_ACTIVE:
        answer_active(ctx, &data, resp);
        break;
    case INTROSPECT_UNAVAILABLE:
        oauth_unavailable(resp, "cannot check tokens right now, retry later",
                          ctx->config->db_retry_interval_ms);
        return;
    default:
        resp->status = 200;
        buffer_reset(&resp->body);
        buffer_append_str(&resp->body, "{\"active\":false}");
        break;
    }
    http_response_no_store(resp);
}
