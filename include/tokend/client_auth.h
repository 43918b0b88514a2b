/*
 * client_auth.h - what the OAuth endpoints that take a form and a client
 * (token, introspection, revocation) share: reading the form body, and
 * authenticating the client (client_secret_basic or client_secret_post,
 * RFC 6749 §2.3.1) against the worker's client cache and the database.
 *
 * Every function that can refuse fills the RFC 6749 §5.2 JSON answer and
 * returns false/NULL; the caller just returns.
 */
#ifndef TOKEND_CLIENT_AUTH_H
#define TOKEND_CLIENT_AUTH_H

#include <stdbool.h>

#include "tokend/arena.h"
#include "tokend/client_cache.h"
#include "tokend/handler_context.h"
#include "tokend/http_form.h"
#include "tokend/http_request.h"
#include "tokend/http_response.h"

/* The body limit the transports enforce (req->body_too_large). */
#define OAUTH_FORM_MAX_BYTES 8192

/* Parses the request body as an application/x-www-form-urlencoded form:
 * 413 when it was over the limit, 400 for another content type or bad
 * syntax. */
bool oauth_form_read(const struct http_request *req, struct http_form *form,
                     struct http_response *resp);

/* *value = the parameter `name`, or NULL when absent; false (400) when it
 * is repeated. */
bool oauth_form_optional(const struct http_form *form, const char *name, const char **value,
                         struct http_response *resp, struct arena *arena);

/* 400 invalid_request with `description`. */
void oauth_invalid_request(struct http_response *resp, const char *description);

/* 503 temporarily_unavailable with Retry-After (at least 1 s). */
void oauth_unavailable(struct http_response *resp, const char *description, int retry_ms);

enum client_lookup_result {
    CLIENT_LOOKUP_FOUND,
    CLIENT_LOOKUP_UNKNOWN,     /* no such client (cached negatively) */
    CLIENT_LOOKUP_UNAVAILABLE, /* the database could not be asked */
    CLIENT_LOOKUP_NO_MEMORY,
};

/* The cache entry of `client_id` from the cache, or on a miss from the
 * database (then cached, a missing client negatively). The id must have
 * passed client_id_valid(). */
enum client_lookup_result client_lookup(struct handler_context *ctx, const char *client_id,
                                        struct arena *arena, struct client_cache_entry **entry);

/* Authenticates the client of the request: exactly one method, a known and
 * enabled client, the right secret (a remembered keyed digest on a cache
 * hit, else the full PBKDF2 check). Returns its record (valid until the
 * next cache operation), or NULL with the answer filled: 401
 * invalid_client (with a Basic challenge when Basic was tried), 400
 * invalid_request or unauthorized_client (disabled), 503. */
const struct client_record *client_authenticate(struct handler_context *ctx,
                                                const struct http_request *req,
                                                const struct http_form *form,
                                                struct http_response *resp);

/* For the introspection and revocation endpoints: reads the form, its
 * `token` (required) and `token_type_hint` (optional, at most once, not
 * used), and authenticates the client. Returns the client with *token set,
 * or NULL with the answer filled. */
const struct client_record *client_authenticate_for_token(struct handler_context *ctx,
                                                          const struct http_request *req,
                                                          struct http_response *resp,
                                                          const char **token);

#endif
