/*
 * metrics_endpoint.h - GET /metrics: the instance's counters in the
 * Prometheus text exposition format 0.0.4.
 */
#ifndef TOKEND_METRICS_ENDPOINT_H
#define TOKEND_METRICS_ENDPOINT_H

#include "tokend/handler_context.h"
#include "tokend/http_response.h"

void metrics_handle(struct handler_context *ctx, struct http_response *resp);

#endif
