/*
 * secret_hash.c - client secrets: generation, hashing and verification.
 *
 * A secret is stored only as
 *     pbkdf2-sha256$<iterations>$<salt>$<derived key>
 * with PBKDF2-HMAC-SHA256 (OpenSSL's PKCS5_PBKDF2_HMAC), a 16-byte random
 * salt and a 32-byte derived key, both in unpadded base64url (22 and 43
 * characters). Iterations is plain decimal: no sign, no leading zero.
 *
 * Invariants: the iteration count is inside [SECRET_HASH_MIN_ITERATIONS,
 * SECRET_HASH_MAX_ITERATIONS] both when a hash is made and when one is
 * checked. The upper bound is what keeps a worker from spending minutes on
 * one request because a row in the database (written by anyone with access
 * to it) asks for 2^31 rounds; the lower bound keeps weak hashes out.
 *
 * Parsing is strict: exactly one accepted spelling per hash, and anything
 * else (other prefix, missing or extra field, bad number, bad base64url,
 * wrong decoded length, trailing bytes) is TK_INVALID before any PBKDF2 runs.
 * A well-formed hash always costs the full PBKDF2 and a constant-time
 * comparison (CRYPTO_memcmp), whatever the secret.
 *
 * Ownership: callers own every buffer. Random bytes and derived keys live on
 * the stack only and are wiped with OPENSSL_cleanse on every path. Nothing is
 * logged (this module does not link the logger, and must never log a secret).
 *
 * Failure: secret_generate and secret_hash_create leave "" in `out` on any
 * failure. A NULL or absurdly long (> INT_MAX) secret is TK_INVALID. OpenSSL
 * failures are TK_ERROR; their error queue is cleared so a later, unrelated
 * ERR_get_error in the same worker does not report them.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tokend/base64.h"
#include "tokend/secret_hash.h"
#include "tokend/status.h"

#define SECRET_RANDOM_BYTES 32
#define SALT_BYTES          16
#define DERIVED_KEY_BYTES   32
#define SALT_B64_LEN        22 /* base64url of 16 bytes, unpadded */
#define DERIVED_KEY_B64_LEN 43 /* base64url of 32 bytes, unpadded */
/* Digits of SECRET_HASH_MAX_ITERATIONS; a longer number is out of range. */
#define ITERATIONS_MAX_DIGITS 8

static const char hash_prefix[] = "pbkdf2-sha256$";

_Static_assert(BASE64URL_ENCODED_SIZE(SECRET_RANDOM_BYTES) == SECRET_GENERATED_SIZE,
               "generated secret size");
_Static_assert(BASE64URL_ENCODED_SIZE(SALT_BYTES) == SALT_B64_LEN + 1, "salt encoding");
_Static_assert(BASE64URL_ENCODED_SIZE(DERIVED_KEY_BYTES) == DERIVED_KEY_B64_LEN + 1,
               "derived key encoding");
_Static_assert(sizeof(hash_prefix) - 1 + ITERATIONS_MAX_DIGITS + 1 + SALT_B64_LEN + 1 +
                       DERIVED_KEY_B64_LEN + 1 <=
                   SECRET_HASH_MAX_LEN,
               "longest hash fits SECRET_HASH_MAX_LEN");
_Static_assert(SECRET_HASH_MAX_ITERATIONS <= 99999999 && SECRET_HASH_MAX_ITERATIONS <= INT_MAX,
               "ITERATIONS_MAX_DIGITS and PKCS5_PBKDF2_HMAC's int iteration count");

static bool iterations_in_range(unsigned long iterations)
{
    return iterations >= SECRET_HASH_MIN_ITERATIONS && iterations <= SECRET_HASH_MAX_ITERATIONS;
}

/* PBKDF2-HMAC-SHA256 of `secret` into derived_key. TK_OK or TK_ERROR. */
static int derive_key(const char *secret, size_t secret_len, const uint8_t salt[SALT_BYTES],
                      unsigned iterations, uint8_t derived_key[DERIVED_KEY_BYTES])
{
    if (PKCS5_PBKDF2_HMAC(secret, (int)secret_len, salt, SALT_BYTES, (int)iterations, EVP_sha256(),
                          DERIVED_KEY_BYTES, derived_key) != 1) {
        ERR_clear_error();
        OPENSSL_cleanse(derived_key, DERIVED_KEY_BYTES);
        return TK_ERROR;
    }
    return TK_OK;
}

int secret_generate(char out[SECRET_GENERATED_SIZE])
{
    uint8_t random_bytes[SECRET_RANDOM_BYTES];
    int rc = TK_ERROR;
    out[0] = '\0';

    if (RAND_bytes(random_bytes, sizeof(random_bytes)) != 1) {
        ERR_clear_error();
        goto done;
    }
    if (base64url_encode(random_bytes, sizeof(random_bytes), out, SECRET_GENERATED_SIZE) !=
        SECRET_GENERATED_SIZE - 1) {
        OPENSSL_cleanse(out, SECRET_GENERATED_SIZE);
        out[0] = '\0';
        goto done;
    }
    rc = TK_OK;

done:
    OPENSSL_cleanse(random_bytes, sizeof(random_bytes));
    return rc;
}

int secret_hash_create(const char *secret, unsigned iterations, char out[SECRET_HASH_MAX_LEN])
{
    uint8_t salt[SALT_BYTES];
    uint8_t derived_key[DERIVED_KEY_BYTES];
    char salt_b64[SALT_B64_LEN + 1];
    char derived_key_b64[DERIVED_KEY_B64_LEN + 1];
    size_t secret_len;
    int written;
    int rc = TK_INVALID;
    out[0] = '\0';

    if (secret == NULL || !iterations_in_range(iterations)) {
        goto done;
    }
    secret_len = strlen(secret);
    if (secret_len > INT_MAX) {
        goto done;
    }
    rc = TK_ERROR;
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        ERR_clear_error();
        goto done;
    }
    if (derive_key(secret, secret_len, salt, iterations, derived_key) != TK_OK) {
        goto done;
    }
    if (base64url_encode(salt, sizeof(salt), salt_b64, sizeof(salt_b64)) != SALT_B64_LEN ||
        base64url_encode(derived_key, sizeof(derived_key), derived_key_b64,
                         sizeof(derived_key_b64)) != DERIVED_KEY_B64_LEN) {
        goto done;
    }
    written = snprintf(out, SECRET_HASH_MAX_LEN, "%s%u$%s$%s", hash_prefix, iterations, salt_b64,
                       derived_key_b64);
    if (written < 0 || written >= SECRET_HASH_MAX_LEN) {
        out[0] = '\0';
        goto done;
    }
    rc = TK_OK;

done:
    OPENSSL_cleanse(derived_key, sizeof(derived_key));
    OPENSSL_cleanse(derived_key_b64, sizeof(derived_key_b64));
    return rc;
}

/* Parses the decimal iteration count in [text, text + len): digits only, no
 * leading zero, in range. TK_OK or TK_INVALID. */
static int parse_iterations(const char *text, size_t len, unsigned *iterations)
{
    if (len == 0 || len > ITERATIONS_MAX_DIGITS || text[0] == '0') {
        return TK_INVALID;
    }
    unsigned long value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return TK_INVALID;
        }
        value = value * 10 + (unsigned long)(text[i] - '0');
    }
    if (!iterations_in_range(value)) {
        return TK_INVALID;
    }
    *iterations = (unsigned)value;
    return TK_OK;
}

/* Decodes a base64url field that must be exactly `encoded_len` characters
 * and `decoded_len` bytes. TK_OK or TK_INVALID. */
static int decode_field(const char *text, size_t len, size_t encoded_len, uint8_t *out,
                        size_t decoded_len)
{
    if (len != encoded_len) {
        return TK_INVALID;
    }
    return base64url_decode(text, len, out, decoded_len) == (int)decoded_len ? TK_OK : TK_INVALID;
}

int secret_hash_verify(const char *secret, const char *stored)
{
    uint8_t salt[SALT_BYTES];
    uint8_t expected_key[DERIVED_KEY_BYTES];
    uint8_t derived_key[DERIVED_KEY_BYTES];
    unsigned iterations = 0;
    const char *iterations_text, *salt_text, *key_text;
    size_t secret_len;
    int rc = TK_INVALID;

    if (secret == NULL || stored == NULL) {
        goto done;
    }
    secret_len = strlen(secret);
    if (secret_len > INT_MAX || strnlen(stored, SECRET_HASH_MAX_LEN) >= SECRET_HASH_MAX_LEN) {
        goto done;
    }
    if (strncmp(stored, hash_prefix, sizeof(hash_prefix) - 1) != 0) {
        goto done;
    }

    /* Exactly three '$'-separated fields after the prefix: iterations$salt$key. */
    iterations_text = stored + sizeof(hash_prefix) - 1;
    salt_text = strchr(iterations_text, '$');
    if (salt_text == NULL) {
        goto done;
    }
    salt_text++;
    key_text = strchr(salt_text, '$');
    if (key_text == NULL) {
        goto done;
    }
    key_text++;
    if (strchr(key_text, '$') != NULL) {
        goto done;
    }
    if (parse_iterations(iterations_text, (size_t)(salt_text - 1 - iterations_text), &iterations) !=
            TK_OK ||
        decode_field(salt_text, (size_t)(key_text - 1 - salt_text), SALT_B64_LEN, salt,
                     sizeof(salt)) != TK_OK ||
        decode_field(key_text, strlen(key_text), DERIVED_KEY_B64_LEN, expected_key,
                     sizeof(expected_key)) != TK_OK) {
        goto done;
    }

    rc = derive_key(secret, secret_len, salt, iterations, derived_key);
    if (rc != TK_OK) {
        goto done;
    }
    rc = CRYPTO_memcmp(derived_key, expected_key, DERIVED_KEY_BYTES) == 0 ? TK_OK : TK_DECLINED;

done:
    OPENSSL_cleanse(derived_key, sizeof(derived_key));
    OPENSSL_cleanse(expected_key, sizeof(expected_key));
    return rc;
}
