/*
 * client_auth.c - form reading and client authentication for the OAuth
 * endpoints (token, introspection, revocation).
 *
 * Authentication, cheapest steps first:
 *   1. the credentials: exactly one of client_secret_basic (Authorization:
 *      Basic) and client_secret_post (client_id + client_secret in the
 *      form); both at once is a 400, a malformed header a 401;
 *   2. the client record: the worker's cache, or one indexed query on a
 *      miss (a missing client is cached negatively); an id no client can
 *      have is refused before it costs a cache slot or a query;
 *   3. the secret: a remembered keyed digest on a hit, else the full PBKDF2
 *      check (a wrong secret always takes the full check, so a hit never
 *      answers faster for a wrong secret than a miss);
 *   4. the client is enabled.
 * Unknown client and wrong secret give the same 401, so the answer does
 * not tell which client ids exist.
 *
 * Descriptions never echo a secret; they name the parameter at fault.
 * Nothing is logged per request except failures of tokend itself (a corrupt
 * stored hash).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tokend/basic_auth.h"
#include "tokend/client_auth.h"
#include "tokend/client_store.h"
#include "tokend/logging.h"
#include "tokend/secret_hash.h"
#include "tokend/status.h"

/* What authentication the request carried. */
struct credentials {
    const char *client_id;
    const char *client_secret;
    bool basic; /* came in the Authorization header */
};

void oauth_invalid_request(struct http_response *resp, const char *description)
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

void oauth_unavailable(struct http_response *resp, const char *description, int retry_ms)
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

bool oauth_form_read(const struct http_request *req, struct http_form *form,
                     struct http_response *resp)
{
    if (req->body_too_large) {
        http_response_oauth_error(resp, 413, "invalid_request", "request body exceeds 8192 bytes");
        return false;
    }
    if (!is_form_content_type(req->content_type)) {
        oauth_invalid_request(resp, "content type must be application/x-www-form-urlencoded");
        return false;
    }
    const char *error = NULL;
    int rc = http_form_parse(req->body != NULL ? req->body : "", req->body_len, req->arena, form,
                             &error);
    if (rc == TK_ERROR) {
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
        return false;
    }
    if (rc != TK_OK) {
        oauth_invalid_request(resp, error);
        return false;
    }
    return true;
}

bool oauth_form_optional(const struct http_form *form, const char *name, const char **value,
                         struct http_response *resp, struct arena *arena)
{
    *value = NULL;
    if (http_form_get(form, name, value) == HTTP_FORM_REPEATED) {
        char *text = arena_alloc(arena, 64);
        if (text != NULL) {
            snprintf(text, 64, "parameter '%s' is repeated", name);
        }
        oauth_invalid_request(resp, text != NULL ? text : "a parameter is repeated");
        return false;
    }
    return true;
}

/* Step 1. Returns false with the error answer filled. */
static bool read_credentials(const struct http_request *req, const struct http_form *form,
                             struct credentials *creds, struct http_response *resp)
{
    const char *body_id = NULL, *body_secret = NULL;
    if (!oauth_form_optional(form, "client_id", &body_id, resp, req->arena) ||
        !oauth_form_optional(form, "client_secret", &body_secret, resp, req->arena)) {
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
            oauth_invalid_request(resp, "use one client authentication method, not both");
            return false;
        }
        if (body_id != NULL && strcmp(body_id, creds->client_id) != 0) {
            oauth_invalid_request(resp, "client_id does not match the Authorization header");
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

enum client_lookup_result client_lookup(struct handler_context *ctx, const char *client_id,
                                        struct arena *arena, struct client_cache_entry **entry)
{
    *entry = NULL;
    switch (client_cache_lookup(ctx->cache, client_id, entry)) {
    case CLIENT_CACHE_HIT:
        return CLIENT_LOOKUP_FOUND;
    case CLIENT_CACHE_NEGATIVE:
        return CLIENT_LOOKUP_UNKNOWN;
    case CLIENT_CACHE_MISS:
        break;
    }
    struct client_record record;
    int rc = client_store_lookup(ctx->db, client_id, arena, &record);
    if (rc == TK_NOT_FOUND) {
        client_cache_put_negative(ctx->cache, client_id);
        return CLIENT_LOOKUP_UNKNOWN;
    }
    if (rc != TK_OK) {
        return CLIENT_LOOKUP_UNAVAILABLE;
    }
    if (client_cache_put(ctx->cache, &record, entry) != TK_OK || *entry == NULL) {
        return CLIENT_LOOKUP_NO_MEMORY;
    }
    return CLIENT_LOOKUP_FOUND;
}

/* Step 3. */
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

const struct client_record *client_authenticate(struct handler_context *ctx,
                                                const struct http_request *req,
                                                const struct http_form *form,
                                                struct http_response *resp)
{
    struct credentials creds;
    if (!read_credentials(req, form, &creds, resp)) {
        return NULL;
    }
    if (!client_id_valid(creds.client_id)) {
        invalid_client(resp, creds.basic);
        return NULL;
    }
    struct client_cache_entry *entry = NULL;
    switch (client_lookup(ctx, creds.client_id, req->arena, &entry)) {
    case CLIENT_LOOKUP_FOUND:
        break;
    case CLIENT_LOOKUP_UNKNOWN:
        invalid_client(resp, creds.basic);
        return NULL;
    case CLIENT_LOOKUP_UNAVAILABLE:
        oauth_unavailable(resp, "the client registry is unavailable, retry later",
                          ctx->config->db_retry_interval_ms);
        return NULL;
    case CLIENT_LOOKUP_NO_MEMORY:
        http_response_oauth_error(resp, 500, "server_error", "out of memory");
        return NULL;
    }
    if (!secret_ok(ctx, entry, creds.client_secret)) {
        invalid_client(resp, creds.basic);
        return NULL;
    }
    const struct client_record *client = client_cache_entry_record(entry);
    if (!client->enabled) {
        http_response_oauth_error(resp, 400, "unauthorized_client", "the client is disabled");
        return NULL;
    }
    return client;
}

const struct client_record *client_authenticate_for_token(struct handler_context *ctx,
                                                          const struct http_request *req,
                                                          struct http_response *resp,
                                                          const char **token)
{
    struct http_form form;
    if (!oauth_form_read(req, &form, resp)) {
        return NULL;
    }
    const char *hint = NULL;
    if (!oauth_form_optional(&form, "token", token, resp, req->arena) ||
        !oauth_form_optional(&form, "token_type_hint", &hint, resp, req->arena)) {
        return NULL;
    }
    const struct client_record *client = client_authenticate(ctx, req, &form, resp);
    if (client == NULL) {
        return NULL;
    }
    if (*token == NULL) {
        oauth_invalid_request(resp, "missing token");
        return NULL;
    }
    return client;
}
