/*
 * handler_context.h - everything the request handlers of one worker share:
 * configuration, keys, the client cache, the database connection and the
 * documents rendered once at start. Owned by the worker; handlers only read
 * the configuration and keys and update the cache and buffers.
 */
#ifndef TOKEND_HANDLER_CONTEXT_H
#define TOKEND_HANDLER_CONTEXT_H

#include <stdint.h>

#include "tokend/admin_token.h"
#include "tokend/buffer.h"
#include "tokend/client_cache.h"
#include "tokend/config.h"
#include "tokend/db_conn.h"
#include "tokend/introspection_cache.h"
#include "tokend/key_set.h"
#include "tokend/rate_limit.h"
#include "tokend/revocation_set.h"
#include "tokend/shm_segment.h"
#include "tokend/token_queue.h"

/* Wall-clock seconds (for iat/exp). Injectable for tests. */
typedef int64_t (*handler_clock_fn)(void);

/* What this worker's token endpoint did; plain counters so they can move
 * into a shared-memory stats slot. */
struct token_stats {
    uint64_t issued;     /* tokens answered with 200 (all recorded in the queue) */
    uint64_t queue_full; /* 503s because the token queue stayed full */
};

struct handler_context {
    const struct tokend_config *config;
    const struct key_set *keys;
    struct client_cache *cache;
    struct db_conn *db;
    struct token_queue *queue; /* issued tokens go here before the answer */
    struct token_stats token_stats;
    handler_clock_fn now_s;
    const char *default_audience; /* config default_audience, or the issuer */
    const char *path_prefix;      /* the issuer's path ("/auth" for https://h/auth), or "" */
    size_t path_prefix_len;
    struct buffer metadata_json; /* RFC 8414 document, rendered once */
    struct buffer token_scratch; /* the JWT being built, reused */

    /* Introspection and revocation (owned by the context). */
    struct introspection_cache *introspection; /* answers, keyed by SHA-256 of the token */
    struct revocation_set *revoked;            /* revoked jtis (revocation_view.c) */
    bool revocations_loaded;                   /* the revocations table was read at least once */
    bool revocations_stale;                    /* events may have been missed: read it again */
    bool revocations_stale_logged;             /* the failure to read it again was logged */
    int64_t revocations_retry_ms;              /* monotonic: no reading before this */

    /* The instance, set by the worker after init; NULL when the handlers
     * run on their own (unit tests): then the admin, health and metrics
     * endpoints answer 503 and nothing is counted. */
    struct shm_segment *segment;
    struct stats_slot *stats;              /* this worker's slot, or NULL (all taken) */
    uint64_t events_applied;               /* admin events applied to this worker's cache */
    const struct admin_token *admin_token; /* NULL or unset: admin endpoints disabled */
    struct rate_limit admin_limit;         /* admin requests of this worker with the token */
    struct rate_limit admin_refused_limit; /* ... and those refused (no or wrong token) */
    int worker_count;                      /* workers the instance should have */
};

/* Fills the context, creates its introspection cache and revocation set,
 * and renders the discovery document. Returns TK_OK or TK_ERROR (out of
 * memory; the context is then safe to free). The client cache, db
 * connection and queue are the caller's and are not freed here. */
int handler_context_init(struct handler_context *ctx, const struct tokend_config *config,
                         const struct key_set *keys, struct client_cache *cache, struct db_conn *db,
                         struct token_queue *queue);

void handler_context_free(struct handler_context *ctx);

#endif
