/*
 * health_endpoint.h - GET /health (readiness of the whole instance) and
 * GET /health?live (this worker answers).
 */
#ifndef TOKEND_HEALTH_ENDPOINT_H
#define TOKEND_HEALTH_ENDPOINT_H

#include "tokend/handler_context.h"
#include "tokend/http_request.h"
#include "tokend/http_response.h"

void health_handle(struct handler_context *ctx, const struct http_request *req,
                   struct http_response *resp);

#endif
