/*
 * test_jwt_verifier.c - verification of access tokens for introspection.
 *
 * Keys are generated with signing_key_generate() into a mkdtemp directory
 * and loaded through key_set_load(), as the daemon loads them. Valid tokens
 * come from jwt_issuer_build() (the real issuer). Forged tokens are built
 * here from literal header and claims JSON, and most of them are signed
 * correctly with a key of the set, so that each test reaches the check it
 * is about instead of stopping at the signature. Every refusal is checked
 * for its exact result, and for `out` being left zeroed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tokend/base64.h"
#include "tokend/buffer.h"
#include "tokend/config.h"
#include "tokend/jwt_issuer.h"
#include "tokend/jwt_verifier.h"
#include "tokend/key_set.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"
#include "unit_test.h"

#define ERR_SIZE 512
#define ISSUER   "https://auth.example.com"
#define NOW      INT64_C(1750000000)
#define TTL      300
#define LEEWAY   30
#define JTI      "0123456789abcdef0123456789abcdef"
/* A header padded by an ignored member: kid, pad width, 0. */
#define LONG_HEADER_FORMAT "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"pad\":\"%0*d\"}"

static char test_dir[64];

/* ES256 signing, es2 (rotated out) and the RSA public key to verify. */
static struct key_set es_set;
static struct key_set rs_set; /* RS256 signing */
/* HS256 signing, and the ES256 public key published beside it. */
static struct key_set hs_set;
static struct signing_key es2_key;      /* the rotated key, still able to sign */
static struct signing_key other_es_key; /* in no set */

static const char *in_dir(const char *name)
{
    static char slots[4][256];
    static unsigned next;
    char *slot = slots[next++ % 4];
    snprintf(slot, sizeof(slots[0]), "%s/%s", test_dir, name);
    return slot;
}

/* The whole file, NUL-terminated; NULL on failure. */
static char *read_text(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return NULL;
    }
    char *data = calloc(1, 65536);
    size_t got = data != NULL ? fread(data, 1, 65535, fp) : 0;
    fclose(fp);
    *len = got;
    return data;
}

static bool write_public_pem(const char *path, EVP_PKEY *pkey)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        return false;
    }
    bool ok = PEM_write_PUBKEY(fp, pkey) == 1;
    return fclose(fp) == 0 && ok;
}

static void set_config(struct tokend_config *config, const char *alg, const char *key_file,
                       const char *hmac_file, const char *verify_files)
{
    memset(config, 0, sizeof(*config));
    config->signing_alg = (char *)alg;
    config->signing_key_file = (char *)key_file;
    config->hmac_key_file = (char *)hmac_file;
    config->verify_key_files = (char *)verify_files;
}

static bool is_zeroed(const struct jwt_verified_claims *claims)
{
    static const struct jwt_verified_claims zero;
    return memcmp(claims, &zero, sizeof(zero)) == 0;
}

/* ---- building tokens ---- */

/* base64url of `len` bytes, in a new string. */
static char *encode(const void *data, size_t len)
{
    char *text = malloc(BASE64URL_ENCODED_SIZE(len));
    if (text == NULL || base64url_encode(data, len, text, BASE64URL_ENCODED_SIZE(len)) < 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* "b64(header).b64(payload)." followed by b64(sig). */
static char *assemble(const char *header, const char *payload, const uint8_t *sig, size_t sig_len)
{
    char *h = encode(header, strlen(header));
    char *p = encode(payload, strlen(payload));
    char *s = encode(sig, sig_len);
    char *token = NULL;
    if (h != NULL && p != NULL && s != NULL) {
        size_t size = strlen(h) + strlen(p) + strlen(s) + 3;
        token = malloc(size);
        if (token != NULL) {
            snprintf(token, size, "%s.%s.%s", h, p, s);
        }
    }
    free(h);
    free(p);
    free(s);
    return token;
}

/* A token from literal JSON, signed correctly by `key` (NULL: an empty
 * signature). */
static char *forge(const char *header, const char *payload, const struct signing_key *key)
{
    char *unsigned_token = assemble(header, payload, NULL, 0);
    if (unsigned_token == NULL || key == NULL) {
        return unsigned_token;
    }
    uint8_t sig[SIGNING_MAX_SIG];
    size_t signed_len = strlen(unsigned_token) - 1; /* without the last '.' */
    int sig_len = signing_key_sign(key, (const uint8_t *)unsigned_token, signed_len, sig);
    CHECK(sig_len > 0);
    free(unsigned_token);
    return sig_len > 0 ? assemble(header, payload, sig, (size_t)sig_len) : NULL;
}

/* A token from literal JSON with an HS256 MAC under arbitrary key bytes. */
static char *forge_hmac(const char *header, const char *payload, const void *secret,
                        size_t secret_len)
{
    char *unsigned_token = assemble(header, payload, NULL, 0);
    if (unsigned_token == NULL) {
        return NULL;
    }
    uint8_t mac[32];
    size_t mac_len = 0;
    bool ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, secret_len,
                        (const uint8_t *)unsigned_token, strlen(unsigned_token) - 1, mac,
                        sizeof(mac), &mac_len) != NULL;
    CHECK(ok && mac_len == 32);
    free(unsigned_token);
    return ok ? assemble(header, payload, mac, mac_len) : NULL;
}

/* The header jwt_issuer writes, for `alg` and `kid`. */
static const char *header_for(const char *alg, const char *kid)
{
    static char header[640];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", alg,
             kid);
    return header;
}

static const char *key_header(const struct signing_key *key)
{
    return header_for(jws_alg_name(key->alg), key->kid);
}

/* Claims like the issuer's, with the given iss and times. */
static const char *claims_json(const char *iss, int64_t iat, int64_t exp)
{
    static char claims[1024];
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"%s\",\"sub\":\"client-1\",\"aud\":\"https://api.example.com\","
             "\"client_id\":\"client-1\",\"scope\":\"read write\",\"iat\":%" PRId64
             ",\"exp\":%" PRId64 ",\"jti\":\"" JTI "\"}",
             iss, iat, exp);
    return claims;
}

static const char *good_claims(void)
{
    return claims_json(ISSUER, NOW, NOW + TTL);
}

/* A token from the real issuer. */
static char *issue(const struct signing_key *key, const char *typ, const struct jwt_claims *claims)
{
    struct buffer out;
    buffer_init(&out);
    int rc = jwt_issuer_build(key, typ, claims, &out);
    CHECK_INT(rc, TK_OK);
    char *token = rc == TK_OK ? strdup(out.data) : NULL;
    buffer_free(&out);
    return token;
}

static struct jwt_claims default_claims(void)
{
    struct jwt_claims claims = {ISSUER,     "client-1",   "https://api.example.com",
                                "client-1", "read write", NOW,
                                NOW + TTL,  JTI};
    return claims;
}

/* ---- checking ---- */

static enum jwt_verify_result verify_len(const struct key_set *set, const char *token, size_t len,
                                         int64_t now, int64_t leeway,
                                         struct jwt_verified_claims *out)
{
    memset(out, 0xa5, sizeof(*out));
    enum jwt_verify_result result = jwt_verify(set, ISSUER, token, len, now, leeway, out);
    if (result != JWT_VERIFY_OK) {
        CHECK(is_zeroed(out));
    }
    return result;
}

static enum jwt_verify_result verify_at(const struct key_set *set, const char *token, int64_t now,
                                        int64_t leeway)
{
    struct jwt_verified_claims out;
    if (token == NULL) {
        CHECK(token != NULL);
        return JWT_VERIFY_INTERNAL_ERROR;
    }
    return verify_len(set, token, strlen(token), now, leeway, &out);
}

static enum jwt_verify_result verify(const struct key_set *set, const char *token)
{
    return verify_at(set, token, NOW, LEEWAY);
}

/* Verifies a forged token and frees it. */
static enum jwt_verify_result verify_free(const struct key_set *set, char *token)
{
    enum jwt_verify_result result = verify(set, token);
    free(token);
    return result;
}

/* ---- set-up ---- */

static void setup_keys(void)
{
    char error[ERR_SIZE] = "";
    const char *es_files[] = {"es.pem", "es2.pem", "other.pem"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_INT(signing_key_generate(JWS_ALG_ES256, in_dir(es_files[i]), error, sizeof(error)),
                  TK_OK);
    }
    CHECK_INT(signing_key_generate(JWS_ALG_RS256, in_dir("rs.pem"), error, sizeof(error)), TK_OK);
    CHECK_INT(signing_key_generate(JWS_ALG_HS256, in_dir("hs.key"), error, sizeof(error)), TK_OK);
    CHECK_STR(error, "");

    struct signing_key key;
    const char *pairs[][2] = {{"es.pem", "es.pub.pem"}, {"rs.pem", "rs.pub.pem"}};
    for (size_t i = 0; i < 2; i++) {
        CHECK_INT(
            signing_key_load_pem(&key, in_dir(pairs[i][0]), 0, NULL, true, error, sizeof(error)),
            TK_OK);
        CHECK(key.pkey != NULL && write_public_pem(in_dir(pairs[i][1]), key.pkey));
        signing_key_free(&key);
    }

    struct tokend_config config;
    char verify_files[600];
    snprintf(verify_files, sizeof(verify_files), "%s", in_dir("es2.pem"));
    snprintf(verify_files + strlen(verify_files), sizeof(verify_files) - strlen(verify_files),
             " %s", in_dir("rs.pub.pem"));
    set_config(&config, "ES256", in_dir("es.pem"), "", verify_files);
    CHECK_INT(key_set_load(&es_set, &config, error, sizeof(error)), TK_OK);
    CHECK_INT(es_set.count, 3);
    set_config(&config, "RS256", in_dir("rs.pem"), "", "");
    CHECK_INT(key_set_load(&rs_set, &config, error, sizeof(error)), TK_OK);
    set_config(&config, "HS256", "", in_dir("hs.key"), in_dir("es.pub.pem"));
    CHECK_INT(key_set_load(&hs_set, &config, error, sizeof(error)), TK_OK);
    CHECK_INT(hs_set.count, 2);
    CHECK_INT(
        signing_key_load_pem(&es2_key, in_dir("es2.pem"), 0, NULL, true, error, sizeof(error)),
        TK_OK);
    CHECK_INT(signing_key_load_pem(&other_es_key, in_dir("other.pem"), 0, NULL, true, error,
                                   sizeof(error)),
              TK_OK);
    CHECK_STR(error, "");
}

/* ---- the tests ---- */

static void test_result_names(void)
{
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_OK), "ok");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_MALFORMED), "malformed");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_UNKNOWN_KEY), "unknown_key");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_BAD_ALG), "bad_alg");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_BAD_SIGNATURE), "bad_signature");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_WRONG_ISSUER), "wrong_issuer");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_EXPIRED), "expired");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_NOT_YET_VALID), "not_yet_valid");
    CHECK_STR(jwt_verify_result_name(JWT_VERIFY_INTERNAL_ERROR), "internal_error");
    CHECK_STR(jwt_verify_result_name((enum jwt_verify_result)99), "unknown");
}

/* A token of the real issuer verifies, and every claim comes back. */
static void check_issued(const struct key_set *set, const struct signing_key *key, const char *typ)
{
    struct jwt_claims claims = default_claims();
    char *token = issue(key, typ, &claims);
    if (token == NULL) {
        return;
    }
    struct jwt_verified_claims out;
    CHECK_INT(verify_len(set, token, strlen(token), NOW, LEEWAY, &out), JWT_VERIFY_OK);
    CHECK_STR(out.jti, JTI);
    CHECK_STR(out.client_id, "client-1");
    CHECK_STR(out.sub, "client-1");
    CHECK_STR(out.iss, ISSUER);
    CHECK_STR(out.scope, "read write");
    CHECK_STR(out.aud, "https://api.example.com");
    CHECK_INT(out.aud_count, 1);
    CHECK_INT(out.iat, NOW);
    CHECK_INT(out.exp, NOW + TTL);
    CHECK_STR(out.kid, key->kid);
    CHECK_INT(out.alg, key->alg);
    free(token);

    /* No scope: the claim is left out and comes back empty. Claims with
     * characters JSON must escape come back unescaped. */
    claims.scope = NULL;
    claims.sub = "user \"quoted\" \\ \n\x01 caf\xc3\xa9";
    token = issue(key, typ, &claims);
    if (token == NULL) {
        return;
    }
    CHECK_INT(verify_len(set, token, strlen(token), NOW, LEEWAY, &out), JWT_VERIFY_OK);
    CHECK_STR(out.scope, "");
    CHECK_STR(out.sub, claims.sub);
    free(token);
}

static void test_issued_tokens(void)
{
    check_issued(&es_set, key_set_signing(&es_set), "at+jwt");
    check_issued(&es_set, key_set_signing(&es_set), "JWT");
    check_issued(&rs_set, key_set_signing(&rs_set), "at+jwt");
    check_issued(&rs_set, key_set_signing(&rs_set), "JWT");
    check_issued(&hs_set, key_set_signing(&hs_set), "at+jwt");
    check_issued(&hs_set, key_set_signing(&hs_set), "JWT");
}

/* A key rotated into verify_key_files still verifies its live tokens; a key
 * in no set does not, even with the same algorithm. */
static void test_rotated_key(void)
{
    CHECK(strcmp(es2_key.kid, es_set.keys[1].kid) == 0);
    check_issued(&es_set, &es2_key, "at+jwt");
    CHECK(strcmp(key_set_signing(&es_set)->kid, es2_key.kid) != 0);

    struct jwt_claims claims = default_claims();
    char *token = issue(&other_es_key, "at+jwt", &claims);
    CHECK_INT(verify(&es_set, token), JWT_VERIFY_UNKNOWN_KEY);
    free(token);

    /* The other key's signature under a kid of the set. */
    CHECK_INT(verify_free(&es_set, forge(key_header(&es2_key), good_claims(), &other_es_key)),
              JWT_VERIFY_BAD_SIGNATURE);
    /* The rotated key's signature under the signing key's kid. */
    CHECK_INT(
        verify_free(&es_set, forge(key_header(key_set_signing(&es_set)), good_claims(), &es2_key)),
        JWT_VERIFY_BAD_SIGNATURE);
    /* A token of the RS256 set against the ES256 set, which publishes the
     * same RSA key as a verify key: accepted, the RSA public key verifies. */
    token = issue(key_set_signing(&rs_set), "at+jwt", &claims);
    CHECK_INT(verify(&es_set, token), JWT_VERIFY_OK);
    CHECK_INT(verify(&hs_set, token), JWT_VERIFY_UNKNOWN_KEY);
    free(token);
}

/* Flips each bit of the decoded `segment` (0 header, 1 payload, 2
 * signature) of `token` in turn, re-encodes, and returns how many variants
 * did not give `expected` (or, with expected OK, gave OK). */
static int flip_bits(const struct key_set *set, const char *token, int segment,
                     enum jwt_verify_result expected, bool only_not_ok)
{
    char *copy = strdup(token);
    char *parts[3];
    parts[0] = copy;
    parts[1] = strchr(parts[0], '.');
    *parts[1]++ = '\0';
    parts[2] = strchr(parts[1], '.');
    *parts[2]++ = '\0';
    size_t text_len = strlen(parts[segment]);
    uint8_t *bytes = malloc(text_len + 1);
    int len = base64url_decode(parts[segment], text_len, bytes, text_len + 1);
    CHECK(len > 0);
    int wrong = 0;
    for (int bit = 0; bit < len * 8; bit++) {
        bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        char *text = encode(bytes, (size_t)len);
        bytes[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        const char *pieces[3] = {parts[0], parts[1], parts[2]};
        pieces[segment] = text;
        char variant[JWT_VERIFY_MAX_TOKEN];
        snprintf(variant, sizeof(variant), "%s.%s.%s", pieces[0], pieces[1], pieces[2]);
        enum jwt_verify_result result = verify(set, variant);
        if (only_not_ok ? result == JWT_VERIFY_OK : result != expected) {
            fprintf(stderr, "segment %d bit %d: %s\n", segment, bit,
                    jwt_verify_result_name(result));
            wrong++;
        }
        free(text);
    }
    free(bytes);
    free(copy);
    return wrong;
}

static void test_bad_signature(void)
{
    const struct key_set *sets[] = {&es_set, &rs_set, &hs_set};
    for (size_t i = 0; i < 3; i++) {
        struct jwt_claims claims = default_claims();
        char *token = issue(key_set_signing(sets[i]), "at+jwt", &claims);
        if (token == NULL) {
            continue;
        }
        CHECK_INT(verify(sets[i], token), JWT_VERIFY_OK);
        /* A flipped header bit may break the JSON, the typ or the kid
         * first; it must never pass. Payload and signature bits reach the
         * signature check. */
        CHECK_INT(flip_bits(sets[i], token, 0, JWT_VERIFY_OK, true), 0);
        CHECK_INT(flip_bits(sets[i], token, 1, JWT_VERIFY_BAD_SIGNATURE, false), 0);
        CHECK_INT(flip_bits(sets[i], token, 2, JWT_VERIFY_BAD_SIGNATURE, false), 0);
        free(token);

        /* The same header, spelt differently: the signature covers bytes,
         * not meaning. */
        const struct signing_key *key = key_set_signing(sets[i]);
        char *good = forge(key_header(key), good_claims(), key);
        char spaced[256];
        snprintf(spaced, sizeof(spaced), "{\"alg\":\"%s\", \"typ\":\"at+jwt\",\"kid\":\"%s\"}",
                 jws_alg_name(key->alg), key->kid);
        char *other_header = forge(spaced, good_claims(), NULL);
        CHECK_INT(verify(sets[i], good), JWT_VERIFY_OK);
        if (good != NULL && other_header != NULL) {
            /* other_header's first segment with good's payload and sig */
            char variant[JWT_VERIFY_MAX_TOKEN];
            snprintf(variant, sizeof(variant), "%.*s%s", (int)strcspn(other_header, "."),
                     other_header, strchr(good, '.'));
            CHECK_INT(verify(sets[i], variant), JWT_VERIFY_BAD_SIGNATURE);
        }
        free(good);
        free(other_header);

        /* Signatures of the wrong length, and an empty one. */
        uint8_t zeros[SIGNING_MAX_SIG] = {0};
        size_t lengths[] = {0, 1, 31, 32, 33, 63, 64, 65, 72, 255, 256, 257, SIGNING_MAX_SIG};
        for (size_t j = 0; j < sizeof(lengths) / sizeof(lengths[0]); j++) {
            char *forged = assemble(key_header(key), good_claims(), zeros, lengths[j]);
            CHECK_INT(verify_free(sets[i], forged), JWT_VERIFY_BAD_SIGNATURE);
        }
        /* Longer than any key's signature. */
        uint8_t *big = calloc(1, SIGNING_MAX_SIG + 1);
        CHECK_INT(verify_free(sets[i],
                              assemble(key_header(key), good_claims(), big, SIGNING_MAX_SIG + 1)),
                  JWT_VERIFY_BAD_SIGNATURE);
        free(big);
    }
}

/* ES256 needs the raw R||S form: the DER form OpenSSL produces is refused. */
static void test_es256_der_signature(void)
{
    const struct signing_key *key = key_set_signing(&es_set);
    char *unsigned_token = assemble(key_header(key), good_claims(), NULL, 0);
    if (unsigned_token == NULL) {
        return;
    }
    size_t signed_len = strlen(unsigned_token) - 1;
    uint8_t der[128];
    size_t der_len = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CHECK(ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
          EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)unsigned_token, signed_len) == 1);
    EVP_MD_CTX_free(ctx);
    char *forged = assemble(key_header(key), good_claims(), der, der_len);
    CHECK_INT(verify_free(&es_set, forged), JWT_VERIFY_BAD_SIGNATURE);

    /* The same signature converted to R||S verifies. */
    const uint8_t *cursor = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &cursor, (long)der_len);
    CHECK(sig != NULL);
    if (sig != NULL) {
        uint8_t raw[64];
        const BIGNUM *r = NULL;
        const BIGNUM *s = NULL;
        ECDSA_SIG_get0(sig, &r, &s);
        CHECK(BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32);
        CHECK_INT(verify_free(&es_set, assemble(key_header(key), good_claims(), raw, 64)),
                  JWT_VERIFY_OK);
        ECDSA_SIG_free(sig);
    }
    free(unsigned_token);
}

static void test_signing_key_verify(void)
{
    const uint8_t data[] = "header.payload";
    uint8_t sig[SIGNING_MAX_SIG];
    const struct signing_key *keys[] = {key_set_signing(&es_set), key_set_signing(&rs_set),
                                        key_set_signing(&hs_set)};
    for (size_t i = 0; i < 3; i++) {
        int len = signing_key_sign(keys[i], data, sizeof(data) - 1, sig);
        CHECK(len > 0);
        if (len <= 0) {
            continue;
        }
        CHECK_INT(signing_key_verify(keys[i], data, sizeof(data) - 1, sig, (size_t)len), TK_OK);
        CHECK_INT(signing_key_verify(keys[i], data, sizeof(data) - 2, sig, (size_t)len),
                  TK_DECLINED);
        CHECK_INT(signing_key_verify(keys[i], data, sizeof(data) - 1, sig, (size_t)len - 1),
                  TK_DECLINED);
        CHECK_INT(signing_key_verify(keys[i], data, sizeof(data) - 1, sig, (size_t)len + 1),
                  TK_DECLINED);
        CHECK_INT(signing_key_verify(keys[i], data, sizeof(data) - 1, sig, 0), TK_DECLINED);
        sig[len - 1] ^= 1;
        CHECK_INT(signing_key_verify(keys[i], data, sizeof(data) - 1, sig, (size_t)len),
                  TK_DECLINED);
    }
    /* A public key alone verifies (hs_set's second key is es.pub.pem). */
    CHECK(!hs_set.keys[1].has_private);
    int len = signing_key_sign(key_set_signing(&es_set), data, sizeof(data) - 1, sig);
    CHECK_INT(len, 64);
    CHECK_INT(signing_key_verify(&hs_set.keys[1], data, sizeof(data) - 1, sig, 64), TK_OK);
    /* An all-zero R||S (r = s = 0) is refused, not an error. */
    memset(sig, 0, 64);
    CHECK_INT(signing_key_verify(&hs_set.keys[1], data, sizeof(data) - 1, sig, 64), TK_DECLINED);
}

static void test_alg_none(void)
{
    const struct key_set *sets[] = {&es_set, &rs_set, &hs_set};
    const char *nones[] = {"none", "None", "NONE", ""};
    for (size_t i = 0; i < 3; i++) {
        const char *kid = key_set_signing(sets[i])->kid;
        for (size_t j = 0; j < 4; j++) {
            CHECK_INT(verify_free(sets[i], forge(header_for(nones[j], kid), good_claims(), NULL)),
                      JWT_VERIFY_BAD_ALG);
        }
        /* Without the last dot it is not a JWS at all. */
        char *token = forge(header_for("none", kid), good_claims(), NULL);
        if (token != NULL) {
            token[strlen(token) - 1] = '\0';
            CHECK_INT(verify(sets[i], token), JWT_VERIFY_MALFORMED);
        }
        free(token);
    }
}

/* The classic confusion: HS256 keyed with the bytes of a published public
 * key, under that key's kid. */
static void test_hs256_with_public_key(void)
{
    const char *files[] = {"es.pub.pem", "rs.pub.pem"};
    const struct key_set *sets[] = {&es_set, &rs_set};
    for (size_t i = 0; i < 2; i++) {
        size_t pem_len = 0;
        char *pem = read_text(in_dir(files[i]), &pem_len);
        CHECK(pem != NULL && pem_len > 0);
        if (pem == NULL) {
            continue;
        }
        const char *kid = key_set_signing(sets[i])->kid;
        CHECK_INT(
            verify_free(sets[i], forge_hmac(header_for("HS256", kid), good_claims(), pem, pem_len)),
            JWT_VERIFY_BAD_ALG);
        /* Also without the trailing newline. */
        CHECK_INT(verify_free(sets[i], forge_hmac(header_for("HS256", kid), good_claims(), pem,
                                                  pem_len - 1)),
                  JWT_VERIFY_BAD_ALG);
        free(pem);
    }
    /* In the HS256 set, with the ES256 public key published beside it. */
    size_t pem_len = 0;
    char *pem = read_text(in_dir("es.pub.pem"), &pem_len);
    if (pem != NULL) {
        CHECK_INT(verify_free(&hs_set, forge_hmac(header_for("HS256", hs_set.keys[1].kid),
                                                  good_claims(), pem, pem_len)),
                  JWT_VERIFY_BAD_ALG);
    }
    free(pem);
    /* HS256 under the right kid but another secret. */
    CHECK_INT(verify_free(&hs_set, forge_hmac(key_header(key_set_signing(&hs_set)), good_claims(),
                                              "not the key, but 32 bytes long!!", 32)),
              JWT_VERIFY_BAD_SIGNATURE);
}

static void test_alg_mismatch(void)
{
    const struct signing_key *es = key_set_signing(&es_set);
    const struct signing_key *rs = key_set_signing(&rs_set);
    const struct signing_key *hs = key_set_signing(&hs_set);
    const struct signing_key *rs_public = &es_set.keys[2];
    CHECK_STR(rs_public->kid, rs->kid);

    /* RS256 under the ES256 kid, signed with the RSA key. */
    CHECK_INT(verify_free(&es_set, forge(header_for("RS256", es->kid), good_claims(), rs)),
              JWT_VERIFY_BAD_ALG);
    /* ES256 under the RSA kid, signed with the EC key. */
    CHECK_INT(verify_free(&es_set, forge(header_for("ES256", rs->kid), good_claims(), es)),
              JWT_VERIFY_BAD_ALG);
    /* RS256 or ES256 under the HS256 kid. */
    CHECK_INT(verify_free(&hs_set, forge(header_for("RS256", hs->kid), good_claims(), rs)),
              JWT_VERIFY_BAD_ALG);
    CHECK_INT(verify_free(&hs_set, forge(header_for("ES256", hs->kid), good_claims(), es)),
              JWT_VERIFY_BAD_ALG);
    /* Names that are almost right. */
    const char *near[] = {"es256", "ES256 ", "ES384", "PS256", "HS256"};
    for (size_t i = 0; i < 5; i++) {
        CHECK_INT(verify_free(&es_set, forge(header_for(near[i], es->kid), good_claims(), es)),
                  JWT_VERIFY_BAD_ALG);
    }
    /* alg that is not a string. */
    char header[256];
    snprintf(header, sizeof(header), "{\"alg\":256,\"typ\":\"at+jwt\",\"kid\":\"%s\"}", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
}

static void test_kid(void)
{
    const struct signing_key *es = key_set_signing(&es_set);
    char header[256];

    CHECK_INT(verify_free(&es_set, forge(header_for("ES256", "no-such-kid"), good_claims(), es)),
              JWT_VERIFY_UNKNOWN_KEY);
    CHECK_INT(verify_free(&es_set, forge(header_for("ES256", ""), good_claims(), es)),
              JWT_VERIFY_UNKNOWN_KEY);
    /* A prefix of the kid, and the kid with one more character. */
    snprintf(header, sizeof(header), "%.*s", (int)strlen(es->kid) - 1, es->kid);
    CHECK_INT(verify_free(&es_set, forge(header_for("ES256", header), good_claims(), es)),
              JWT_VERIFY_UNKNOWN_KEY);
    snprintf(header, sizeof(header), "%sA", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header_for("ES256", header), good_claims(), es)),
              JWT_VERIFY_UNKNOWN_KEY);
    /* A kid with \u0000 after the real one: refused as malformed. */
    snprintf(header, sizeof(header),
             "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\\u0000x\"}", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
    /* Missing, or not a string. */
    CHECK_INT(
        verify_free(&es_set, forge("{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}", good_claims(), es)),
        JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_free(&es_set, forge("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":null}",
                                         good_claims(), es)),
              JWT_VERIFY_MALFORMED);
    /* Twice, the second naming another key: refused whichever a parser
     * would take. */
    snprintf(header, sizeof(header),
             "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"kid\":\"%s\"}", es->kid,
             es2_key.kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), &es2_key)), JWT_VERIFY_MALFORMED);
    /* A header that tries to bring its own key is ignored for the choice:
     * the jwk's key is never used. */
    snprintf(header, sizeof(header),
             "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"jku\":\"https://evil\"}",
             es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), &other_es_key)),
              JWT_VERIFY_BAD_SIGNATURE);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_OK);
}

static void test_header_rules(void)
{
    const struct signing_key *es = key_set_signing(&es_set);
    char header[512];
    const char *typs[] = {"\"jwt\"", "\"AT+JWT\"", "\"application/at+jwt\"", "\"\"", "null", "1"};
    for (size_t i = 0; i < 6; i++) {
        snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":%s,\"kid\":\"%s\"}", typs[i],
                 es->kid);
        CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
    }
    snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
    snprintf(header, sizeof(header),
             "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
    snprintf(header, sizeof(header),
             "{\"alg\":\"none\",\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_MALFORMED);
    /* Member order and extra members do not matter. */
    snprintf(header, sizeof(header),
             "{\"kid\":\"%s\",\"typ\":\"JWT\",\"x\":[1,{}],\"alg\":\"ES256\"}", es->kid);
    CHECK_INT(verify_free(&es_set, forge(header, good_claims(), es)), JWT_VERIFY_OK);

    /* Not a JSON object, or not JSON. */
    const char *not_objects[] = {"[]", "\"x\"", "1", "null", "{", "{}", "{\"alg\":\"ES256\"}}",
                                 "",   " "};
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        CHECK_INT(verify_free(&es_set, forge(not_objects[i], good_claims(), es)),
                  JWT_VERIFY_MALFORMED);
    }
    /* A NUL byte after a valid header. */
    char *h = encode(key_header(es), strlen(key_header(es)) + 1);
    char *p = encode(good_claims(), strlen(good_claims()));
    char token[2048];
    snprintf(token, sizeof(token), "%s.%s.AAAA", h, p);
    CHECK_INT(verify(&es_set, token), JWT_VERIFY_MALFORMED);
    free(h);
    free(p);
    /* A header at the cap and one byte over, with padding in an ignored
     * member: 48 bytes of JSON around the kid and the padding, 3 bytes of
     * JSON in 4 characters. */
    char long_header[JWT_VERIFY_MAX_HEADER];
    int pad = JWT_VERIFY_MAX_HEADER / 4 * 3 - 48 - (int)strlen(es->kid);
    snprintf(long_header, sizeof(long_header), LONG_HEADER_FORMAT, es->kid, pad, 0);
    CHECK_INT(strlen(long_header), JWT_VERIFY_MAX_HEADER / 4 * 3);
    CHECK_INT(verify_free(&es_set, forge(long_header, good_claims(), es)), JWT_VERIFY_OK);
    snprintf(long_header, sizeof(long_header), LONG_HEADER_FORMAT, es->kid, pad + 1, 0);
    CHECK_INT(verify_free(&es_set, forge(long_header, good_claims(), es)), JWT_VERIFY_MALFORMED);
}

static void test_issuer(void)
{
    const struct signing_key *es = key_set_signing(&es_set);
    const char *wrong[] = {"https://evil.example.com", "https://auth.example.com/",
                           "https://auth.example.co",  "http://auth.example.com",
                           "https://AUTH.example.com", " https://auth.example.com"};
    for (size_t i = 0; i < 6; i++) {
        CHECK_INT(
            verify_free(&es_set, forge(key_header(es), claims_json(wrong[i], NOW, NOW + TTL), es)),
            JWT_VERIFY_WRONG_ISSUER);
    }
    /* Our issuer followed by \u0000: cJSON would cut it to ours. */
    CHECK_INT(verify_free(&es_set, forge(key_header(es),
                                         claims_json(ISSUER "\\u0000.evil", NOW, NOW + TTL), es)),
              JWT_VERIFY_MALFORMED);
    /* An escaped backslash before "u0000" is text, not a NUL: the issuer is
     * merely wrong. */
    CHECK_INT(verify_free(&es_set, forge(key_header(es),
                                         claims_json(ISSUER "\\\\u0000", NOW, NOW + TTL), es)),
              JWT_VERIFY_WRONG_ISSUER);
    /* Twice, ours first or last. */
    char claims[1024];
    snprintf(claims, sizeof(claims), "{\"iss\":\"https://evil\",%s", good_claims() + 1);
    CHECK_INT(verify_free(&es_set, forge(key_header(es), claims, es)), JWT_VERIFY_MALFORMED);
    snprintf(claims, sizeof(claims), "%.*s,\"iss\":\"https://evil\"}",
             (int)strlen(good_claims()) - 1, good_claims());
    CHECK_INT(verify_free(&es_set, forge(key_header(es), claims, es)), JWT_VERIFY_MALFORMED);
    /* Missing, or not a string. */
    snprintf(claims, sizeof(claims), "{%s", strchr(good_claims(), ',') + 1);
    CHECK_INT(verify_free(&es_set, forge(key_header(es), claims, es)), JWT_VERIFY_MALFORMED);
    snprintf(claims, sizeof(claims), "{\"iss\":[\"" ISSUER "\"]%s", strchr(good_claims(), ','));
    CHECK_INT(verify_free(&es_set, forge(key_header(es), claims, es)), JWT_VERIFY_MALFORMED);
}

static void test_times(void)
{
    const struct signing_key *es = key_set_signing(&es_set);
    struct jwt_claims claims = default_claims();
    char *token = issue(es, "at+jwt", &claims);
    /* exp = NOW + TTL: valid up to exp + leeway (exclusive). */
    CHECK_INT(verify_at(&es_set, token, NOW + TTL - 1, 0), JWT_VERIFY_OK);
    CHECK_INT(verify_at(&es_set, token, NOW + TTL, 0), JWT_VERIFY_EXPIRED);
    CHECK_INT(verify_at(&es_set, token, NOW + TTL + LEEWAY - 1, LEEWAY), JWT_VERIFY_OK);
    CHECK_INT(verify_at(&es_set, token, NOW + TTL + LEEWAY, LEEWAY), JWT_VERIFY_EXPIRED);
    CHECK_INT(verify_at(&es_set, token, NOW + 100000, LEEWAY), JWT_VERIFY_EXPIRED);
    CHECK_INT(verify_at(&es_set, token, INT64_MAX, INT64_MAX), JWT_VERIFY_EXPIRED);
    /* A negative leeway counts as none. */
    CHECK_INT(verify_at(&es_set, token, NOW + TTL - 1, -100), JWT_VERIFY_OK);
    /* iat = NOW: not valid before iat - leeway. */
    CHECK_INT(verify_at(&es_set, token, NOW, 0), JWT_VERIFY_OK);
    CHECK_INT(verify_at(&es_set, token, NOW - 1, 0), JWT_VERIFY_NOT_YET_VALID);
    CHECK_INT(verify_at(&es_set, token, NOW - LEEWAY, LEEWAY), JWT_VERIFY_OK);
    CHECK_INT(verify_at(&es_set, token, NOW - LEEWAY - 1, LEEWAY), JWT_VERIFY_NOT_YET_VALID);
    CHECK_INT(verify_at(&es_set, token, INT64_MIN, INT64_MAX), JWT_VERIFY_NOT_YET_VALID);
    CHECK_INT(verify_at(&es_set, token, INT64_MIN, 0), JWT_VERIFY_NOT_YET_VALID);
    free(token);

    /* Issued in the future. */
    CHECK_INT(
        verify_free(&es_set, forge(key_header(es), claims_json(ISSUER, NOW + 100, NOW + 400), es)),
        JWT_VERIFY_NOT_YET_VALID);
    CHECK_INT(verify_free(&es_set,
                          forge(key_header(es), claims_json(ISSUER, NOW + LEEWAY, NOW + 400), es)),
              JWT_VERIFY_OK);
    /* Expired long ago, and within the leeway. */
    CHECK_INT(
        verify_free(&es_set, forge(key_header(es), claims_json(ISSUER, NOW - 400, NOW - 100), es)),
        JWT_VERIFY_EXPIRED);
    CHECK_INT(verify_free(&es_set, forge(key_header(es),
                                         claims_json(ISSUER, NOW - 400, NOW - LEEWAY + 1), es)),
              JWT_VERIFY_OK);
    /* Expired and from another issuer: the issuer is checked first. */
    CHECK_INT(verify_free(&es_set, forge(key_header(es),
                                         claims_json("https://evil", NOW - 400, NOW - 100), es)),
              JWT_VERIFY_WRONG_ISSUER);

    /* nbf, when present, is honoured. */
    char with_nbf[1024];
    snprintf(with_nbf, sizeof(with_nbf), "%.*s,\"nbf\":%" PRId64 "}",
             (int)strlen(good_claims()) - 1, good_claims(), NOW + 100);
    CHECK_INT(verify_free(&es_set, forge(key_header(es), with_nbf, es)), JWT_VERIFY_NOT_YET_VALID);
    snprintf(with_nbf, sizeof(with_nbf), "%.*s,\"nbf\":%" PRId64 "}",
             (int)strlen(good_claims()) - 1, good_claims(), NOW);
    CHECK_INT(verify_free(&es_set, forge(key_header(es), with_nbf, es)), JWT_VERIFY_OK);
    snprintf(with_nbf, sizeof(with_nbf), "%.*s,\"nbf\":\"0\"}", (int)strlen(good_claims()) - 1,
             good_claims());
    CHECK_INT(verify_free(&es_set, forge(key_header(es), with_nbf, es)), JWT_VERIFY_MALFORMED);
}

/* Replaces `"name":VALUE` in the default claims (VALUE up to the next ','
 * or '}') by `"name":replacement`, or drops it when replacement is NULL. */
static const char *claims_with(const char *name, const char *replacement)
{
    static char claims[8192];
    const char *base = good_claims();
    char key[64];
    snprintf(key, sizeof(key), "\"%s\":", name);
    const char *at = strstr(base, key);
    if (at == NULL) {
        snprintf(claims, sizeof(claims), "%.*s,%s%s}", (int)strlen(base) - 1, base, key,
                 replacement);
        return claims;
    }
    const char *end = at + strlen(key);
    if (*end == '"') {
        end = strchr(end + 1, '"') + 1;
    } else {
        end += strcspn(end, ",}");
    }
    if (replacement == NULL) {
        /* drop the member and the comma after it (or before it, if last) */
        if (*end == ',') {
            end++;
        } else if (at[-1] == ',') {
            at--;
        }
        snprintf(claims, sizeof(claims), "%.*s%s", (int)(at - base), base, end);
    } else {
        snprintf(claims, sizeof(claims), "%.*s%s%s%s", (int)(at - base), base, key, replacement,
                 end);
    }
    return claims;
}

static enum jwt_verify_result verify_claims(const char *claims)
{
    const struct signing_key *es = key_set_signing(&es_set);
    return verify_free(&es_set, forge(key_header(es), claims, es));
}

static void test_claims(void)
{
    /* claims_with itself: the unchanged claims verify. */
    CHECK_STR(claims_with("jti", "\"" JTI "\""), good_claims());
    CHECK_INT(verify_claims(claims_with("jti", "\"" JTI "\"")), JWT_VERIFY_OK);

    /* Each required claim missing, empty, or of the wrong type. */
    const char *required[] = {"sub", "aud", "client_id", "jti", "iat", "exp"};
    for (size_t i = 0; i < 6; i++) {
        CHECK_INT(verify_claims(claims_with(required[i], NULL)), JWT_VERIFY_MALFORMED);
        CHECK_INT(verify_claims(claims_with(required[i], "null")), JWT_VERIFY_MALFORMED);
        CHECK_INT(verify_claims(claims_with(required[i], "{}")), JWT_VERIFY_MALFORMED);
        CHECK_INT(verify_claims(claims_with(required[i], "true")), JWT_VERIFY_MALFORMED);
    }
    const char *strings[] = {"sub", "aud", "client_id", "jti"};
    for (size_t i = 0; i < 4; i++) {
        CHECK_INT(verify_claims(claims_with(strings[i], "\"\"")), JWT_VERIFY_MALFORMED);
        CHECK_INT(verify_claims(claims_with(strings[i], "7")), JWT_VERIFY_MALFORMED);
    }
    /* scope is optional, but a string when present. */
    CHECK_INT(verify_claims(claims_with("scope", NULL)), JWT_VERIFY_OK);
    CHECK_INT(verify_claims(claims_with("scope", "[\"read\"]")), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims(claims_with("scope", "\"a\",\"scope\":\"b\"")), JWT_VERIFY_MALFORMED);

    /* Times must be whole numbers in [0, 2^53]. */
    const char *bad_times[] = {"\"1750000000\"", "1750000000.5",     "-1",
                               "1e300",          "9007199254740994", "-0.5"};
    for (size_t i = 0; i < 6; i++) {
        CHECK_INT(verify_claims(claims_with("iat", bad_times[i])), JWT_VERIFY_MALFORMED);
        CHECK_INT(verify_claims(claims_with("exp", bad_times[i])), JWT_VERIFY_MALFORMED);
    }
    CHECK_INT(verify_claims(claims_with("exp", "1750000300.0")), JWT_VERIFY_OK);
    CHECK_INT(verify_claims(claims_with("exp", "1.7500003e9")), JWT_VERIFY_OK);
    CHECK_INT(verify_claims(claims_with("iat", "0")), JWT_VERIFY_OK);
    CHECK_INT(verify_claims(claims_with("exp", "9007199254740992")), JWT_VERIFY_OK);

    /* aud as an array: the first is kept, the count noted. */
    struct jwt_verified_claims out;
    const struct signing_key *es = key_set_signing(&es_set);
    char *token = forge(key_header(es), claims_with("aud", "[\"https://a\",\"https://b\"]"), es);
    if (token != NULL) {
        CHECK_INT(verify_len(&es_set, token, strlen(token), NOW, LEEWAY, &out), JWT_VERIFY_OK);
        CHECK_STR(out.aud, "https://a");
        CHECK_INT(out.aud_count, 2);
    }
    free(token);
    CHECK_INT(verify_claims(claims_with("aud", "[]")), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims(claims_with("aud", "[\"https://a\",1]")), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims(claims_with("aud", "[\"\"]")), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims(claims_with("aud", "[[\"https://a\"]]")), JWT_VERIFY_MALFORMED);

    /* Duplicates of any claim read; unknown claims are ignored, even twice. */
    const char *duplicated[] = {"sub", "aud", "client_id", "jti", "iat", "exp", "scope"};
    for (size_t i = 0; i < 7; i++) {
        char claims[2048];
        /* a value of the right type, so only the repetition is wrong */
        const char *value = strcmp(duplicated[i], "iat") == 0 || strcmp(duplicated[i], "exp") == 0
                                ? "1750000001"
                                : "\"x\"";
        snprintf(claims, sizeof(claims), "{\"%s\":%s,%s", duplicated[i], value, good_claims() + 1);
        CHECK_INT(verify_claims(claims), JWT_VERIFY_MALFORMED);
    }
    CHECK_INT(verify_claims(claims_with("ext", "1,\"ext\":2")), JWT_VERIFY_OK);
    CHECK_INT(verify_claims(claims_with("nbf", "1,\"nbf\":2")), JWT_VERIFY_MALFORMED);

    /* Not an object. */
    CHECK_INT(verify_claims("[]"), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims("\"claims\""), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims("{"), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_claims(""), JWT_VERIFY_MALFORMED);
    char trailing[1024];
    snprintf(trailing, sizeof(trailing), "%s x", good_claims());
    CHECK_INT(verify_claims(trailing), JWT_VERIFY_MALFORMED);
    snprintf(trailing, sizeof(trailing), "%s\n", good_claims());
    CHECK_INT(verify_claims(trailing), JWT_VERIFY_OK);
    /* A \u0000 in a claim other than iss. */
    CHECK_INT(verify_claims(claims_with("client_id", "\"client-1\\u0000admin\"")),
              JWT_VERIFY_MALFORMED);
}

/* Claims at the size of their field and one byte over, through the real
 * issuer, so only the length differs. */
static void test_claim_sizes(void)
{
    const struct signing_key *es = key_set_signing(&es_set);
    static char text[1024];
    struct {
        const char *name;
        size_t size;
    } fields[] = {
        {"jti", JWT_VERIFY_JTI_SIZE}, {"client_id", JWT_VERIFY_CLIENT_ID_SIZE},
        {"sub", JWT_VERIFY_SUB_SIZE}, {"scope", JWT_VERIFY_SCOPE_SIZE},
        {"aud", JWT_VERIFY_AUD_SIZE},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        for (size_t extra = 0; extra < 2; extra++) {
            size_t len = fields[i].size - 1 + extra;
            memset(text, 'x', len);
            text[len] = '\0';
            struct jwt_claims claims = default_claims();
            const char **slot = strcmp(fields[i].name, "jti") == 0         ? &claims.jti
                                : strcmp(fields[i].name, "client_id") == 0 ? &claims.client_id
                                : strcmp(fields[i].name, "sub") == 0       ? &claims.sub
                                : strcmp(fields[i].name, "scope") == 0     ? &claims.scope
                                                                           : &claims.aud;
            *slot = text;
            char *token = issue(es, "at+jwt", &claims);
            struct jwt_verified_claims out;
            enum jwt_verify_result result =
                token != NULL ? verify_len(&es_set, token, strlen(token), NOW, LEEWAY, &out)
                              : JWT_VERIFY_INTERNAL_ERROR;
            if (extra == 0) {
                CHECK_INT(result, JWT_VERIFY_OK);
                CHECK_STR(strcmp(fields[i].name, "jti") == 0         ? out.jti
                          : strcmp(fields[i].name, "client_id") == 0 ? out.client_id
                          : strcmp(fields[i].name, "sub") == 0       ? out.sub
                          : strcmp(fields[i].name, "scope") == 0     ? out.scope
                                                                     : out.aud,
                          text);
            } else {
                CHECK_INT(result, JWT_VERIFY_MALFORMED);
            }
            free(token);
        }
    }
    /* The issuer field holds JWT_VERIFY_ISS_SIZE - 1 bytes; a longer iss
     * cannot be ours. */
    char iss[JWT_VERIFY_ISS_SIZE + 1];
    memset(iss, 'i', sizeof(iss) - 1);
    iss[sizeof(iss) - 1] = '\0';
    CHECK_INT(verify_claims(claims_json(iss, NOW, NOW + TTL)), JWT_VERIFY_MALFORMED);
}

static void test_truncated(void)
{
    const struct key_set *sets[] = {&es_set, &rs_set, &hs_set};
    for (size_t i = 0; i < 3; i++) {
        struct jwt_claims claims = default_claims();
        char *token = issue(key_set_signing(sets[i]), "at+jwt", &claims);
        if (token == NULL) {
            continue;
        }
        size_t full = strlen(token);
        int accepted = 0;
        struct jwt_verified_claims out;
        for (size_t len = 0; len < full; len++) {
            /* A copy of exactly `len` bytes, so ASan sees any read past it. */
            char *prefix = malloc(len == 0 ? 1 : len);
            memcpy(prefix, token, len);
            accepted += verify_len(sets[i], prefix, len, NOW, LEEWAY, &out) == JWT_VERIFY_OK;
            free(prefix);
        }
        CHECK_INT(accepted, 0);
        CHECK_INT(verify_len(sets[i], token, full, NOW, LEEWAY, &out), JWT_VERIFY_OK);
        /* Cut before the signature: the payload segment ends the token. */
        CHECK_INT(verify_len(sets[i], token, strrchr(token, '.') - token, NOW, LEEWAY, &out),
                  JWT_VERIFY_MALFORMED);
        free(token);
    }
    struct jwt_verified_claims out;
    CHECK_INT(verify_len(&es_set, NULL, 0, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_len(&es_set, "", 0, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_len(&es_set, "..", 2, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
}

static void test_syntax(void)
{
    struct jwt_claims claims = default_claims();
    char *token = issue(key_set_signing(&es_set), "at+jwt", &claims);
    if (token == NULL) {
        return;
    }
    size_t full = strlen(token);
    char variant[JWT_VERIFY_MAX_TOKEN + 16];
    const char *dot1 = strchr(token, '.');
    const char *dot2 = strrchr(token, '.');

    /* Extra segments. */
    snprintf(variant, sizeof(variant), "%s.", token);
    CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);
    snprintf(variant, sizeof(variant), "%s.AAAA", token);
    CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);
    snprintf(variant, sizeof(variant), "%.*s.%s", (int)(dot2 - token), token, dot2);
    CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);
    /* Empty header or payload. */
    snprintf(variant, sizeof(variant), "%s", dot1);
    CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);
    snprintf(variant, sizeof(variant), "%.*s%s", (int)(dot1 - token + 1), token, dot2);
    CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);

    /* Padding or whitespace at the end of each segment, or around. */
    const char *inserts[] = {"=", "==", " ", "\t", "\n", "\r\n", "+", "/", "\xc3\xa9"};
    size_t cut_points[] = {0, (size_t)(dot1 - token), (size_t)(dot2 - token), full};
    for (size_t i = 0; i < sizeof(inserts) / sizeof(inserts[0]); i++) {
        for (size_t j = 0; j < 4; j++) {
            snprintf(variant, sizeof(variant), "%.*s%s%s", (int)cut_points[j], token, inserts[i],
                     token + cut_points[j]);
            CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);
        }
    }
    /* A NUL inside the given length. */
    memcpy(variant, token, full + 1);
    variant[full / 2] = '\0';
    struct jwt_verified_claims out;
    CHECK_INT(verify_len(&es_set, variant, full, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
    /* Bytes after the given length are not looked at. */
    snprintf(variant, sizeof(variant), "%s garbage", token);
    CHECK_INT(verify_len(&es_set, variant, full, NOW, LEEWAY, &out), JWT_VERIFY_OK);
    /* Non-zero trailing bits in the signature: another spelling of the
     * same bytes, refused. (A 64-byte signature ends in 1 char of 2 bits
     * used, the other 4 must be zero: 'A', 'Q', 'g' and 'w' are the only
     * valid last characters.) */
    memcpy(variant, token, full + 1);
    char last = variant[full - 1];
    variant[full - 1] = (char)(last == 'A' ? 'B' : last == 'Q' ? 'R' : last == 'g' ? 'h' : 'x');
    CHECK_INT(verify(&es_set, variant), JWT_VERIFY_MALFORMED);
    free(token);
}

static void test_large_inputs(void)
{
    size_t size = 1024 * 1024;
    char *garbage = malloc(size);
    if (garbage == NULL) {
        CHECK(garbage != NULL);
        return;
    }
    uint32_t state = 12345;
    for (size_t i = 0; i < size; i++) {
        state = state * 1103515245u + 12345u;
        garbage[i] = (char)(state >> 16);
    }
    struct jwt_verified_claims out;
    CHECK_INT(verify_len(&es_set, garbage, size, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
    memset(garbage, 'A', size);
    garbage[1000] = '.';
    garbage[2000] = '.';
    CHECK_INT(verify_len(&es_set, garbage, size, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
    CHECK_INT(verify_len(&es_set, garbage, SIZE_MAX, NOW, LEEWAY, &out), JWT_VERIFY_MALFORMED);
    free(garbage);

    /* A genuine token just over the cap, with a padding claim, is refused
     * before it is looked at; just under, it passes. */
    const struct signing_key *es = key_set_signing(&es_set);
    static char claims[JWT_VERIFY_MAX_TOKEN];
    int accepted = 0;
    int refused = 0;
    for (int pad = 5600; pad < 6200; pad++) {
        snprintf(claims, sizeof(claims), "%.*s,\"pad\":\"%0*d\"}", (int)strlen(good_claims()) - 1,
                 good_claims(), pad, 0);
        char *token = forge(key_header(es), claims, es);
        if (token == NULL) {
            break;
        }
        size_t len = strlen(token);
        enum jwt_verify_result result = verify(&es_set, token);
        CHECK_INT(result, len <= JWT_VERIFY_MAX_TOKEN ? JWT_VERIFY_OK : JWT_VERIFY_MALFORMED);
        accepted += len <= JWT_VERIFY_MAX_TOKEN;
        refused += len > JWT_VERIFY_MAX_TOKEN;
        free(token);
        if (len > JWT_VERIFY_MAX_TOKEN + 8) {
            break;
        }
    }
    CHECK(accepted > 0 && refused > 0);
}

/* Removes the temporary directory and everything in it. */
static void remove_test_dir(void)
{
    DIR *dir = opendir(test_dir);
    if (dir == NULL) {
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            unlink(in_dir(entry->d_name));
        }
    }
    closedir(dir);
    rmdir(test_dir);
}

int main(void)
{
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_jwt_verifier.XXXXXX");
    if (mkdtemp(test_dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(setup_keys);
    RUN(test_result_names);
    RUN(test_issued_tokens);
    RUN(test_rotated_key);
    RUN(test_bad_signature);
    RUN(test_es256_der_signature);
    RUN(test_signing_key_verify);
    RUN(test_alg_none);
    RUN(test_hs256_with_public_key);
    RUN(test_alg_mismatch);
    RUN(test_kid);
    RUN(test_header_rules);
    RUN(test_issuer);
    RUN(test_times);
    RUN(test_claims);
    RUN(test_claim_sizes);
    RUN(test_truncated);
    RUN(test_syntax);
    RUN(test_large_inputs);
    key_set_free(&es_set);
    key_set_free(&rs_set);
    key_set_free(&hs_set);
    signing_key_free(&es2_key);
    signing_key_free(&other_es_key);
    remove_test_dir();
    return unit_test_finish();
}
