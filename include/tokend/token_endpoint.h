/*
 * token_endpoint.h - POST /oauth/token, the client_credentials grant
 * (RFC 6749 §4.4) issuing RFC 9068 JWT access tokens.
 */
#ifndef TOKEND_TOKEN_ENDPOINT_H
#define TOKEND_TOKEN_ENDPOINT_H

#include "tokend/handler_context.h"
#include "tokend/http_request.h"
#include "tokend/http_response.h"

/* Handles a POST to the token endpoint; always fills `resp` with either a
 * token (200) or an RFC 6749 §5.2 error. Cannot fail. */
void token_endpoint_handle(struct handler_context *ctx, const struct http_request *req,
                           struct http_response *resp);

#endif
