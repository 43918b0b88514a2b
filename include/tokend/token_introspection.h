/*
 * token_introspection.h - whether an access token is active (RFC 7662
 * §2.2), as POST /oauth/introspect and POST /oauth/revoke need to know:
 * signed by one of our keys, issued by us, within its lifetime (give or
 * take clock_skew), not revoked by jti nor by its client's revoke-all,
 * and its client still there and enabled. Answers come from the worker's
 * validation cache when they can.
 */
#ifndef TOKEND_TOKEN_INTROSPECTION_H
#define TOKEND_TOKEN_INTROSPECTION_H

#include <stddef.h>

#include "tokend/handler_context.h"
#include "tokend/introspection_cache.h"

/* Every outcome; all but ACTIVE and UNAVAILABLE are "inactive" to the
 * caller, who is never told which. The order is that of the
 * STAT_INTROSPECT_* counters. */
enum introspection_outcome {
    INTROSPECT_ACTIVE,
    INTROSPECT_MALFORMED,       /* not a tokend JWS, or too long */
    INTROSPECT_UNKNOWN_KEY,     /* kid names none of our keys */
    INTROSPECT_BAD_ALG,         /* alg is not the key's (none, HS256 with a public key, ...) */
    INTROSPECT_BAD_SIGNATURE,   /* forged or altered */
    INTROSPECT_WRONG_ISSUER,    /* signed by our key for another issuer */
    INTROSPECT_EXPIRED,         /* exp + clock_skew has passed */
    INTROSPECT_NOT_YET_VALID,   /* iat - clock_skew is in the future */
    INTROSPECT_REVOKED,         /* its jti was revoked */
    INTROSPECT_CLIENT_REVOKED,  /* issued before its client's revoke-all */
    INTROSPECT_CLIENT_GONE,     /* its client was deleted or disabled */
    INTROSPECT_CACHED_INACTIVE, /* a cached inactive answer (the reason was counted then) */
    INTROSPECT_UNAVAILABLE,     /* no verdict: database needed and down, or out of memory */
    INTROSPECT_OUTCOME_COUNT
};

/* The metric label of an outcome ("active", "bad_signature", ...). */
const char *introspection_outcome_name(enum introspection_outcome outcome);

/* Decides about the `len` bytes of `token`. ACTIVE fills *out with the
 * token's claims; every other outcome zeroes it. Counts nothing (the
 * introspection endpoint counts its answers by outcome). */
enum introspection_outcome token_introspect(struct handler_context *ctx, const char *token,
                                            size_t len, struct arena *arena,
                                            struct introspection_entry_data *out);

/* For revocation: the claims of a token that is not active only because it
 * is not valid yet (an issuing host's clock ahead of ours), so its owner
 * can still revoke it. True with *out filled when its signature and issuer
 * verify and it has not expired, whatever its iat; false otherwise. */
bool token_claims_ignoring_iat(struct handler_context *ctx, const char *token, size_t len,
                               struct introspection_entry_data *out);

#endif
