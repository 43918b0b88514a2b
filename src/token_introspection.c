/*
 * token_introspection.c - deciding whether a token is active, fast when the
 * worker has seen it before.
 *
 * The path of one token:
 *   1. an empty token, or one longer than any we issue, is MALFORMED
 *      before anything is hashed;
 *   2. SHA-256 of the token is the cache key (the token itself is never
 *      kept). A cached positive answer is re-checked against the things
 *      that can change under it: exp (+ clock_skew) on the wall clock, and
 *      the revoked set (a revocation also drops the entry, but the check
 *      costs one hash lookup and does not depend on that). A cached
 *      inactive answer stands (its reason was counted when it was made);
 *   3. the worker's revocation set must be current, on a hit as on a miss
 *      (else 503: an unknown revocation must not make a token "active");
 *   4. jwt_verify: signature first (kid picks the key, alg must be the
 *      key's), then iss and the times; the claims are only read once the
 *      signature holds;
 *   5. the jti against the revoked set; the client (cache, or the
 *      database on a miss) must exist and be enabled, and the token must be
 *      issued after the client's last revoke-all;
 *   6. the answer is cached: active until min(exp + clock_skew,
 *      introspect_cache_ttl); inactive for introspect_negative_ttl when the
 *      verdict cannot change (malformed, forged, wrong issuer, expired,
 *      revoked). Verdicts that can change (not yet valid, the client gone,
 *      which an operator may undo) and failures to decide are not cached.
 *
 * Cached positive answers are also dropped when their client changes (an
 * ADMIN_EVENT_INVALIDATE, cache_admin.c), so a disabled client's tokens
 * turn inactive as fast as the client cache hears of it.
 */
#include <string.h>

#include "tokend/client_auth.h"
#include "tokend/instance_stats.h"
#include "tokend/jwt_verifier.h"
#include "tokend/logging.h"
#include "tokend/revocation_view.h"
#include "tokend/status.h"
#include "tokend/token_introspection.h"

_Static_assert(STAT_INTROSPECT_UNAVAILABLE - STAT_INTROSPECT_ACTIVE ==
                   INTROSPECT_UNAVAILABLE - INTROSPECT_ACTIVE,
               "STAT_INTROSPECT_* must follow enum introspection_outcome");

static const char *const outcome_names[INTROSPECT_OUTCOME_COUNT] = {
    [INTROSPECT_ACTIVE] = "active",
    [INTROSPECT_MALFORMED] = "malformed",
    [INTROSPECT_UNKNOWN_KEY] = "unknown_key",
    [INTROSPECT_BAD_ALG] = "bad_alg",
    [INTROSPECT_BAD_SIGNATURE] = "bad_signature",
    [INTROSPECT_WRONG_ISSUER] = "wrong_issuer",
    [INTROSPECT_EXPIRED] = "expired",
    [INTROSPECT_NOT_YET_VALID] = "not_yet_valid",
    [INTROSPECT_REVOKED] = "revoked",
    [INTROSPECT_CLIENT_REVOKED] = "client_revoked",
    [INTROSPECT_CLIENT_GONE] = "client_gone",
    [INTROSPECT_CACHED_INACTIVE] = "cached_inactive",
    [INTROSPECT_UNAVAILABLE] = "unavailable",
};

const char *introspection_outcome_name(enum introspection_outcome outcome)
{
    return (unsigned)outcome < INTROSPECT_OUTCOME_COUNT ? outcome_names[outcome] : "unknown";
}

static enum introspection_outcome from_verify(enum jwt_verify_result result)
{
    switch (result) {
    case JWT_VERIFY_OK:
        return INTROSPECT_ACTIVE;
    case JWT_VERIFY_MALFORMED:
        return INTROSPECT_MALFORMED;
    case JWT_VERIFY_UNKNOWN_KEY:
        return INTROSPECT_UNKNOWN_KEY;
    case JWT_VERIFY_BAD_ALG:
        return INTROSPECT_BAD_ALG;
    case JWT_VERIFY_BAD_SIGNATURE:
        return INTROSPECT_BAD_SIGNATURE;
    case JWT_VERIFY_WRONG_ISSUER:
        return INTROSPECT_WRONG_ISSUER;
    case JWT_VERIFY_EXPIRED:
        return INTROSPECT_EXPIRED;
    case JWT_VERIFY_NOT_YET_VALID:
        return INTROSPECT_NOT_YET_VALID;
    case JWT_VERIFY_INTERNAL_ERROR:
        break;
    }
    return INTROSPECT_UNAVAILABLE;
}

/* Inactive verdicts that no later event can turn active. */
static bool verdict_is_final(enum introspection_outcome outcome)
{
    switch (outcome) {
    case INTROSPECT_MALFORMED:
    case INTROSPECT_UNKNOWN_KEY: /* a key added later comes with a restart */
    case INTROSPECT_BAD_ALG:
    case INTROSPECT_BAD_SIGNATURE:
    case INTROSPECT_WRONG_ISSUER:
    case INTROSPECT_EXPIRED:
    case INTROSPECT_REVOKED:
    case INTROSPECT_CLIENT_REVOKED:
        return true;
    default:
        return false;
    }
}

/* The answer's data from verified claims. */
static void fill_answer(const struct jwt_verified_claims *claims,
                        struct introspection_entry_data *out)
{
    out->active = true;
    /* Each claim buffer of the verifier is no larger than ours. */
    _Static_assert(sizeof(out->jti) >= sizeof(claims->jti), "jti fits");
    _Static_assert(sizeof(out->client_id) >= sizeof(claims->client_id), "client_id fits");
    _Static_assert(sizeof(out->sub) >= sizeof(claims->sub), "sub fits");
    _Static_assert(sizeof(out->scope) >= sizeof(claims->scope), "scope fits");
    _Static_assert(sizeof(out->aud) >= sizeof(claims->aud), "aud fits");
    memcpy(out->jti, claims->jti, sizeof(claims->jti));
    memcpy(out->client_id, claims->client_id, sizeof(claims->client_id));
    memcpy(out->sub, claims->sub, sizeof(claims->sub));
    memcpy(out->scope, claims->scope, sizeof(claims->scope));
    memcpy(out->aud, claims->aud, sizeof(claims->aud));
    out->iat = claims->iat;
    out->exp = claims->exp;
}

/* Steps 3-5 for a token the cache did not know. */
static enum introspection_outcome decide(struct handler_context *ctx, const char *token, size_t len,
                                         int64_t now_s, struct arena *arena,
                                         struct introspection_entry_data *out)
{
    if (!revocation_view_trusted(ctx)) {
        return INTROSPECT_UNAVAILABLE;
    }
    struct jwt_verified_claims claims;
    enum introspection_outcome outcome = from_verify(jwt_verify(
        ctx->keys, ctx->config->issuer, token, len, now_s, ctx->config->clock_skew_s, &claims));
    if (outcome != INTROSPECT_ACTIVE) {
        return outcome;
    }
    if (revocation_view_contains(ctx, claims.jti)) {
        return INTROSPECT_REVOKED;
    }
    if (!client_id_valid(claims.client_id)) {
        return INTROSPECT_CLIENT_GONE; /* signed by us, so never; but no query for it */
    }
    struct client_cache_entry *entry = NULL;
    switch (client_lookup(ctx, claims.client_id, arena, &entry)) {
    case CLIENT_LOOKUP_FOUND:
        break;
    case CLIENT_LOOKUP_UNKNOWN:
        return INTROSPECT_CLIENT_GONE;
    case CLIENT_LOOKUP_UNAVAILABLE:
    case CLIENT_LOOKUP_NO_MEMORY:
        return INTROSPECT_UNAVAILABLE;
    }
    const struct client_record *client = client_cache_entry_record(entry);
    if (!client->enabled) {
        return INTROSPECT_CLIENT_GONE;
    }
    if (claims.iat < client->tokens_not_before_s) {
        return INTROSPECT_CLIENT_REVOKED;
    }
    fill_answer(&claims, out);
    return INTROSPECT_ACTIVE;
}

/* Step 2 for a cached positive answer: still active now? */
static enum introspection_outcome
recheck(struct handler_context *ctx, const struct introspection_entry_data *data, int64_t now_s)
{
    if (data->exp + ctx->config->clock_skew_s <= now_s) {
        return INTROSPECT_EXPIRED;
    }
    if (revocation_view_contains(ctx, data->jti)) {
        return INTROSPECT_REVOKED;
    }
    return INTROSPECT_ACTIVE;
}

static enum introspection_outcome introspect(struct handler_context *ctx, const char *token,
                                             size_t len, struct arena *arena,
                                             struct introspection_entry_data *out)
{
    if (len == 0 || len > JWT_VERIFY_MAX_TOKEN) {
        return INTROSPECT_MALFORMED;
    }
    uint8_t key[INTROSPECTION_CACHE_KEY_SIZE];
    if (introspection_cache_key(token, len, key) != TK_OK) {
        return INTROSPECT_UNAVAILABLE;
    }
    int64_t now_s = ctx->now_s();
    enum introspection_outcome outcome;
    switch (introspection_cache_lookup(ctx->introspection, key, out)) {
    case INTROSPECTION_CACHE_HIT:
        if (!revocation_view_trusted(ctx)) {
            return INTROSPECT_UNAVAILABLE; /* the set may lack its revocation */
        }
        outcome = recheck(ctx, out, now_s);
        if (outcome != INTROSPECT_ACTIVE) {
            introspection_cache_put_negative(ctx->introspection, key);
        }
        return outcome;
    case INTROSPECTION_CACHE_NEGATIVE:
        return INTROSPECT_CACHED_INACTIVE;
    case INTROSPECTION_CACHE_MISS:
        break;
    }
    outcome = decide(ctx, token, len, now_s, arena, out);
    if (outcome == INTROSPECT_ACTIVE) {
        int64_t lifetime_ms = (out->exp + ctx->config->clock_skew_s - now_s) * 1000;
        if (introspection_cache_put(ctx->introspection, key, out, lifetime_ms) == TK_ERROR) {
            log_warn("out of memory caching an introspection answer");
        }
    } else if (verdict_is_final(outcome)) {
        introspection_cache_put_negative(ctx->introspection, key);
    }
    return outcome;
}

enum introspection_outcome token_introspect(struct handler_context *ctx, const char *token,
                                            size_t len, struct arena *arena,
                                            struct introspection_entry_data *out)
{
    memset(out, 0, sizeof(*out));
    enum introspection_outcome outcome = introspect(ctx, token, len, arena, out);
    if (outcome != INTROSPECT_ACTIVE) {
        memset(out, 0, sizeof(*out));
    }
    return outcome;
}

bool token_claims_ignoring_iat(struct handler_context *ctx, const char *token, size_t len,
                               struct introspection_entry_data *out)
{
    memset(out, 0, sizeof(*out));
    /* A year of leeway admits any iat a clock could be off by; exp is
     * then checked without it. */
    const int64_t year_s = 366 * 24 * 3600;
    int64_t now_s = ctx->now_s();
    struct jwt_verified_claims claims;
    if (len == 0 || len > JWT_VERIFY_MAX_TOKEN ||
        jwt_verify(ctx->keys, ctx->config->issuer, token, len, now_s, year_s, &claims) !=
            JWT_VERIFY_OK ||
        claims.exp + ctx->config->clock_skew_s <= now_s) {
        return false;
    }
    fill_answer(&claims, out);
    return true;
}
