/*
 * jwt_issuer.c - builds the signed access token (JWS compact serialization,
 * RFC 7515 / RFC 9068) on the hot path.
 *
 * The token is base64url(header) "." base64url(claims) "." base64url(sig):
 *   header  {"alg":"ES256","typ":"at+jwt","kid":"..."}   (members in this order)
 *   claims  {"iss","sub","aud","client_id","scope","iat","exp","jti"}
 *           in the order of struct jwt_claims; strings JSON-escaped, iat
 *           and exp JSON integers, scope left out when NULL or "".
 * The JSON comes from a fixed template, not a JSON library, and the
 * signature from the key preloaded by signing_key.c, so a token costs the
 * signature plus a few hundred bytes of copying.
 *
 * Memory: the JSON is written into the tail of `out` itself (so it reuses
 * the caller's buffer, which a worker keeps across requests), encoded from
 * there into a stack scratch area (heap only for unusually large claims),
 * and `out` is then cut back and receives the encoded text. After the
 * worker's buffer has grown once, a token needs no allocation at all.
 *
 * Failure: any allocation or signature failure returns TK_ERROR and leaves
 * `out` with partial content the caller must reset (see jwt_issuer.h).
 * The only state kept between calls is the pool of random bytes for jtis
 * (see jwt_new_jti).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tokend/base64.h"
#include "tokend/buffer.h"
#include "tokend/jwt_issuer.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"

#define JTI_RANDOM_BYTES 16
#define SCRATCH_SIZE     2048 /* encoded header + claims; a typical token needs ~400 */

/* Random bytes for jtis, drawn from OpenSSL's DRBG a page at a time: one
 * RAND_bytes call per 256 tokens instead of one per token (each call also
 * costs a getpid system call in OpenSSL's fork check). Bytes are used once
 * and wiped as they are handed out. A forked child must never reuse the
 * parent's bytes (two processes would mint the same jtis), so a fork
 * handler empties the pool in the child. */
static uint8_t jti_pool[4096];
static size_t jti_pool_used = sizeof(jti_pool);
static pthread_once_t jti_pool_once = PTHREAD_ONCE_INIT;

static void jti_pool_empty(void)
{
    OPENSSL_cleanse(jti_pool, sizeof(jti_pool));
    jti_pool_used = sizeof(jti_pool);
}

static void jti_pool_register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, jti_pool_empty);
}

int jwt_new_jti(char jti[JWT_JTI_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    pthread_once(&jti_pool_once, jti_pool_register_fork_handler);
    if (jti_pool_used + JTI_RANDOM_BYTES > sizeof(jti_pool)) {
        if (RAND_bytes(jti_pool, sizeof(jti_pool)) != 1) {
            jti[0] = '\0';
            return TK_ERROR;
        }
        jti_pool_used = 0;
    }
    uint8_t *raw = jti_pool + jti_pool_used;
    jti_pool_used += JTI_RANDOM_BYTES;
    for (size_t i = 0; i < JTI_RANDOM_BYTES; i++) {
        jti[2 * i] = hex[raw[i] >> 4];
        jti[2 * i + 1] = hex[raw[i] & 15];
    }
    jti[2 * JTI_RANDOM_BYTES] = '\0';
    OPENSSL_cleanse(raw, JTI_RANDOM_BYTES);
    return TK_OK;
}

/* Appends a decimal int64 without going through printf. */
static void append_int64(struct buffer *out, int64_t value)
{
    char digits[24];
    size_t pos = sizeof(digits);
    /* Work with the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[--pos] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) {
        digits[--pos] = '-';
    }
    buffer_append(out, digits + pos, sizeof(digits) - pos);
}

static void append_string_claim(struct buffer *out, const char *name_with_punctuation,
                                const char *value)
{
    buffer_append_str(out, name_with_punctuation);
    buffer_append_json_string(out, value);
}

static void append_header_json(struct buffer *out, const struct signing_key *key, const char *typ)
{
    buffer_append_str(out, "{\"alg\":\"");
    buffer_append_str(out, jws_alg_name(key->alg));
    buffer_append_str(out, "\",\"typ\":");
    buffer_append_json_string(out, typ);
    buffer_append_str(out, ",\"kid\":");
    buffer_append_json_string(out, key->kid);
    buffer_append(out, "}", 1);
}

static void append_claims_json(struct buffer *out, const struct jwt_claims *claims)
{
    append_string_claim(out, "{\"iss\":", claims->iss);
    append_string_claim(out, ",\"sub\":", claims->sub);
    append_string_claim(out, ",\"aud\":", claims->aud);
    append_string_claim(out, ",\"client_id\":", claims->client_id);
    if (claims->scope != NULL && claims->scope[0] != '\0') {
        append_string_claim(out, ",\"scope\":", claims->scope);
    }
    buffer_append_str(out, ",\"iat\":");
    append_int64(out, claims->iat);
    buffer_append_str(out, ",\"exp\":");
    append_int64(out, claims->exp);
    append_string_claim(out, ",\"jti\":", claims->jti);
    buffer_append(out, "}", 1);
}

int jwt_issuer_build(const struct signing_key *key, const char *typ,
                     const struct jwt_claims *claims, struct buffer *out)
{
    if (typ == NULL || claims->iss == NULL || claims->sub == NULL || claims->aud == NULL ||
        claims->client_id == NULL || claims->jti == NULL) {
        return TK_ERROR;
    }
    int rc = TK_ERROR;
    char stack_scratch[SCRATCH_SIZE];
    char *scratch = stack_scratch;
    size_t start = out->len;

    /* 1. The JSON, in the tail of `out`. */
    append_header_json(out, key, typ);
    size_t header_len = out->len - start;
    append_claims_json(out, claims);
    if (buffer_failed(out)) {
        goto done;
    }
    size_t claims_len = out->len - start - header_len;

    /* 2. base64url(header) "." base64url(claims) into the scratch area. The
     * first encoding's NUL slot takes the '.'. */
    size_t scratch_size = BASE64URL_ENCODED_SIZE(header_len) + BASE64URL_ENCODED_SIZE(claims_len);
    if (scratch_size > sizeof(stack_scratch)) {
        scratch = malloc(scratch_size);
        if (scratch == NULL) {
            goto done;
        }
    }
    const uint8_t *json = (const uint8_t *)out->data + start;
    int encoded_header = base64url_encode(json, header_len, scratch, scratch_size);
    if (encoded_header < 0) {
        goto done;
    }
    scratch[encoded_header] = '.';
    size_t claims_at = (size_t)encoded_header + 1;
    int encoded_claims = base64url_encode(json + header_len, claims_len, scratch + claims_at,
                                          scratch_size - claims_at);
    if (encoded_claims < 0) {
        goto done;
    }
    size_t signing_input_len = claims_at + (size_t)encoded_claims;

    /* 3. Sign the JWS signing input, then replace the JSON in `out` by the
     * token. Cutting `out` back is safe: the JSON was ours, appended above. */
    uint8_t sig[SIGNING_MAX_SIG];
    int sig_len = signing_key_sign(key, (const uint8_t *)scratch, signing_input_len, sig);
    if (sig_len < 0) {
        goto done;
    }
    out->len = start;
    buffer_append(out, scratch, signing_input_len);
    buffer_append(out, ".", 1);
    buffer_append_base64url(out, sig, (size_t)sig_len);
    rc = buffer_failed(out) ? TK_ERROR : TK_OK;
done:
    if (scratch != stack_scratch) {
        free(scratch);
    }
    return rc;
}
