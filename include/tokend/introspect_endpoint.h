/*
 * introspect_endpoint.h - POST /oauth/introspect (RFC 7662) and POST
 * /oauth/revoke (RFC 7009): the two endpoints resource servers and clients
 * use to ask about, and withdraw, tokens tokend issued.
 */
#ifndef TOKEND_INTROSPECT_ENDPOINT_H
#define TOKEND_INTROSPECT_ENDPOINT_H

#include "tokend/handler_context.h"
#include "tokend/http_request.h"
#include "tokend/http_response.h"

/* The scope a client needs in its allowed scopes to call introspection. */
#define INTROSPECT_PERMISSION_SCOPE "tokend:introspect"

/* Handles a POST to the introspection endpoint: 200 with the RFC 7662
 * answer, or an RFC 6749 §5.2 error (400, 401, 403, 413, 503). */
void introspect_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                                struct http_response *resp);

/* Handles a POST to the revocation endpoint: 200 whether or not anything
 * was revoked (RFC 7009 §2.2), or an error (400, 401, 413, 503). */
void revoke_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                            struct http_response *resp);

#endif
