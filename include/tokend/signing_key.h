/*
 * signing_key.h - one JWS key: loaded once from a PEM file (or raw HMAC
 * bytes) at start, never parsed per request. ES256 keys are P-256 EC keys,
 * RS256 keys RSA >= 2048 bits, HS256 keys >= 32 bytes.
 *
 * The kid is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public
 * key unless configured, so every host sharing a key file agrees on it. An
 * HS256 kid is derived with HMAC so it reveals nothing about the key.
 */
#ifndef TOKEND_SIGNING_KEY_H
#define TOKEND_SIGNING_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "tokend/buffer.h"
#include "tokend/hmac_sha256.h"

enum jws_alg { JWS_ALG_ES256 = 1, JWS_ALG_RS256, JWS_ALG_HS256 };

#define SIGNING_KID_MAX  64
#define SIGNING_MAX_SIG  512 /* RS256 with up to 4096-bit keys */
#define SIGNING_HMAC_MIN 32
#define SIGNING_HMAC_MAX 256

struct signing_key {
    enum jws_alg alg;
    char kid[SIGNING_KID_MAX + 1];
    bool has_private;               /* can sign (false for a published previous public key) */
    EVP_PKEY *pkey;                 /* ES256/RS256 */
    uint8_t hmac[SIGNING_HMAC_MAX]; /* HS256 */
    size_t hmac_len;
    /* Prepared once a private key is loaded, so a signature does no lookup
     * or set-up: a keyed HMAC (HS256), or a digest-sign context to copy
     * (ES256/RS256) and the context each signature works in. */
    struct hmac_sha256 *hmac_ctx;
    EVP_MD_CTX *sign_template;
    EVP_MD_CTX *sign_work;
};

/* "ES256" -> JWS_ALG_ES256 ... Returns TK_OK or TK_INVALID. */
int jws_alg_parse(const char *name, enum jws_alg *out);
/* "ES256", "RS256", "HS256". Cannot fail. */
const char *jws_alg_name(enum jws_alg alg);

/* Loads a PEM private or public key (PKCS#8, SEC1, PKCS#1 or SPKI). The
 * algorithm follows from the key type; if `expected_alg` is non-zero it
 * must match. `kid` NULL or "" means the thumbprint. When `require_private`
 * is set a public key is an error. A private key file readable by group or
 * others is refused. Returns TK_OK, or TK_INVALID with `error` (a message
 * naming the file and the problem). The key is zeroed on failure. */
int signing_key_load_pem(struct signing_key *key, const char *path, enum jws_alg expected_alg,
                         const char *kid, bool require_private, char *error, size_t error_size);

/* Loads an HS256 key: the file's bytes with one trailing newline removed;
 * must be 32..256 bytes and not readable by group or others. Same contract. */
int signing_key_load_hmac(struct signing_key *key, const char *path, const char *kid, char *error,
                          size_t error_size);

/* Signs `data` with the key into `sig` (ES256: raw R||S, 64 bytes, as JWS
 * requires, not DER). Returns the signature length, or TK_ERROR. */
int signing_key_sign(const struct signing_key *key, const uint8_t *data, size_t len,
                     uint8_t sig[SIGNING_MAX_SIG]);

/* Checks `sig` over `data` with the key's public half (ES256: raw R||S of
 * exactly 64 bytes; RS256: PKCS#1 v1.5 of exactly the modulus size) or its
 * HMAC key (HS256: 32 bytes, compared in constant time). Works for public
 * keys too. Returns TK_OK when the signature verifies, TK_DECLINED when it
 * does not (a wrong length included), TK_ERROR on an OpenSSL or memory
 * failure. */
int signing_key_verify(const struct signing_key *key, const uint8_t *data, size_t len,
                       const uint8_t *sig, size_t sig_len);

/* Appends the public JWK as a JSON object with kty, crv/x/y or n/e, kid,
 * alg, use=sig. Returns TK_OK, or TK_DECLINED for HS256 keys (never
 * published). */
int signing_key_append_jwk(const struct signing_key *key, struct buffer *out);

/* Generates a new private key and writes it as PKCS#8 PEM to `path`, created
 * with mode 0600 (never overwriting an existing file). HS256 writes 32
 * random bytes as base64url text. Returns TK_OK, or TK_ERROR with `error`. */
int signing_key_generate(enum jws_alg alg, const char *path, char *error, size_t error_size);

/* Frees the EVP key and wipes HMAC bytes. Cannot fail. */
void signing_key_free(struct signing_key *key);

#endif
