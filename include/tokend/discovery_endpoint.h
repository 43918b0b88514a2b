/*
 * discovery_endpoint.h - the public documents: the JWKS
 * (/.well-known/jwks.json) and the RFC 8414 authorization server metadata
 * (/.well-known/oauth-authorization-server). Both are rendered once per
 * process; serving them is a copy.
 */
#ifndef TOKEND_DISCOVERY_ENDPOINT_H
#define TOKEND_DISCOVERY_ENDPOINT_H

#include "tokend/buffer.h"
#include "tokend/config.h"
#include "tokend/handler_context.h"
#include "tokend/http_response.h"
#include "tokend/key_set.h"

/* Appends the RFC 8414 metadata JSON for this issuer to `out`. Cannot fail
 * beyond `out` failing. */
void discovery_render_metadata(const struct tokend_config *config, const struct key_set *keys,
                               struct buffer *out);

/* Fill `resp` with the JWKS / the metadata, cacheable for 5 minutes. */
void discovery_handle_jwks(struct handler_context *ctx, struct http_response *resp);
void discovery_handle_metadata(struct handler_context *ctx, struct http_response *resp);

#endif
