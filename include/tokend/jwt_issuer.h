/*
 * jwt_issuer.h - builds a signed JWS compact token for an access token
 * (RFC 9068): header {"alg","typ","kid"}, claims iss, sub, aud, client_id,
 * scope (omitted when empty), iat, exp, jti, in that order. Built from a
 * fixed template with JSON escaping, base64url, and one EVP signature with
 * the preloaded key; no JSON library and no PEM parsing per token.
 */
#ifndef TOKEND_JWT_ISSUER_H
#define TOKEND_JWT_ISSUER_H

#include <stdint.h>

#include "tokend/buffer.h"
#include "tokend/signing_key.h"

#define JWT_JTI_SIZE 33 /* 128 random bits as 32 lowercase hex digits + NUL */

struct jwt_claims {
    const char *iss;
    const char *sub;
    const char *aud;
    const char *client_id;
    const char *scope; /* "" or NULL: claim omitted */
    int64_t iat;
    int64_t exp;
    const char *jti;
};

/* Fills `jti` with 128 random bits in hex. Returns TK_OK or TK_ERROR. */
int jwt_new_jti(char jti[JWT_JTI_SIZE]);

/* Appends the compact JWS to `out`. `typ` is "at+jwt" or "JWT". Returns
 * TK_OK or TK_ERROR (signature or memory failure; `out` then holds garbage
 * and must be reset by the caller). */
int jwt_issuer_build(const struct signing_key *key, const char *typ,
                     const struct jwt_claims *claims, struct buffer *out);

#endif
