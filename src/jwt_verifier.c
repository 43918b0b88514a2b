/*
 * jwt_verifier.c - verifies an access token tokend issued, for token
 * introspection (RFC 7662). A security boundary: whatever reaches this
 * function comes from a caller we do not trust, so it accepts exactly what
 * jwt_issuer.c produces (give or take member order, an aud array and an
 * nbf) and refuses everything else.
 *
 * The checks, in order; the first that fails decides the result:
 *
 *  1. Shape (MALFORMED), before any decoding: 1..JWT_VERIFY_MAX_TOKEN bytes,
 *     only the base64url alphabet and exactly two '.', a non-empty header
 *     of at most JWT_VERIFY_MAX_HEADER bytes, a non-empty payload. No
 *     padding, no whitespace: the token has one spelling, so the caller's
 *     cache keyed by its digest cannot be split by re-encodings, and the
 *     work done for an unauthenticated input is bounded by the caps. The
 *     shared decoder (base64.c) also refuses non-zero trailing bits.
 *  2. Header (MALFORMED): a JSON object whose "alg" and "kid" are strings,
 *     whose "typ" is "at+jwt" or "JWT" (the two values token_typ allows,
 *     compared exactly, so tokens stay valid across a change of
 *     token_typ), and with no "crit" (RFC 7515 4.1.11: we understand no
 *     extension). Other members, jku/jwk/x5u/x5c included, are ignored:
 *     they never choose a key. The header is the only JSON parsed before
 *     the signature is checked, which is why its size is capped so low.
 *  3. Key (UNKNOWN_KEY): the key of the set whose kid equals the header's
 *     kid, byte for byte. Nothing else selects a key.
 *  4. Algorithm (BAD_ALG): alg must be exactly that key's own algorithm.
 *     The algorithm is a property of the key, never of the token; this is
 *     what refuses "none", HS256 with the kid of an EC or RSA key (the
 *     public key's bytes used as an HMAC secret), and RS256 with an HS256
 *     key's kid.
 *  5. Signature (BAD_SIGNATURE): over exactly the bytes "header.payload" as
 *     received, by signing_key_verify(): ES256 raw R||S of exactly 64
 *     bytes, RS256 PKCS#1 v1.5 of exactly the modulus size, HS256 compared
 *     with CRYPTO_memcmp. A signature segment that is too long for any key
 *     is BAD_SIGNATURE, one that is not valid base64url is MALFORMED.
 *  6. Claims (MALFORMED), only now parsed: a JSON object with the strings
 *     iss, sub, aud (or a non-empty array of strings, first kept),
 *     client_id and jti, all non-empty and each fitting its field in
 *     struct jwt_verified_claims; scope optional, a string when present;
 *     iat and exp integers, nbf an integer when present. Integers must be
 *     whole numbers in [0, 2^53]: cJSON holds numbers as doubles, and in
 *     that range the conversion to int64_t is exact ("1e3" is 1000).
 *  7. iss == `issuer` exactly (WRONG_ISSUER): a token another issuer
 *     signed with a key we share is not ours.
 *  8. exp + leeway > now (EXPIRED); iat - leeway <= now and, if present,
 *     nbf - leeway <= now (NOT_YET_VALID). With the values bounded by 2^53
 *     and the leeway clamped to [0, 2^53], no sum overflows.
 *
 * Two traps of parsing JSON with cJSON, closed in both header and claims:
 *   - Duplicate members. cJSON returns the first of two "iss" members,
 *     other parsers the last; a token carrying both could read differently
 *     to us and to a resource server. Any member this file reads that
 *     occurs twice makes the token MALFORMED (one pass over the members;
 *     duplicates of members we ignore do not matter).
 *   - NUL. cJSON hands out C strings, so "https://us\u0000.evil" would
 *     compare equal to "https://us". Decoded JSON holding a NUL byte or a
 *     \u0000 escape is MALFORMED.
 * cJSON does not check UTF-8; a claim's bytes are passed on as they are,
 * and the caller must escape them when it writes JSON.
 *
 * Not checked here: revocation and caching (the introspection layer's),
 * whom the aud names (introspection reports it; the resource server
 * decides), the format of jti. ECDSA signatures are malleable ((r, s) and
 * (r, n - s) both verify), so one set of claims may have two valid
 * spellings; both carry the same jti, which is what revocation keys on.
 *
 * Timing: the only comparison that involves a secret is the HMAC's, done
 * in constant time. Which check failed may show in the time taken; none of
 * them depends on a secret.
 *
 * Memory and failure: the decoded header and claims live in stack buffers
 * bounded by the caps; the cJSON trees are freed before returning. `out` is
 * zeroed first and again on any result other than JWT_VERIFY_OK, so a
 * caller never sees claims of a token that failed. An OpenSSL failure is
 * JWT_VERIFY_INTERNAL_ERROR, never a verdict on the token; an allocation
 * failure inside cJSON cannot be told from bad JSON and reads MALFORMED.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tokend/base64.h"
#include "tokend/config.h"
#include "tokend/jwt_verifier.h"
#include "tokend/key_set.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"

_Static_assert(JWT_VERIFY_ISS_SIZE > CONFIG_ISSUER_MAX_LEN,
               "every issuer config_check_server accepts fits the claims struct");

#define JSON_INT_MAX ((int64_t)1 << 53) /* largest integer a double holds exactly */
/* Decoded sizes: base64url carries 3 bytes in 4 characters. */
#define HEADER_JSON_MAX  (JWT_VERIFY_MAX_HEADER / 4 * 3 + 2)
#define PAYLOAD_JSON_MAX (JWT_VERIFY_MAX_TOKEN / 4 * 3 + 2)
#define SIG_ENCODED_MAX  (BASE64URL_ENCODED_SIZE(SIGNING_MAX_SIG) - 1)

/* The members each JSON object may hold at most once. */
static const char *const header_members[] = {"alg", "kid", "typ"};
static const char *const claim_members[] = {"iss", "sub", "aud", "client_id", "jti",
                                            "iat", "exp", "nbf", "scope"};
#define ARRAY_LEN(array) (sizeof(array) / sizeof((array)[0]))

/* One segment of the compact serialization: token[start .. start + len). */
struct segment {
    const char *text;
    size_t len;
};

const char *jwt_verify_result_name(enum jwt_verify_result result)
{
    switch (result) {
    case JWT_VERIFY_OK:
        return "ok";
    case JWT_VERIFY_MALFORMED:
        return "malformed";
    case JWT_VERIFY_UNKNOWN_KEY:
        return "unknown_key";
    case JWT_VERIFY_BAD_ALG:
        return "bad_alg";
    case JWT_VERIFY_BAD_SIGNATURE:
        return "bad_signature";
    case JWT_VERIFY_WRONG_ISSUER:
        return "wrong_issuer";
    case JWT_VERIFY_EXPIRED:
        return "expired";
    case JWT_VERIFY_NOT_YET_VALID:
        return "not_yet_valid";
    case JWT_VERIFY_INTERNAL_ERROR:
        return "internal_error";
    }
    return "unknown";
}

static bool is_base64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Check 1: splits the token into its three segments. Returns false for any
 * byte outside the alphabet, a dot count other than two, or a segment
 * outside its bounds. */
static bool split_token(const char *token, size_t token_len, struct segment parts[3])
{
    if (token == NULL || token_len == 0 || token_len > JWT_VERIFY_MAX_TOKEN) {
        return false;
    }
    size_t part = 0;
    size_t start = 0;
    for (size_t i = 0; i < token_len; i++) {
        if (token[i] == '.') {
            if (part == 2) {
                return false;
            }
            parts[part].text = token + start;
            parts[part].len = i - start;
            part++;
            start = i + 1;
        } else if (!is_base64url_char(token[i])) {
            return false;
        }
    }
    if (part != 2) {
        return false;
    }
    parts[2].text = token + start;
    parts[2].len = token_len - start;
    return parts[0].len > 0 && parts[0].len <= JWT_VERIFY_MAX_HEADER && parts[1].len > 0;
}

/* True if JSON text holds a \u0000 escape. Backslashes outside strings are
 * invalid JSON anyway; inside, skipping each escape pair keeps "\\u0000"
 * (an escaped backslash, then text) from being mistaken for one. */
static bool has_escaped_nul(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\') {
            continue;
        }
        if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0) {
            return true;
        }
        i++; /* the escaped character */
    }
    return false;
}

/* Decodes a segment into `json` (json_size bytes, room for the NUL) and
 * parses it as a JSON object. NULL for anything else. */
static cJSON *decode_json_object(const struct segment *segment, char *json, size_t json_size)
{
    int len = base64url_decode(segment->text, segment->len, (uint8_t *)json, json_size - 1);
    if (len <= 0) {
        return NULL;
    }
    if (memchr(json, '\0', (size_t)len) != NULL || has_escaped_nul(json, (size_t)len)) {
        return NULL;
    }
    json[len] = '\0';
    cJSON *root = cJSON_ParseWithOpts(json, NULL, 1);
    if (root != NULL && !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* True if any of `names` is a member of `object` more than once. */
static bool has_duplicate_member(const cJSON *object, const char *const *names, size_t count)
{
    unsigned seen[16] = {0};
    const cJSON *member = NULL;
    cJSON_ArrayForEach(member, object)
    {
        for (size_t i = 0; i < count && i < ARRAY_LEN(seen); i++) {
            if (member->string != NULL && strcmp(member->string, names[i]) == 0 && ++seen[i] > 1) {
                return true;
            }
        }
    }
    return false;
}

static const char *string_member(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* Check 2: the header's kid and alg, or false. */
static bool parse_header(const cJSON *header, const char **kid, const char **alg)
{
    if (has_duplicate_member(header, header_members, ARRAY_LEN(header_members)) ||
        cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL) {
        return false;
    }
    const char *typ = string_member(header, "typ");
    *kid = string_member(header, "kid");
    *alg = string_member(header, "alg");
    return *kid != NULL && *alg != NULL && typ != NULL &&
           (strcmp(typ, "at+jwt") == 0 || strcmp(typ, "JWT") == 0);
}

/* Check 3: the key named by `kid`, or NULL. */
static const struct signing_key *find_key(const struct key_set *keys, const char *kid)
{
    for (size_t i = 0; i < keys->count && i < KEY_SET_MAX; i++) {
        if (keys->keys[i].alg != 0 && strcmp(keys->keys[i].kid, kid) == 0) {
            return &keys->keys[i];
        }
    }
    return NULL;
}

/* Copies a non-empty string into `dst` (dst_size bytes with the NUL).
 * False if it is empty or does not fit. */
static bool copy_string(const char *value, char *dst, size_t dst_size)
{
    size_t len = strlen(value);
    if (len == 0 || len >= dst_size) {
        return false;
    }
    memcpy(dst, value, len + 1);
    return true;
}

static bool copy_string_claim(const cJSON *claims, const char *name, char *dst, size_t dst_size)
{
    const char *value = string_member(claims, name);
    return value != NULL && copy_string(value, dst, dst_size);
}

/* aud is a string, or a non-empty array of strings of which the first is
 * kept; every element must be a string that would fit. */
static bool copy_audience(const cJSON *claims, struct jwt_verified_claims *out)
{
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
    if (cJSON_IsString(aud)) {
        out->aud_count = 1;
        return copy_string(aud->valuestring, out->aud, sizeof(out->aud));
    }
    if (!cJSON_IsArray(aud)) {
        return false;
    }
    const cJSON *element = NULL;
    size_t count = 0;
    cJSON_ArrayForEach(element, aud)
    {
        char scratch[JWT_VERIFY_AUD_SIZE];
        if (!cJSON_IsString(element) ||
            !copy_string(element->valuestring, count == 0 ? out->aud : scratch, sizeof(scratch))) {
            return false;
        }
        count++;
    }
    out->aud_count = count;
    return count > 0;
}

/* A whole number in [0, 2^53]. */
static bool integer_claim(const cJSON *claims, const char *name, int64_t *value)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(claims, name);
    if (!cJSON_IsNumber(item)) {
        return false;
    }
    double number = item->valuedouble;
    /* Written so that NaN fails too. */
    if (!(number >= 0 && number <= (double)JSON_INT_MAX)) {
        return false;
    }
    int64_t whole = (int64_t)number;
    if ((double)whole != number) {
        return false;
    }
    *value = whole;
    return true;
}

/* Check 6: every claim introspection returns, into `out`. nbf (optional)
 * into *nbf, or -1 when absent. */
static bool read_claims(const cJSON *claims, struct jwt_verified_claims *out, int64_t *nbf)
{
    if (has_duplicate_member(claims, claim_members, ARRAY_LEN(claim_members))) {
        return false;
    }
    if (!copy_string_claim(claims, "iss", out->iss, sizeof(out->iss)) ||
        !copy_string_claim(claims, "sub", out->sub, sizeof(out->sub)) ||
        !copy_string_claim(claims, "client_id", out->client_id, sizeof(out->client_id)) ||
        !copy_string_claim(claims, "jti", out->jti, sizeof(out->jti)) ||
        !copy_audience(claims, out) || !integer_claim(claims, "iat", &out->iat) ||
        !integer_claim(claims, "exp", &out->exp)) {
        return false;
    }
    /* scope is left out when no scope was granted; "" is then the answer. */
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(claims, "scope");
    if (scope != NULL) {
        if (!cJSON_IsString(scope) || strlen(scope->valuestring) >= sizeof(out->scope)) {
            return false;
        }
        strcpy(out->scope, scope->valuestring);
    }
    *nbf = -1;
    if (cJSON_GetObjectItemCaseSensitive(claims, "nbf") != NULL &&
        !integer_claim(claims, "nbf", nbf)) {
        return false;
    }
    return true;
}

/* Checks 2 to 8 on a token already split. `out` is zeroed. */
static enum jwt_verify_result verify_parts(const struct key_set *keys, const char *issuer,
                                           const struct segment parts[3], int64_t now_s,
                                           int64_t leeway_s, struct jwt_verified_claims *out)
{
    enum jwt_verify_result result = JWT_VERIFY_MALFORMED;
    char header_json[HEADER_JSON_MAX];
    char payload_json[PAYLOAD_JSON_MAX];
    uint8_t sig[SIGNING_MAX_SIG];
    cJSON *claims = NULL;
    const char *kid = NULL;
    const char *alg = NULL;

    cJSON *header = decode_json_object(&parts[0], header_json, sizeof(header_json));
    if (header == NULL || !parse_header(header, &kid, &alg)) {
        goto done;
    }
    const struct signing_key *key = find_key(keys, kid);
    if (key == NULL) {
        result = JWT_VERIFY_UNKNOWN_KEY;
        goto done;
    }
    if (strcmp(alg, jws_alg_name(key->alg)) != 0) {
        result = JWT_VERIFY_BAD_ALG;
        goto done;
    }

    if (parts[2].len > SIG_ENCODED_MAX) {
        result = JWT_VERIFY_BAD_SIGNATURE;
        goto done;
    }
    int sig_len = base64url_decode(parts[2].text, parts[2].len, sig, sizeof(sig));
    if (sig_len < 0) {
        goto done;
    }
    /* The signing input is the token up to the second dot, as received. */
    size_t signed_len = parts[0].len + 1 + parts[1].len;
    int verified =
        signing_key_verify(key, (const uint8_t *)parts[0].text, signed_len, sig, (size_t)sig_len);
    if (verified != TK_OK) {
        result = verified == TK_DECLINED ? JWT_VERIFY_BAD_SIGNATURE : JWT_VERIFY_INTERNAL_ERROR;
        goto done;
    }

    int64_t nbf = -1;
    claims = decode_json_object(&parts[1], payload_json, sizeof(payload_json));
    if (claims == NULL || !read_claims(claims, out, &nbf)) {
        goto done;
    }
    if (strcmp(out->iss, issuer) != 0) {
        result = JWT_VERIFY_WRONG_ISSUER;
        goto done;
    }
    int64_t leeway = leeway_s < 0 ? 0 : leeway_s > JSON_INT_MAX ? JSON_INT_MAX : leeway_s;
    if (out->exp + leeway <= now_s) {
        result = JWT_VERIFY_EXPIRED;
        goto done;
    }
    if (out->iat - leeway > now_s || (nbf >= 0 && nbf - leeway > now_s)) {
        result = JWT_VERIFY_NOT_YET_VALID;
        goto done;
    }
    memcpy(out->kid, key->kid, sizeof(out->kid));
    out->alg = key->alg;
    result = JWT_VERIFY_OK;
done:
    cJSON_Delete(header);
    cJSON_Delete(claims);
    return result;
}

enum jwt_verify_result jwt_verify(const struct key_set *keys, const char *issuer, const char *token,
                                  size_t token_len, int64_t now_s, int64_t leeway_s,
                                  struct jwt_verified_claims *out)
{
    struct segment parts[3];
    memset(out, 0, sizeof(*out));
    if (keys == NULL || issuer == NULL) {
        return JWT_VERIFY_INTERNAL_ERROR;
    }
    if (!split_token(token, token_len, parts)) {
        return JWT_VERIFY_MALFORMED;
    }
    enum jwt_verify_result result = verify_parts(keys, issuer, parts, now_s, leeway_s, out);
    if (result != JWT_VERIFY_OK) {
        memset(out, 0, sizeof(*out));
    }
    return result;
}
