/*
 * token_endpoint.c - POST /oauth/token: the client_credentials grant.
 *
 * The steps, in the order that keeps the expensive ones last:
 *   1. the request's shape: form content type, body size, form syntax,
 *      grant_type (no client is looked at yet, so malformed requests cost
 *      nothing);
 *   2-4. client authentication (client_auth.c, shared with introspection
 *      and revocation): one method, the client record from the worker's
 *      cache or the database, the secret, the client enabled;
 *   5. the client may use this grant;
 *   6. scopes (requested ⊆ allowed, default when absent) and audience
 *      (`resource`, RFC 8707, or `audience`; must be one the client may
 *      ask for);
 *   7. the signed JWT, its record in the shared-memory token queue (the
 *      flusher writes it to PostgreSQL), and only then the JSON answer
 *      with Cache-Control: no-store. A token whose record could not be
 *      queued (queue full for queue_full_wait_ms) is never handed out:
 *      the client gets 503 temporarily_unavailable with Retry-After.
 *
 * Every failure is an RFC 6749 §5.2 JSON error. Descriptions never echo a
 * secret; they name the parameter at fault. Nothing is logged per request
 * except failures of tokend itself (database down, a corrupt stored hash).
 */
#include <stdio.h>
#include <string.h>

#include "tokend/client_auth.h"
#include "tokend/http_form.h"
#include "tokend/jwt_issuer.h"
#include "tokend/logging.h"
#include "tokend/scope.h"
#include "tokend/status.h"
#include "tokend/token_endpoint.h"
#include "tokend/token_queue.h"

/* Step 6, audience part: the requested audience if the client may ask for
 * it, else the client's first audience, else the configured default.
 * Returns NULL with the answer filled. */
static const char *settle_audience(const struct handler_context *ctx,
                                   const struct client_record *client, const char *requested,
                                   struct arena *arena, struct http_response *resp)
{
    const char *allowed = client->audiences;
    if (requested == NULL) {
        if (allowed[0] == '\0') {
            return ctx->default_audience;
        }
        const char *first = arena_strndup(arena, allowed, strcspn(allowed, " "));
        if (first == NULL) {
            http_response_oauth_error(resp, 500, "server_error", "out of memory");
        }
        return first;
    }
    bool ok = allowed[0] == '\0' ? strcmp(requested, ctx->default_audience) == 0
                                 : scope_list_contains(allowed, requested);
    if (!ok) {
        http_response_oauth_error(resp, 400, "invalid_target",
                                  "the requested audience is not allowed for this client");
        return NULL;
    }
    return requested;
}

/* Step 7, the record: into the token queue before anything is answered.
 * Returns false with the 503 answer filled when it could not be queued. */
static bool record_token(struct handler_context *ctx, const struct jwt_claims *claims,
                         struct http_response *resp)
{
    struct token_queue_claim claim;
    int rc = token_queue_claim(ctx->queue, ctx->config->queue_full_wait_ms, &claim);
    if (rc == TK_OK) {
        struct token_record *record = claim.record;
        /* Lengths were checked against the record's fields before signing. */
        snprintf(record->jti, sizeof(record->jti), "%s", claims->jti);
        snprintf(record->client_id, sizeof(record->client_id), "%s", claims->client_id);
        snprintf(record->scope, sizeof(record->scope), "%s", claims->scope);
        snprintf(record->audience, sizeof(record->audience), "%s", claims->aud);
        record->issued_at_s = claims->iat;
        record->expires_at_s = claims->exp;
        record->worker_pid = (int32_t)ctx->queue->self_pid;
        rc = token_queue_publish(ctx->queue, &claim);
    }
    if (rc != TK_OK) {
        ctx->token_stats.queue_full++;
        oauth_unavailable(resp, "tokens cannot be recorded right now, retry later", 1000);
        return false;
    }
    return true;
}

/* Step 7: the token, its record and the answer. */
static void issue_token(struct handler_context *ctx, const struct client_record *client,
                        const char *scope, const char *audience, struct http_response *resp)
{
    char jti[JWT_JTI_SIZE];
    int64_t ttl_s = client->token_ttl_s > 0 ? client->token_ttl_s : ctx->config->token_ttl_s;
    int64_t now = ctx->now_s();
    struct jwt_claims claims = {
        .iss = ctx->config->issuer,
        .sub = client->client_id,
        .aud = audience,
        .client_id = client->client_id,
        .scope = scope,
        .iat = now,
        .exp = now + ttl_s,
        .jti = jti,
    };
    struct buffer *token = &ctx->token_scratch;
    buffer_reset(token);
    if (jwt_new_jti(jti) != TK_OK ||
        jwt_issuer_build(key_set_signing(ctx->keys), ctx->config->token_typ, &claims, token) !=
            TK_OK ||
        buffer_failed(token)) {
        log_error("signing a token failed");
        http_response_oauth_error(resp, 500, "server_error", "could not sign the token");
        return;
    }
    if (!record_token(ctx, &claims, resp)) {
        return;
    }
    ctx->token_stats.issued++;
    resp->status = 200;
    struct buffer *body = &resp->body;
    buffer_reset(body);
    buffer_append_str(body, "{\"access_token\":\"");
    buffer_append(body, token->data, token->len); /* base64url and dots: no escaping */
    buffer_printf(body, "\",\"token_type\":\"Bearer\",\"expires_in\":%lld", (long long)ttl_s);
    if (scope[0] != '\0') {
        buffer_append_str(body, ",\"scope\":");
        buffer_append_json_string(body, scope);
    }
    buffer_append(body, "}", 1);
    http_response_no_store(resp);
}

void token_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                           struct http_response *resp)
{
    /* 1. shape of the request */
    struct http_form form;
    if (!oauth_form_read(req, &form, resp)) {
        return;
    }
    const char *grant_type = NULL;
    switch (http_form_get(&form, "grant_type", &grant_type)) {
    case HTTP_FORM_ABSENT:
        oauth_invalid_request(resp, "missing grant_type");
        return;
    case HTTP_FORM_REPEATED:
        oauth_invalid_request(resp, "parameter 'grant_type' is repeated");
        return;
    case HTTP_FORM_ONE:
        break;
    }
    if (strcmp(grant_type, "client_credentials") != 0) {
        http_response_oauth_error(resp, 400, "unsupported_grant_type",
                                  "only client_credentials is supported");
        return;
    }
    const char *requested_scope = NULL, *resource = NULL, *audience_param = NULL;
    if (!oauth_form_optional(&form, "scope", &requested_scope, resp, req->arena) ||
        !oauth_form_optional(&form, "resource", &resource, resp, req->arena) ||
        !oauth_form_optional(&form, "audience", &audience_param, resp, req->arena)) {
        return;
    }
    if (resource != NULL && audience_param != NULL) {
        oauth_invalid_request(resp, "use either resource or audience, not both");
        return;
    }
    const char *requested_audience = resource != NULL ? resource : audience_param;

    /* 2-5. who is asking, and may it (client_auth.c) */
    const struct client_record *client = client_authenticate(ctx, req, &form, resp);
    if (client == NULL) {
        return;
    }
    if (!client->client_credentials_allowed) {
        http_response_oauth_error(resp, 400, "unauthorized_client",
                                  "the client may not use the client_credentials grant");
        return;
    }

    /* 6. scope and audience */
    const char *granted = NULL;
    const char *error = NULL;
    int rc = scope_settle(requested_scope, client->allowed_scopes, client->default_scopes,
                          req->arena, &granted, &error);
    if (rc == TK_ERROR) {
        /* Out of memory, or scopes stored for the client are malformed:
         * tokend's fault, never the request's. */
        log_error("settling scopes for client '%s' failed: %s", client->client_id,
                  error != NULL ? error : "unknown error");
        http_response_oauth_error(resp, 500, "server_error", error);
        return;
    }
    if (rc != TK_OK) {
        http_response_oauth_error(resp, 400, "invalid_scope", error);
        return;
    }
    const char *audience = settle_audience(ctx, client, requested_audience, req->arena, resp);
    if (audience == NULL) {
        return;
    }
    /* Every issued token is recorded in a fixed-size queue record. */
    if (strlen(granted) >= TOKEN_RECORD_SCOPE_SIZE) {
        http_response_oauth_error(resp, 400, "invalid_scope",
                                  "the granted scopes exceed 511 bytes; request fewer");
        return;
    }
    if (strlen(audience) >= TOKEN_RECORD_AUDIENCE_SIZE) {
        http_response_oauth_error(resp, 400, "invalid_target", "the audience exceeds 255 bytes");
        return;
    }

    /* 7. the token */
    issue_token(ctx, client, granted, audience, resp);
}
