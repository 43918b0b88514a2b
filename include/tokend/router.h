/*
 * router.h - maps a request's method and path to its handler; answers 404
 * and 405 (with Allow) itself, as JSON.
 */
#ifndef TOKEND_ROUTER_H
#define TOKEND_ROUTER_H

#include "tokend/handler_context.h"
#include "tokend/http_request.h"
#include "tokend/http_response.h"

/* Always fills `resp`. Cannot fail (internal failures become a 500 by
 * http_response_serialize). */
void router_handle(struct handler_context *ctx, const struct http_request *req,
                   struct http_response *resp);

#endif
