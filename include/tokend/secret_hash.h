/*
 * secret_hash.h - client secrets: generation and a self-describing
 * PBKDF2-HMAC-SHA256 hash, the only form a secret is ever stored in.
 *
 * Stored form (ASCII, fits SECRET_HASH_MAX_LEN):
 *     pbkdf2-sha256$<iterations>$<salt, base64url>$<derived key, base64url>
 * with a 16-byte random salt and a 32-byte derived key.
 *
 * Verification always runs the full PBKDF2 and compares digests with
 * CRYPTO_memcmp. Secrets are never logged.
 */
#ifndef TOKEND_SECRET_HASH_H
#define TOKEND_SECRET_HASH_H

#include <stddef.h>

#define SECRET_HASH_MAX_LEN            160
#define SECRET_HASH_DEFAULT_ITERATIONS 10000
#define SECRET_HASH_MIN_ITERATIONS     1000
#define SECRET_HASH_MAX_ITERATIONS     10000000
/* A generated secret: 32 random bytes in base64url, 43 chars + NUL. */
#define SECRET_GENERATED_SIZE 44

/* Fills `out` with a fresh 32-byte random secret in base64url. Returns TK_OK
 * or TK_ERROR (RNG failure; out then holds ""). */
int secret_generate(char out[SECRET_GENERATED_SIZE]);

/* Hashes `secret` with a fresh random salt. Returns TK_OK, TK_INVALID
 * (iterations out of range) or TK_ERROR (OpenSSL failure). */
int secret_hash_create(const char *secret, unsigned iterations, char out[SECRET_HASH_MAX_LEN]);

/* Returns TK_OK when `secret` matches `stored`, TK_DECLINED when it does
 * not, TK_INVALID when `stored` is not a well-formed hash of this scheme
 * (including iterations out of range), TK_ERROR on OpenSSL failure. */
int secret_hash_verify(const char *secret, const char *stored);

#endif
