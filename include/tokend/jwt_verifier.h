/*
 * jwt_verifier.h - verifies an access token tokend issued (RFC 9068 JWS
 * compact serialization) against the instance's key set, for introspection
 * (RFC 7662). The key is chosen by the header's kid only and the header's
 * alg must be that key's own algorithm; the claims are read only after the
 * signature verifies. The rules and their reasons are at the top of
 * src/jwt_verifier.c.
 */
#ifndef TOKEND_JWT_VERIFIER_H
#define TOKEND_JWT_VERIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "tokend/key_set.h"
#include "tokend/signing_key.h"
#include "tokend/token_queue.h"

/* Longest token looked at; a longer one is MALFORMED before any decoding.
 * A tokend token is about 400 (ES256) to 700 (RS256 4096-bit) bytes. */
#define JWT_VERIFY_MAX_TOKEN 8192
/* Longest encoded header segment: ours is about 110 bytes plus the kid. */
#define JWT_VERIFY_MAX_HEADER 1024

/* Claim buffers, each with room for the NUL. A claim that does not fit makes
 * the token MALFORMED. The first four match the flusher's token records. */
#define JWT_VERIFY_JTI_SIZE       TOKEN_RECORD_JTI_SIZE
#define JWT_VERIFY_CLIENT_ID_SIZE TOKEN_RECORD_CLIENT_ID_SIZE
#define JWT_VERIFY_SCOPE_SIZE     TOKEN_RECORD_SCOPE_SIZE
#define JWT_VERIFY_AUD_SIZE       TOKEN_RECORD_AUDIENCE_SIZE
#define JWT_VERIFY_SUB_SIZE       256 /* the client_id today; room for a user subject */
#define JWT_VERIFY_ISS_SIZE       512 /* must hold the configured issuer */

enum jwt_verify_result {
    JWT_VERIFY_OK,
    JWT_VERIFY_MALFORMED,      /* not a well-formed tokend JWS, or a claim too long */
    JWT_VERIFY_UNKNOWN_KEY,    /* kid names no key of the set */
    JWT_VERIFY_BAD_ALG,        /* alg is not the algorithm of the kid's key (e.g. "none") */
    JWT_VERIFY_BAD_SIGNATURE,  /* the signature does not verify (or has the wrong length) */
    JWT_VERIFY_WRONG_ISSUER,   /* signed by us, but iss is not our issuer */
    JWT_VERIFY_EXPIRED,        /* exp + leeway <= now */
    JWT_VERIFY_NOT_YET_VALID,  /* iat (or nbf) - leeway > now */
    JWT_VERIFY_INTERNAL_ERROR, /* OpenSSL or memory failure: says nothing about the token */
};

/* What introspection answers with, all NUL-terminated. */
struct jwt_verified_claims {
    char jti[JWT_VERIFY_JTI_SIZE];
    char client_id[JWT_VERIFY_CLIENT_ID_SIZE];
    char sub[JWT_VERIFY_SUB_SIZE];
    char iss[JWT_VERIFY_ISS_SIZE];
    char scope[JWT_VERIFY_SCOPE_SIZE]; /* "" when the token has no scope claim */
    char aud[JWT_VERIFY_AUD_SIZE];     /* the audience, or the first of an array */
    size_t aud_count;                  /* 1 for a string aud, else the array's length */
    int64_t iat;
    int64_t exp;
    char kid[SIGNING_KID_MAX + 1]; /* the key that verified the token */
    enum jws_alg alg;
};

/* Metric label of a result: "ok", "malformed", "unknown_key", "bad_alg",
 * "bad_signature", "wrong_issuer", "expired", "not_yet_valid",
 * "internal_error"; "unknown" for a value outside the enum. Cannot fail. */
const char *jwt_verify_result_name(enum jwt_verify_result result);

/* Verifies `token` (token_len bytes, need not be NUL-terminated) with the
 * keys of `keys`, requiring iss == `issuer` exactly, and that the token is
 * valid at `now_s` (Unix seconds) give or take `leeway_s` (a negative leeway
 * counts as 0). Returns JWT_VERIFY_OK with `out` filled in, or another
 * result with `out` zeroed. JWT_VERIFY_INTERNAL_ERROR is the only result
 * that is not a verdict on the token (a caller must not cache it).
 *
 * Not thread-safe with respect to `keys`: an HS256 key's MAC context is
 * reused, as for signing (one key set per process). */
enum jwt_verify_result jwt_verify(const struct key_set *keys, const char *issuer, const char *token,
                                  size_t token_len, int64_t now_s, int64_t leeway_s,
                                  struct jwt_verified_claims *out);

#endif
