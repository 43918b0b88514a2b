/*
 * handler_context.c - setting up what a worker's handlers share.
 *
 * The documents that depend only on configuration and keys are rendered
 * here, once per process, so serving them costs a copy.
 */
#include <string.h>
#include <time.h>

#include "tokend/discovery_endpoint.h"
#include "tokend/handler_context.h"
#include "tokend/status.h"

static int64_t wall_clock_s(void)
{
    return (int64_t)time(NULL);
}

int handler_context_init(struct handler_context *ctx, const struct tokend_config *config,
                         const struct key_set *keys, struct client_cache *cache, struct db_conn *db,
                         struct token_queue *queue)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->config = config;
    ctx->keys = keys;
    ctx->cache = cache;
    ctx->db = db;
    ctx->queue = queue;
    ctx->now_s = wall_clock_s;
    ctx->default_audience =
        config->default_audience[0] != '\0' ? config->default_audience : config->issuer;
    /* Endpoints live under the issuer's path, as the metadata says. */
    const char *host = strstr(config->issuer, "://");
    const char *path = host != NULL ? strchr(host + 3, '/') : NULL;
    ctx->path_prefix = path != NULL ? path : "";
    ctx->path_prefix_len = strlen(ctx->path_prefix);
    buffer_init(&ctx->metadata_json);
    buffer_init(&ctx->token_scratch);
    discovery_render_metadata(config, keys, &ctx->metadata_json);
    const struct introspection_cache_options introspection = {
        .max_entries = (size_t)config->introspect_cache_max_entries,
        .ttl_ms = config->introspect_cache_ttl_s * 1000,
        .negative_ttl_ms = config->introspect_negative_ttl_s * 1000,
    };
    ctx->introspection = introspection_cache_create(&introspection);
    ctx->revoked = revocation_set_create(NULL, NULL);
    if (buffer_failed(&ctx->metadata_json) || ctx->introspection == NULL || ctx->revoked == NULL) {
        return TK_ERROR;
    }
    return TK_OK;
}

void handler_context_free(struct handler_context *ctx)
{
    buffer_free(&ctx->metadata_json);
    buffer_free(&ctx->token_scratch);
    introspection_cache_destroy(ctx->introspection);
    revocation_set_destroy(ctx->revoked);
    ctx->introspection = NULL;
    ctx->revoked = NULL;
}
