/*
 * discovery_endpoint.c - the JWKS and RFC 8414 metadata documents.
 *
 * Both depend only on the configuration and the keys, which a worker loads
 * once, so they are rendered at start (the JWKS by key_set, the metadata
 * here) and each request copies bytes. They are public and change only
 * when keys rotate, so clients and caches may keep them five minutes.
 */
#include <string.h>

#include "tokend/discovery_endpoint.h"

/* Appends ,"name":"<issuer><path>" with JSON escaping. */
static void append_endpoint(struct buffer *out, const char *name, const char *issuer,
                            const char *path)
{
    struct buffer url;
    buffer_init(&url);
    buffer_printf(&url, "%s%s", issuer, path);
    buffer_printf(out, ",\"%s\":", name);
    buffer_append_json_string(out, url.failed ? "" : url.data);
    buffer_free(&url);
}

void discovery_render_metadata(const struct tokend_config *config, const struct key_set *keys,
                               struct buffer *out)
{
    buffer_append_str(out, "{\"issuer\":");
    buffer_append_json_string(out, config->issuer);
    append_endpoint(out, "token_endpoint", config->issuer, "/oauth/token");
    append_endpoint(out, "jwks_uri", config->issuer, "/.well-known/jwks.json");
    append_endpoint(out, "introspection_endpoint", config->issuer, "/oauth/introspect");
    append_endpoint(out, "revocation_endpoint", config->issuer, "/oauth/revoke");
    /* No authorization endpoint: no response types (RFC 8414 requires the
     * member, an empty list says so). */
    buffer_append_str(out, ",\"response_types_supported\":[]"
                           ",\"grant_types_supported\":[\"client_credentials\"]"
                           ",\"token_endpoint_auth_methods_supported\":"
                           "[\"client_secret_basic\",\"client_secret_post\"]"
                           ",\"introspection_endpoint_auth_methods_supported\":"
                           "[\"client_secret_basic\",\"client_secret_post\"]"
                           ",\"revocation_endpoint_auth_methods_supported\":"
                           "[\"client_secret_basic\",\"client_secret_post\"]");
    /* The algorithms tokens are signed with, each once, signing key first. */
    buffer_append_str(out, ",\"access_token_signing_alg_values_supported\":[");
    for (size_t i = 0; i < keys->count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++) {
            seen = seen || keys->keys[j].alg == keys->keys[i].alg;
        }
        if (!seen) {
            buffer_printf(out, "%s\"%s\"", i == 0 ? "" : ",", jws_alg_name(keys->keys[i].alg));
        }
    }
    buffer_append_str(out, "]}");
}

static void serve_document(struct http_response *resp, const struct buffer *document)
{
    resp->status = 200;
    buffer_reset(&resp->body);
    buffer_append(&resp->body, document->data, document->len);
    http_response_add_header(resp, "Cache-Control", "public, max-age=300");
}

void discovery_handle_jwks(struct handler_context *ctx, struct http_response *resp)
{
    serve_document(resp, &ctx->keys->jwks_json);
}

void discovery_handle_metadata(struct handler_context *ctx, struct http_response *resp)
{
    serve_document(resp, &ctx->metadata_json);
}
