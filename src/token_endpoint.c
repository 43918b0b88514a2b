/*
 * token_endpoint.c - POST /oauth/token: the client_credentials grant.
 *
 * The steps, in the order that keeps the expensive ones last:
 *   1. the request's shape: form content type, body size, form syntax,
 *      grant_type (no client is looked at yet, so malformed requests cost
 *      nothing);
 *   2. client authentication: exactly one of client_secret_basic and
 *      client_secret_post;
 *   3. the client record: the worker's cache, or one indexed query on a
 *      miss (a missing client is cached negatively);
 *   4. the secret: a remembered keyed digest on a hit, else the full PBKDF2
 *      check (a wrong secret always takes the full check);
 *   5. the client's permissions: enabled, allowed this grant;
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
#include <strings.h>

#include "tokend/basic_auth.h"
#include "tokend/client_store.h"
#include "tokend/http_form.h"
#include "tokend/jwt_issuer.h"
#include "tokend/logging.h"
#include "tokend/scope.h"
#include "tokend/secret_hash.h"
#include "tokend/status.h"
#include "tokend/token_endpoint.h"
#include "tokend/token_queue.h"

/* What authentication the request carried. */
struct credentials {
    const char *client_id;
    const char *client_secret;
    bool basic; /* came in the Authorization header */
};

static void invalid_request(struct http_response *resp, const char *description)
{
    http_response_oauth_error(resp, 400, "invalid_request", description);
}

static void invalid_client(struct http_response *resp, bool basic_tried)
{
    http_response_oauth_error(resp, 401, "invalid_client", "client authentication failed");
    if (basic_tried) {
        http_response_add_header(resp, "WWW-Authenticate", "Basic realm=\"tokend\"");
    }
}

static void unavailable(struct http_response *resp, const char *description, int retry_ms)
{
    http_response_oauth_error(resp, 503, "temporarily_unavailable", description);
    char seconds[16];
    int retry_s = (retry_ms + 999) / 1000;
    snprintf(seconds, sizeof(seconds), "%d", retry_s < 1 ? 1 : retry_s);
    http_response_add_header(resp, "Retry-After", seconds);
}

/* True for "application/x-www-form-urlencoded", any case, optionally
 * followed by parameters such as "; charset=UTF-8". */
static bool is_form_content_type(const char *content_type)
{
    static const char form[] = "application/x-www-form-urlencoded";
    if (content_type == NULL || strncasecmp(content_type, form, sizeof(form) - 1) != 0) {
        return false;
    }
    const char *rest = content_type + sizeof(form) - 1;
    while (*rest == ' ' || *rest == '\t') {
        rest++;
    }
    return *rest == '\0' || *rest == ';';
}

/* Looks up an optional single-valued parameter. Returns false (with the
 * error answer filled) when it is repeated. */
static bool optional_param(const struct http_form *form, const char *name, const char **value,
                           struct http_response *resp, struct arena *arena)
{
    *value = NULL;
    if (http_form_get(form, name, value) == HTTP_FORM_REPEATED) {
        char *text = arena_alloc(arena, 64);
        if (text != NULL) {
            snprintf(text, 64, "parameter '%s' is repeated", name);
        }
        invalid_request(resp, text != NULL ? text : "a parameter is repeated");
        return false;
    }
    return true;
}

/* Step 2. Returns false with the error answer filled. */
static bool read_credentials(const struct http_request *req, const struct http_form *form,
                             struct credentials *creds, struct http_response *resp)
{
    const char *body_id = NULL, *body_secret = NULL;
    if (!optional_param(form, "client_id", &body_id, resp, req->arena) ||
        !optional_param(form, "client_secret", &body_secret, resp, req->arena)) {
        return false;
    }
    memset(creds, 0, sizeof(*creds));
    if (req->authorization != NULL) {
        const char *error = NULL;
        int rc = basic_auth_decode(req->authorization, req->arena, &creds->client_id,
                                   &creds->client_secret, &error);
        if (rc == TK_ERROR) {
            http_response_oauth_error(resp, 500, "server_error", "out of memory");
            return false;
        }
        if (rc != TK_OK) {
            /* Malformed Basic credentials or another scheme: authentication
             * failed; tell the client which scheme we take. */
            invalid_client(resp, true);
            return false;
        }
        creds->basic = true;
        if (body_secret != NULL) {
            invalid_request(resp, "use one client authentication method, not both");
            return false;
        }
        if (body_id != NULL && strcmp(body_id, creds->client_id) != 0) {
            invalid_request(resp, "client_id does not match the Authorization header");
            return false;
        }
        return true;
    }
    if (body_id == NULL || body_secret == NULL) {
        invalid_client(resp, false);
        return false;
    }
    creds->client_id = body_id;
    creds->client_secret = body_secret;
    return true;
}

/* Step 3. Returns the cache entry, or NULL with the answer filled. */
static struct client_cache_entry *find_client(struct handler_context *ctx,
                                              const struct http_request *req,
                                              const struct credentials *creds,
                                              struct http_response *resp)
{
    struct client_cache_entry *entry = NULL;
    /* An id no client can have is refused before it costs a cache slot or
     * a query (and a byte that is not UTF-8 never reaches PostgreSQL). */
    if (!client_id_valid(creds->client_id)) {
        invalid_client(resp, creds->basic);
        return NULL;
    }
    switch (client_cache_lookup(ctx->cache, creds->client_id, &entry)) {
    case CLIENT_CACHE_HIT:
        return entry;
    case CLIENT_CACHE_NEGATIVE:
        invalid_client(resp, creds->basic);
        return NULL;
    case CLIENT_CACHE_MISS:
        break;
    }
    struct client_record record;
    int rc = client_store_lookup(ctx->db, creds->client_id, req->arena, &record);
    if (rc == TK_NOT_FOUND) {
        client_cache_put_negative(ctx->cache, creds->client_id);
        invalid_client(resp, creds->basic);
        return NULL;
    }
    if (rc != TK_OK) {
        unavailable(resp, "the client registry is unavailable, retry later",
                    ctx->config->db_retry_interval_ms);
        return NULL;
    }
    if (client_cache_put(ctx->cache, &record, &entry) != TK_OK || entry == NULL) {
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
        return NULL;
    }
    return entry;
}

/* Step 4. */
static bool secret_ok(struct handler_context *ctx, struct client_cache_entry *entry,
                      const char *secret)
{
    if (client_cache_secret_matches(ctx->cache, entry, secret)) {
        return true;
    }
    const struct client_record *client = client_cache_entry_record(entry);
    int rc = secret_hash_verify(secret, client->secret_hash);
    if (rc == TK_OK) {
        client_cache_remember_secret(ctx->cache, entry, secret);
        return true;
    }
    if (rc == TK_INVALID) {
        log_error("client '%.128s' has a malformed secret hash in the database", client->client_id);
    }
    return false;
}

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
        unavailable(resp, "tokens cannot be recorded right now, retry later", 1000);
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
    http_response_add_header(resp, "Cache-Control", "no-store");
    http_response_add_header(resp, "Pragma", "no-cache");
}

void token_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                           struct http_response *resp)
{
    /* 1. shape of the request */
    if (req->body_too_large) {
        http_response_oauth_error(resp, 413, "invalid_request", "request body exceeds 8192 bytes");
        return;
    }
    if (!is_form_content_type(req->content_type)) {
        invalid_request(resp, "content type must be application/x-www-form-urlencoded");
        return;
    }
    struct http_form form;
    const char *error = NULL;
    int rc = http_form_parse(req->body != NULL ? req->body : "", req->body_len, req->arena, &form,
                             &error);
    if (rc == TK_ERROR) {
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
        return;
    }
    if (rc != TK_OK) {
        invalid_request(resp, error);
        return;
    }
    const char *grant_type = NULL;
    switch (http_form_get(&form, "grant_type", &grant_type)) {
    case HTTP_FORM_ABSENT:
        invalid_request(resp, "missing grant_type");
        return;
    case HTTP_FORM_REPEATED:
        invalid_request(resp, "parameter 'grant_type' is repeated");
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
    if (!optional_param(&form, "scope", &requested_scope, resp, req->arena) ||
        !optional_param(&form, "resource", &resource, resp, req->arena) ||
        !optional_param(&form, "audience", &audience_param, resp, req->arena)) {
        return;
    }
    if (resource != NULL && audience_param != NULL) {
        invalid_request(resp, "use either resource or audience, not both");
        return;
    }
    const char *requested_audience = resource != NULL ? resource : audience_param;

    /* 2-4. who is asking */
    struct credentials creds;
    if (!read_credentials(req, &form, &creds, resp)) {
        return;
    }
    struct client_cache_entry *entry = find_client(ctx, req, &creds, resp);
    if (entry == NULL) {
        return;
    }
    if (!secret_ok(ctx, entry, creds.client_secret)) {
        invalid_client(resp, creds.basic);
        return;
    }
    const struct client_record *client = client_cache_entry_record(entry);

    /* 5. what it may do */
    if (!client->enabled) {
        http_response_oauth_error(resp, 400, "unauthorized_client", "the client is disabled");
        return;
    }
    if (!client->client_credentials_allowed) {
        http_response_oauth_error(resp, 400, "unauthorized_client",
                                  "the client may not use the client_credentials grant");
        return;
    }

    /* 6. scope and audience */
    const char *granted = NULL;
    rc = scope_settle(requested_scope, client->allowed_scopes, client->default_scopes, req->arena,
                      &granted, &error);
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
