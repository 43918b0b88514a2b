/*
 * test_jwt_issuer.c - signing keys, the key set / JWKS and the JWT builder.
 *
 * Keys are generated with signing_key_generate() into a mkdtemp directory.
 * Tokens are checked independently of the code under test: the header and
 * claims JSON exactly and through cJSON, the signature with OpenSSL using a
 * public key rebuilt from the published JWK (so the JWKS is proven to match
 * the signing key), and, for typ "JWT", by libjwt 1.10 as a second verifier.
 * The RFC 7638 §3.1 example key checks the thumbprint kid.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "tokend/base64.h"
#include "tokend/buffer.h"
#include "tokend/config.h"
#include "tokend/jwt_issuer.h"
#include "tokend/key_set.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"
#include "unit_test.h"

/* RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint. */
#define RFC7638_N                                                                                  \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP" \
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY" \
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f" \
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define RFC7638_E          "AQAB"
#define RFC7638_THUMBPRINT "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

#define ERR_SIZE 512

static char test_dir[64];

static const char *in_dir(const char *name)
{
    /* Several paths are alive at once in one call; rotate through slots. */
    static char slots[8][256];
    static unsigned next;
    char *slot = slots[next++ % 8];
    snprintf(slot, sizeof(slots[0]), "%s/%s", test_dir, name);
    return slot;
}

static bool write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return false;
    }
    bool ok = write(fd, data, len) == (ssize_t)len && fchmod(fd, mode) == 0;
    return close(fd) == 0 && ok;
}

/* The whole file, NUL-terminated; *len gets its size. NULL on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return NULL;
    }
    char *data = calloc(1, 65536);
    size_t got = data != NULL ? fread(data, 1, 65535, fp) : 0;
    fclose(fp);
    if (len != NULL) {
        *len = got;
    }
    return data;
}

static char *bio_text(BIO *bio)
{
    char *mem = NULL;
    long len = BIO_get_mem_data(bio, &mem);
    char *copy = calloc(1, (size_t)len + 1);
    if (copy != NULL && len > 0) {
        memcpy(copy, mem, (size_t)len);
    }
    return copy;
}

/* PEM text of `pkey` in `structure` ("SubjectPublicKeyInfo",
 * "type-specific", "PrivateKeyInfo", ...) for the given selection. */
static char *pem_of(EVP_PKEY *pkey, int selection, const char *structure)
{
    char *text = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    OSSL_ENCODER_CTX *ctx = OSSL_ENCODER_CTX_new_for_pkey(pkey, selection, "PEM", structure, NULL);
    if (bio != NULL && ctx != NULL && OSSL_ENCODER_CTX_get_num_encoders(ctx) > 0 &&
        OSSL_ENCODER_to_bio(ctx, bio) == 1) {
        text = bio_text(bio);
    }
    OSSL_ENCODER_CTX_free(ctx);
    BIO_free(bio);
    return text;
}

static char *public_pem(EVP_PKEY *pkey)
{
    return pem_of(pkey, EVP_PKEY_PUBLIC_KEY, "SubjectPublicKeyInfo");
}

static bool write_pem(const char *path, char *pem, mode_t mode)
{
    bool ok = pem != NULL && write_file(path, pem, strlen(pem), mode);
    free(pem);
    return ok;
}

static bool write_private_pem(const char *path, EVP_PKEY *pkey, mode_t mode)
{
    return write_pem(path, pem_of(pkey, EVP_PKEY_KEYPAIR, "PrivateKeyInfo"), mode);
}

static bool key_is_zeroed(const struct signing_key *key)
{
    return key->alg == 0 && key->pkey == NULL && key->kid[0] == '\0' && !key->has_private &&
           key->hmac_len == 0;
}

static bool is_base64url(const char *text)
{
    return text[strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")] ==
           '\0';
}

/* Decodes base64url text into a new NUL-terminated buffer. */
static uint8_t *decode_b64url(const char *text, size_t len, size_t *out_len)
{
    uint8_t *out = calloc(1, len + 1);
    int got = out != NULL ? base64url_decode(text, len, out, len + 1) : -1;
    if (got < 0) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)got;
    return out;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_public_from_b64(const char *n_text, const char *e_text)
{
    size_t n_len = 0;
    size_t e_len = 0;
    uint8_t *n_raw = decode_b64url(n_text, strlen(n_text), &n_len);
    uint8_t *e_raw = decode_b64url(e_text, strlen(e_text), &e_len);
    BIGNUM *n = n_raw != NULL ? BN_bin2bn(n_raw, (int)n_len, NULL) : NULL;
    BIGNUM *e = e_raw != NULL ? BN_bin2bn(e_raw, (int)e_len, NULL) : NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (n != NULL && e != NULL && bld != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1) {
        pkey = pkey_from_params("RSA", bld);
    }
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(n_raw);
    free(e_raw);
    return pkey;
}

static EVP_PKEY *ec_public_from_b64(const char *x_text, const char *y_text)
{
    size_t x_len = 0;
    size_t y_len = 0;
    uint8_t *x = decode_b64url(x_text, strlen(x_text), &x_len);
    uint8_t *y = decode_b64url(y_text, strlen(y_text), &y_len);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    uint8_t point[65];
    if (x != NULL && y != NULL && x_len == 32 && y_len == 32 && bld != NULL) {
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, 32);
        memcpy(point + 33, y, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) == 1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) ==
                1) {
            pkey = pkey_from_params("EC", bld);
        }
    }
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

static const char *json_string(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* The JWK with `kid` in a JWKS document, or NULL. */
static const cJSON *jwks_find(const cJSON *jwks, const char *kid)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(jwks, "keys");
    const cJSON *jwk = NULL;
    cJSON_ArrayForEach(jwk, keys)
    {
        const char *this_kid = json_string(jwk, "kid");
        if (this_kid != NULL && strcmp(this_kid, kid) == 0) {
            return jwk;
        }
    }
    return NULL;
}

/* Rebuilds the public key from a published JWK. */
static EVP_PKEY *pkey_from_jwk(const cJSON *jwk)
{
    const char *kty = json_string(jwk, "kty");
    if (kty != NULL && strcmp(kty, "EC") == 0 && json_string(jwk, "x") != NULL &&
        json_string(jwk, "y") != NULL) {
        return ec_public_from_b64(json_string(jwk, "x"), json_string(jwk, "y"));
    }
    if (kty != NULL && strcmp(kty, "RSA") == 0 && json_string(jwk, "n") != NULL &&
        json_string(jwk, "e") != NULL) {
        return rsa_public_from_b64(json_string(jwk, "n"), json_string(jwk, "e"));
    }
    return NULL;
}

/* Verifies a JWS signature with OpenSSL alone. ES256's raw R||S is turned
 * back into DER first. */
static bool verify_with_pkey(EVP_PKEY *pkey, bool is_ec, const char *input, size_t input_len,
                             const uint8_t *sig, size_t sig_len)
{
    bool ok = false;
    uint8_t *der = NULL;
    int der_len = 0;
    ECDSA_SIG *ecdsa = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || pkey == NULL) {
        goto done;
    }
    if (is_ec) {
        if (sig_len != 64 || (ecdsa = ECDSA_SIG_new()) == NULL) {
            goto done;
        }
        BIGNUM *r = BN_bin2bn(sig, 32, NULL);
        BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
        if (r == NULL || s == NULL || ECDSA_SIG_set0(ecdsa, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto done;
        }
        der_len = i2d_ECDSA_SIG(ecdsa, &der);
        if (der_len <= 0) {
            goto done;
        }
        sig = der;
        sig_len = (size_t)der_len;
    }
    ok = EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
         EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)input, input_len) == 1;
done:
    ERR_clear_error();
    OPENSSL_free(der);
    ECDSA_SIG_free(ecdsa);
    EVP_MD_CTX_free(ctx);
    return ok;
}

static bool verify_hmac(const uint8_t *hmac, size_t hmac_len, const char *input, size_t input_len,
                        const uint8_t *sig, size_t sig_len)
{
    uint8_t mac[32];
    size_t mac_len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hmac, hmac_len, (const uint8_t *)input,
                  input_len, mac, sizeof(mac), &mac_len) == NULL) {
        return false;
    }
    return mac_len == sig_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
}

/* A token cut at its dots. */
struct token_parts {
    char *header; /* decoded JSON */
    char *claims; /* decoded JSON */
    uint8_t *sig; /* decoded signature */
    size_t sig_len;
    size_t signing_input_len; /* length of "header.claims" */
};

static bool split_token(const char *token, struct token_parts *parts)
{
    memset(parts, 0, sizeof(*parts));
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        return false;
    }
    size_t len = 0;
    parts->header = (char *)decode_b64url(token, (size_t)(dot1 - token), &len);
    parts->claims = (char *)decode_b64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &len);
    parts->sig = decode_b64url(dot2 + 1, strlen(dot2 + 1), &parts->sig_len);
    parts->signing_input_len = (size_t)(dot2 - token);
    return parts->header != NULL && parts->claims != NULL && parts->sig != NULL;
}

static void free_parts(struct token_parts *parts)
{
    free(parts->header);
    free(parts->claims);
    free(parts->sig);
}

static void set_config(struct tokend_config *config, const char *alg, const char *key_file,
                       const char *kid, const char *hmac_file, const char *verify_files)
{
    memset(config, 0, sizeof(*config));
    config->signing_alg = (char *)alg;
    config->signing_key_file = (char *)key_file;
    config->signing_kid = (char *)kid;
    config->hmac_key_file = (char *)hmac_file;
    config->verify_key_files = (char *)verify_files;
}

/* ---- the shared key files, generated once ---- */

static void setup_keys(void)
{
    char error[ERR_SIZE] = "";
    CHECK_INT(signing_key_generate(JWS_ALG_ES256, in_dir("es.pem"), error, sizeof(error)), TK_OK);
    CHECK_INT(signing_key_generate(JWS_ALG_ES256, in_dir("es2.pem"), error, sizeof(error)), TK_OK);
    CHECK_INT(signing_key_generate(JWS_ALG_RS256, in_dir("rs.pem"), error, sizeof(error)), TK_OK);
    CHECK_INT(signing_key_generate(JWS_ALG_RS256, in_dir("rs2.pem"), error, sizeof(error)), TK_OK);
    CHECK_INT(signing_key_generate(JWS_ALG_HS256, in_dir("hs.key"), error, sizeof(error)), TK_OK);
    CHECK_STR(error, "");

    /* Public halves, world-readable as public keys may be. */
    struct signing_key key;
    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK(write_pem(in_dir("es.pub.pem"), public_pem(key.pkey), 0644));
    signing_key_free(&key);
    CHECK_INT(signing_key_load_pem(&key, in_dir("rs.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK(write_pem(in_dir("rs.pub.pem"), public_pem(key.pkey), 0644));
    signing_key_free(&key);
}

static void test_alg_names(void)
{
    enum jws_alg alg = 0;
    CHECK_INT(jws_alg_parse("ES256", &alg), TK_OK);
    CHECK_INT(alg, JWS_ALG_ES256);
    CHECK_INT(jws_alg_parse("RS256", &alg), TK_OK);
    CHECK_INT(alg, JWS_ALG_RS256);
    CHECK_INT(jws_alg_parse("HS256", &alg), TK_OK);
    CHECK_INT(alg, JWS_ALG_HS256);
    alg = 0;
    CHECK_INT(jws_alg_parse("es256", &alg), TK_INVALID);
    CHECK_INT(jws_alg_parse("none", &alg), TK_INVALID);
    CHECK_INT(jws_alg_parse("", &alg), TK_INVALID);
    CHECK_INT(jws_alg_parse("ES256 ", &alg), TK_INVALID);
    CHECK_INT(jws_alg_parse(NULL, &alg), TK_INVALID);
    CHECK_INT(alg, 0);
    CHECK_STR(jws_alg_name(JWS_ALG_ES256), "ES256");
    CHECK_STR(jws_alg_name(JWS_ALG_RS256), "RS256");
    CHECK_STR(jws_alg_name(JWS_ALG_HS256), "HS256");
}

static void test_generate(void)
{
    char error[ERR_SIZE] = "";
    struct stat st;
    const char *names[] = {"es.pem", "rs.pem", "hs.key"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_INT(stat(in_dir(names[i]), &st), 0);
        CHECK_INT(st.st_mode & 07777, 0600);
    }

    size_t len = 0;
    char *pem = read_file(in_dir("es.pem"), &len);
    CHECK(pem != NULL && strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    free(pem);
    pem = read_file(in_dir("rs.pem"), &len);
    CHECK(pem != NULL && strncmp(pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
    free(pem);

    char *hs = read_file(in_dir("hs.key"), &len);
    CHECK(hs != NULL);
    CHECK_INT(len, 44);
    if (hs != NULL && len == 44) {
        CHECK_INT(hs[43], '\n');
        hs[43] = '\0';
        CHECK(is_base64url(hs));
        uint8_t raw[33];
        CHECK_INT(base64url_decode(hs, 43, raw, sizeof(raw)), 32);
    }

    /* Never overwrites: the file and its content stay. */
    for (int alg = JWS_ALG_ES256; alg <= JWS_ALG_HS256; alg++) {
        CHECK_INT(signing_key_generate(alg, in_dir("hs.key"), error, sizeof(error)), TK_ERROR);
        char expected[ERR_SIZE];
        snprintf(expected, sizeof(expected), "%s: cannot create: File exists", in_dir("hs.key"));
        CHECK_STR(error, expected);
    }
    char *again = read_file(in_dir("hs.key"), &len);
    CHECK(again != NULL && hs != NULL && len == 44 && memcmp(again, hs, 43) == 0);
    free(again);
    free(hs);

    /* Two generated keys differ. */
    struct signing_key first;
    struct signing_key second;
    CHECK_INT(signing_key_load_pem(&first, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK_INT(signing_key_load_pem(&second, in_dir("es2.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK(strcmp(first.kid, second.kid) != 0);
    signing_key_free(&first);
    signing_key_free(&second);

    /* A directory that does not exist. */
    CHECK_INT(signing_key_generate(JWS_ALG_ES256, in_dir("nodir/es.pem"), error, sizeof(error)),
              TK_ERROR);
    char expected[ERR_SIZE];
    snprintf(expected, sizeof(expected), "%s: cannot create: No such file or directory",
             in_dir("nodir/es.pem"));
    CHECK_STR(error, expected);
    CHECK_INT(signing_key_generate(0, in_dir("unknown.pem"), error, sizeof(error)), TK_ERROR);
    CHECK_INT(access(in_dir("unknown.pem"), F_OK), -1);
}

static void test_load_pem(void)
{
    char error[ERR_SIZE] = "";
    struct signing_key key;

    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK_INT(key.alg, JWS_ALG_ES256);
    CHECK(key.has_private);
    CHECK(key.pkey != NULL);
    CHECK_INT(strlen(key.kid), 43);
    CHECK(is_base64url(key.kid));
    char es_kid[SIGNING_KID_MAX + 1];
    snprintf(es_kid, sizeof(es_kid), "%s", key.kid);
    signing_key_free(&key);
    CHECK(key_is_zeroed(&key));

    /* expected_alg that matches. */
    CHECK_INT(
        signing_key_load_pem(&key, in_dir("es.pem"), JWS_ALG_ES256, "", true, error, sizeof(error)),
        TK_OK);
    CHECK_STR(key.kid, es_kid);
    signing_key_free(&key);

    /* The public half: same kid, cannot sign. */
    CHECK_INT(
        signing_key_load_pem(&key, in_dir("es.pub.pem"), 0, NULL, false, error, sizeof(error)),
        TK_OK);
    CHECK_INT(key.alg, JWS_ALG_ES256);
    CHECK(!key.has_private);
    CHECK_STR(key.kid, es_kid);
    uint8_t sig[SIGNING_MAX_SIG];
    CHECK_INT(signing_key_sign(&key, (const uint8_t *)"x", 1, sig), TK_ERROR);
    struct jwt_claims claims = {"iss", "sub", "aud", "cid", NULL, 1, 2, "jti"};
    struct buffer out;
    buffer_init(&out);
    CHECK_INT(jwt_issuer_build(&key, "at+jwt", &claims, &out), TK_ERROR);
    buffer_free(&out);
    signing_key_free(&key);

    /* RS256 and a configured kid. */
    CHECK_INT(signing_key_load_pem(&key, in_dir("rs.pem"), JWS_ALG_RS256, "rsa-2026.1", true, error,
                                   sizeof(error)),
              TK_OK);
    CHECK_INT(key.alg, JWS_ALG_RS256);
    CHECK_STR(key.kid, "rsa-2026.1");
    CHECK_INT(EVP_PKEY_get_bits(key.pkey), 2048);
    signing_key_free(&key);

    /* SEC1 "EC PRIVATE KEY" and PKCS#1 "RSA PRIVATE KEY" / "RSA PUBLIC KEY". */
    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    char *sec1 = pem_of(key.pkey, EVP_PKEY_KEYPAIR, "type-specific");
    CHECK(sec1 != NULL && strstr(sec1, "-----BEGIN EC PRIVATE KEY-----") != NULL);
    CHECK(write_pem(in_dir("es.sec1.pem"), sec1, 0600));
    signing_key_free(&key);
    CHECK_INT(
        signing_key_load_pem(&key, in_dir("es.sec1.pem"), 0, NULL, true, error, sizeof(error)),
        TK_OK);
    CHECK_STR(key.kid, es_kid);
    CHECK(key.has_private);
    signing_key_free(&key);

    CHECK_INT(signing_key_load_pem(&key, in_dir("rs.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    char rs_kid[SIGNING_KID_MAX + 1];
    snprintf(rs_kid, sizeof(rs_kid), "%s", key.kid);
    char *pkcs1 = pem_of(key.pkey, EVP_PKEY_KEYPAIR, "type-specific");
    CHECK(pkcs1 != NULL && strstr(pkcs1, "-----BEGIN RSA PRIVATE KEY-----") != NULL);
    CHECK(write_pem(in_dir("rs.pkcs1.pem"), pkcs1, 0600));
    char *pkcs1_pub = pem_of(key.pkey, EVP_PKEY_PUBLIC_KEY, "type-specific");
    CHECK(pkcs1_pub != NULL && strstr(pkcs1_pub, "-----BEGIN RSA PUBLIC KEY-----") != NULL);
    CHECK(write_pem(in_dir("rs.pkcs1.pub.pem"), pkcs1_pub, 0644));
    signing_key_free(&key);
    CHECK_INT(
        signing_key_load_pem(&key, in_dir("rs.pkcs1.pem"), 0, NULL, true, error, sizeof(error)),
        TK_OK);
    CHECK_STR(key.kid, rs_kid);
    signing_key_free(&key);
    CHECK_INT(signing_key_load_pem(&key, in_dir("rs.pkcs1.pub.pem"), 0, NULL, false, error,
                                   sizeof(error)),
              TK_OK);
    CHECK_STR(key.kid, rs_kid);
    CHECK(!key.has_private);
    signing_key_free(&key);
}

/* Loads `path` expecting failure with exactly `suffix` after "PATH: ". */
static void check_load_fails(const char *path, enum jws_alg expected_alg, const char *kid,
                             bool require_private, const char *suffix)
{
    char error[ERR_SIZE] = "";
    char expected[ERR_SIZE];
    struct signing_key key;
    memset(&key, 0xa5, sizeof(key));
    CHECK_INT(
        signing_key_load_pem(&key, path, expected_alg, kid, require_private, error, sizeof(error)),
        TK_INVALID);
    snprintf(expected, sizeof(expected), "%s: %s", path, suffix);
    CHECK_STR(error, expected);
    CHECK(key_is_zeroed(&key));
}

static void test_load_pem_errors(void)
{
    char *pem = NULL;
    size_t len = 0;
    char message[ERR_SIZE];

    /* A private key readable by others or by the group is refused. */
    pem = read_file(in_dir("es.pem"), &len);
    CHECK(pem != NULL && write_file(in_dir("es.0644.pem"), pem, len, 0644));
    CHECK(pem != NULL && write_file(in_dir("es.0640.pem"), pem, len, 0640));
    CHECK(pem != NULL && write_file(in_dir("es.0604.pem"), pem, len, 0604));
    free(pem);
    const char *loose[] = {"es.0644.pem", "es.0640.pem", "es.0604.pem"};
    for (size_t i = 0; i < 3; i++) {
        const char *path = in_dir(loose[i]);
        snprintf(message, sizeof(message),
                 "private key is readable by group or others (chmod 600 %s)", path);
        check_load_fails(path, 0, NULL, true, message);
        check_load_fails(path, 0, NULL, false, message);
    }

    check_load_fails(in_dir("missing.pem"), 0, NULL, true,
                     "cannot read: No such file or directory");
    check_load_fails(test_dir, 0, NULL, true, "not a regular file");
    /* A FIFO without a writer is refused at once, not waited on. */
    CHECK_INT(mkfifo(in_dir("fifo.pem"), 0600), 0);
    check_load_fails(in_dir("fifo.pem"), 0, NULL, false, "not a regular file");
    unlink(in_dir("fifo.pem"));

    const char *no_key = "no usable PEM key found (unencrypted PKCS#8, SEC1, PKCS#1 or SPKI)";
    CHECK(write_file(in_dir("garbage.pem"), "hello\n", 6, 0600));
    check_load_fails(in_dir("garbage.pem"), 0, NULL, true, no_key);
    CHECK(write_file(in_dir("empty.pem"), "", 0, 0600));
    check_load_fails(in_dir("empty.pem"), 0, NULL, false, no_key);
    const char *truncated = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n";
    CHECK(write_file(in_dir("truncated.pem"), truncated, strlen(truncated), 0600));
    check_load_fails(in_dir("truncated.pem"), 0, NULL, true, no_key);

    /* Too large to be a key file. */
    char *big = calloc(1, 70000);
    CHECK(big != NULL && write_file(in_dir("big.pem"), big, 70000, 0600));
    free(big);
    check_load_fails(in_dir("big.pem"), 0, NULL, true, "larger than 65536 bytes");

    /* Public keys are fine to publish, not to sign with. */
    check_load_fails(in_dir("es.pub.pem"), 0, NULL, true,
                     "holds a public key; signing needs the private key");

    /* Algorithm mismatch. */
    check_load_fails(in_dir("es.pem"), JWS_ALG_RS256, NULL, true,
                     "key is for ES256, but RS256 is configured");
    check_load_fails(in_dir("rs.pub.pem"), JWS_ALG_ES256, NULL, false,
                     "key is for RS256, but ES256 is configured");
    check_load_fails(in_dir("es.pem"), JWS_ALG_HS256, NULL, true,
                     "key is for ES256, but HS256 is configured");

    /* Bad configured kids. */
    check_load_fails(in_dir("es.pem"), 0, "a\"b", true,
                     "kid may only hold printable ASCII without spaces, quotes or backslashes");
    check_load_fails(in_dir("es.pem"), 0, "a b", true,
                     "kid may only hold printable ASCII without spaces, quotes or backslashes");
    char long_kid[SIGNING_KID_MAX + 2];
    memset(long_kid, 'k', SIGNING_KID_MAX + 1);
    long_kid[SIGNING_KID_MAX + 1] = '\0';
    check_load_fails(in_dir("es.pem"), 0, long_kid, true, "kid is longer than 64 characters");
    long_kid[SIGNING_KID_MAX] = '\0';
    char error[ERR_SIZE];
    struct signing_key key;
    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, long_kid, true, error, sizeof(error)),
              TK_OK);
    CHECK_STR(key.kid, long_kid);
    signing_key_free(&key);

    /* Wrong curve, short RSA, other key types. */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    CHECK(write_private_pem(in_dir("p384.pem"), p384, 0600));
    check_load_fails(in_dir("p384.pem"), 0, NULL, true,
                     "EC key is on curve secp384r1; ES256 needs P-256");
    CHECK(write_pem(in_dir("p384.pub.pem"), public_pem(p384), 0644));
    check_load_fails(in_dir("p384.pub.pem"), 0, NULL, false,
                     "EC key is on curve secp384r1; ES256 needs P-256");
    EVP_PKEY_free(p384);

    EVP_PKEY *rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    CHECK(write_private_pem(in_dir("rsa1024.pem"), rsa1024, 0600));
    check_load_fails(in_dir("rsa1024.pem"), 0, NULL, true,
                     "RSA key has 1024 bits; RS256 needs 2048 to 4096");
    EVP_PKEY_free(rsa1024);

    EVP_PKEY *ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    CHECK(write_private_pem(in_dir("ed25519.pem"), ed25519, 0600));
    check_load_fails(in_dir("ed25519.pem"), 0, NULL, true,
                     "unsupported key type ED25519 (need a P-256 EC or an RSA key)");
    EVP_PKEY_free(ed25519);

    /* An encrypted key fails without asking for a passphrase. */
    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    BIO *bio = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_PKCS8PrivateKey(bio, key.pkey, EVP_aes_256_cbc(), "pass", 4, NULL, NULL) ==
          1);
    signing_key_free(&key);
    CHECK(write_pem(in_dir("encrypted.pem"), bio_text(bio), 0600));
    BIO_free(bio);
    check_load_fails(in_dir("encrypted.pem"), 0, NULL, true, no_key);
}

static void test_thumbprint_rfc7638(void)
{
    char error[ERR_SIZE] = "";
    struct signing_key key;
    EVP_PKEY *pkey = rsa_public_from_b64(RFC7638_N, RFC7638_E);
    CHECK(pkey != NULL);
    CHECK(write_pem(in_dir("rfc7638.pub.pem"), public_pem(pkey), 0644));
    EVP_PKEY_free(pkey);
    CHECK_INT(
        signing_key_load_pem(&key, in_dir("rfc7638.pub.pem"), 0, NULL, false, error, sizeof(error)),
        TK_OK);
    CHECK_STR(error, "");
    CHECK_INT(key.alg, JWS_ALG_RS256);
    CHECK_STR(key.kid, RFC7638_THUMBPRINT);

    /* Its JWK is the RFC's, byte for byte, in our member order. */
    struct buffer jwk;
    buffer_init(&jwk);
    CHECK_INT(signing_key_append_jwk(&key, &jwk), TK_OK);
    CHECK_STR(jwk.data, "{\"kty\":\"RSA\",\"n\":\"" RFC7638_N "\",\"e\":\"" RFC7638_E
                        "\",\"kid\":\"" RFC7638_THUMBPRINT "\",\"alg\":\"RS256\",\"use\":\"sig\"}");
    buffer_free(&jwk);
    signing_key_free(&key);

    /* A configured kid replaces the thumbprint everywhere. */
    CHECK_INT(signing_key_load_pem(&key, in_dir("rfc7638.pub.pem"), 0, "2011-04-29", false, error,
                                   sizeof(error)),
              TK_OK);
    CHECK_STR(key.kid, "2011-04-29");
    buffer_init(&jwk);
    CHECK_INT(signing_key_append_jwk(&key, &jwk), TK_OK);
    CHECK(strstr(jwk.data, ",\"kid\":\"2011-04-29\",") != NULL);
    buffer_free(&jwk);
    signing_key_free(&key);
}

/* The EC thumbprint recomputed from the published JWK. */
static void test_thumbprint_ec(void)
{
    char error[ERR_SIZE] = "";
    struct signing_key key;
    struct buffer jwk;
    buffer_init(&jwk);
    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK_INT(signing_key_append_jwk(&key, &jwk), TK_OK);
    cJSON *parsed = cJSON_Parse(jwk.data);
    CHECK(parsed != NULL);
    const char *x = json_string(parsed, "x");
    const char *y = json_string(parsed, "y");
    CHECK(x != NULL && y != NULL);
    if (x != NULL && y != NULL) {
        CHECK_INT(strlen(x), 43);
        CHECK_INT(strlen(y), 43);
        char text[ERR_SIZE];
        snprintf(text, sizeof(text),
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
                 "\"alg\":\"ES256\",\"use\":\"sig\"}",
                 x, y, key.kid);
        CHECK_STR(jwk.data, text);

        snprintf(text, sizeof(text), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                 x, y);
        uint8_t digest[32];
        unsigned int digest_len = 0;
        char encoded[64];
        CHECK(EVP_Digest(text, strlen(text), digest, &digest_len, EVP_sha256(), NULL) == 1);
        CHECK_INT(base64url_encode(digest, digest_len, encoded, sizeof(encoded)), 43);
        CHECK_STR(key.kid, encoded);

        /* And x/y are the key's own coordinates. */
        BIGNUM *bx = NULL;
        CHECK(EVP_PKEY_get_bn_param(key.pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1);
        uint8_t raw[32];
        CHECK(BN_bn2binpad(bx, raw, 32) == 32);
        CHECK_INT(base64url_encode(raw, 32, encoded, sizeof(encoded)), 43);
        CHECK_STR(x, encoded);
        BN_free(bx);
    }
    cJSON_Delete(parsed);
    buffer_free(&jwk);
    signing_key_free(&key);
}

static void test_load_hmac(void)
{
    char error[ERR_SIZE] = "";
    char expected[ERR_SIZE];
    struct signing_key key;

    size_t len = 0;
    char *text = read_file(in_dir("hs.key"), &len);
    CHECK(text != NULL && len == 44);
    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.key"), NULL, error, sizeof(error)), TK_OK);
    CHECK_INT(key.alg, JWS_ALG_HS256);
    CHECK(key.has_private);
    CHECK(key.pkey == NULL);
    CHECK_INT(key.hmac_len, 43);
    CHECK(text != NULL && memcmp(key.hmac, text, 43) == 0);

    /* kid = first 16 characters of base64url(HMAC-SHA256(key, "tokend-kid")). */
    uint8_t mac[32];
    size_t mac_len = 0;
    char encoded[64];
    CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, text, 43, (const uint8_t *)"tokend-kid", 10,
                    mac, sizeof(mac), &mac_len) != NULL);
    CHECK_INT(base64url_encode(mac, mac_len, encoded, sizeof(encoded)), 43);
    encoded[16] = '\0';
    CHECK_STR(key.kid, encoded);

    struct buffer jwk;
    buffer_init(&jwk);
    CHECK_INT(signing_key_append_jwk(&key, &jwk), TK_DECLINED);
    CHECK_INT(jwk.len, 0);
    buffer_free(&jwk);
    signing_key_free(&key);
    CHECK(key_is_zeroed(&key));
    free(text);

    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.key"), "hmac-1", error, sizeof(error)), TK_OK);
    CHECK_STR(key.kid, "hmac-1");
    signing_key_free(&key);

    /* Lengths: one "\n" or "\r\n" is dropped, nothing else. */
    char bytes[300];
    memset(bytes, 'k', sizeof(bytes));
    struct {
        size_t file_len;
        const char *tail;
        int rc;
        size_t key_len;
    } cases[] = {
        {32, "", TK_OK, 32},          {32, "\n", TK_OK, 32},      {32, "\r\n", TK_OK, 32},
        {32, "\n\n", TK_OK, 33},      {32, " ", TK_OK, 33},       {256, "", TK_OK, 256},
        {256, "\r\n", TK_OK, 256},    {31, "", TK_INVALID, 31},   {31, "\n", TK_INVALID, 31},
        {31, "\r\n", TK_INVALID, 31}, {257, "", TK_INVALID, 257}, {256, " \n", TK_INVALID, 257},
        {0, "", TK_INVALID, 0},       {0, "\n", TK_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char content[300];
        size_t tail_len = strlen(cases[i].tail);
        memcpy(content, bytes, cases[i].file_len);
        memcpy(content + cases[i].file_len, cases[i].tail, tail_len);
        CHECK(write_file(in_dir("hs.case"), content, cases[i].file_len + tail_len, 0600));
        error[0] = '\0';
        memset(&key, 0xa5, sizeof(key));
        CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.case"), NULL, error, sizeof(error)),
                  cases[i].rc);
        if (cases[i].rc == TK_OK) {
            CHECK_INT(key.hmac_len, cases[i].key_len);
            CHECK_STR(error, "");
        } else {
            snprintf(expected, sizeof(expected), "%s: HMAC key is %zu bytes; HS256 needs 32 to 256",
                     in_dir("hs.case"), cases[i].key_len);
            CHECK_STR(error, expected);
            CHECK(key_is_zeroed(&key));
        }
        signing_key_free(&key);
        unlink(in_dir("hs.case"));
    }

    /* Too long to read at all. */
    CHECK(write_file(in_dir("hs.long"), bytes, 259, 0600));
    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.long"), NULL, error, sizeof(error)),
              TK_INVALID);
    snprintf(expected, sizeof(expected), "%s: larger than 258 bytes", in_dir("hs.long"));
    CHECK_STR(error, expected);

    /* Mode, missing file, bad kid. */
    CHECK(write_file(in_dir("hs.0644"), bytes, 40, 0644));
    memset(&key, 0xa5, sizeof(key));
    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.0644"), NULL, error, sizeof(error)),
              TK_INVALID);
    snprintf(expected, sizeof(expected),
             "%s: private key is readable by group or others (chmod 600 %s)", in_dir("hs.0644"),
             in_dir("hs.0644"));
    CHECK_STR(error, expected);
    CHECK(key_is_zeroed(&key));
    CHECK(write_file(in_dir("hs.0620"), bytes, 40, 0620));
    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.0620"), NULL, error, sizeof(error)),
              TK_INVALID);
    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.missing"), NULL, error, sizeof(error)),
              TK_INVALID);
    snprintf(expected, sizeof(expected), "%s: cannot read: No such file or directory",
             in_dir("hs.missing"));
    CHECK_STR(error, expected);
    CHECK_INT(signing_key_load_hmac(&key, in_dir("hs.key"), "bad\\kid", error, sizeof(error)),
              TK_INVALID);
    snprintf(expected, sizeof(expected),
             "%s: kid may only hold printable ASCII without spaces, quotes or backslashes",
             in_dir("hs.key"));
    CHECK_STR(error, expected);
    CHECK(key_is_zeroed(&key));
}

/* ---- tokens ---- */

struct verifier {
    EVP_PKEY *pkey;      /* ES256/RS256: rebuilt from the JWKS */
    const uint8_t *hmac; /* HS256 */
    size_t hmac_len;
    bool is_ec;
};

static bool verify_token(const struct verifier *verifier, const char *token)
{
    struct token_parts parts;
    bool ok = split_token(token, &parts);
    if (ok) {
        ok = verifier->pkey != NULL
                 ? verify_with_pkey(verifier->pkey, verifier->is_ec, token, parts.signing_input_len,
                                    parts.sig, parts.sig_len)
                 : verify_hmac(verifier->hmac, verifier->hmac_len, token, parts.signing_input_len,
                               parts.sig, parts.sig_len);
    }
    free_parts(&parts);
    return ok;
}

/* Builds tokens with `key` and checks them field by field and signature. */
static void check_tokens(const struct signing_key *key, const struct verifier *verifier,
                         size_t expected_sig_len)
{
    const char *alg = jws_alg_name(key->alg);
    char expected[8192];
    struct buffer out;
    buffer_init(&out);

    struct jwt_claims claims = {
        .iss = "https://auth.example.com",
        .sub = "svc-\"quoted\"\\back",
        .aud = "https://api.example.com",
        .client_id = "svc-\"quoted\"\\back",
        .scope = "read write",
        .iat = 1700000000,
        .exp = 1700003600,
        .jti = "0123456789abcdef0123456789abcdef",
    };
    int rc = jwt_issuer_build(key, "at+jwt", &claims, &out);
    CHECK_INT(rc, TK_OK);
    if (rc != TK_OK) {
        buffer_free(&out);
        return;
    }
    CHECK(!buffer_failed(&out));
    CHECK_INT(strlen(out.data), out.len);
    CHECK(verify_token(verifier, out.data));

    struct token_parts parts;
    CHECK(split_token(out.data, &parts));
    if (parts.header != NULL && parts.claims != NULL) {
        snprintf(expected, sizeof(expected), "{\"alg\":\"%s\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}",
                 alg, key->kid);
        CHECK_STR(parts.header, expected);
        CHECK_STR(parts.claims,
                  "{\"iss\":\"https://auth.example.com\",\"sub\":\"svc-\\\"quoted\\\"\\\\back\","
                  "\"aud\":\"https://api.example.com\","
                  "\"client_id\":\"svc-\\\"quoted\\\"\\\\back\",\"scope\":\"read write\","
                  "\"iat\":1700000000,\"exp\":1700003600,"
                  "\"jti\":\"0123456789abcdef0123456789abcdef\"}");
        CHECK_INT(parts.sig_len, expected_sig_len);

        cJSON *header = cJSON_Parse(parts.header);
        CHECK(header != NULL);
        CHECK_INT(cJSON_GetArraySize(header), 3);
        CHECK_STR(json_string(header, "alg"), alg);
        CHECK_STR(json_string(header, "typ"), "at+jwt");
        CHECK_STR(json_string(header, "kid"), key->kid);
        cJSON_Delete(header);

        cJSON *body = cJSON_Parse(parts.claims);
        CHECK(body != NULL);
        CHECK_INT(cJSON_GetArraySize(body), 8);
        CHECK_STR(json_string(body, "iss"), "https://auth.example.com");
        CHECK_STR(json_string(body, "sub"), "svc-\"quoted\"\\back");
        CHECK_STR(json_string(body, "aud"), "https://api.example.com");
        CHECK_STR(json_string(body, "client_id"), "svc-\"quoted\"\\back");
        CHECK_STR(json_string(body, "scope"), "read write");
        CHECK_STR(json_string(body, "jti"), "0123456789abcdef0123456789abcdef");
        const cJSON *iat = cJSON_GetObjectItemCaseSensitive(body, "iat");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(body, "exp");
        CHECK(cJSON_IsNumber(iat) && iat->valuedouble == 1700000000.0);
        CHECK(cJSON_IsNumber(exp) && exp->valuedouble == 1700003600.0);
        cJSON_Delete(body);
    }
    free_parts(&parts);

    /* Any changed byte of the signed part or the signature breaks it. */
    char *tampered = strdup(out.data);
    const char *dot1 = strchr(out.data, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    CHECK(tampered != NULL && dot2 != NULL);
    if (tampered != NULL && dot2 != NULL) {
        size_t in_claims = (size_t)(dot1 - out.data) + 5;
        tampered[in_claims] = tampered[in_claims] == 'A' ? 'B' : 'A';
        CHECK(!verify_token(verifier, tampered));
        tampered[in_claims] = out.data[in_claims];
        CHECK(verify_token(verifier, tampered));
        size_t in_header = 3;
        tampered[in_header] = tampered[in_header] == 'A' ? 'B' : 'A';
        CHECK(!verify_token(verifier, tampered));
        tampered[in_header] = out.data[in_header];
        size_t in_sig = (size_t)(dot2 - out.data) + 2;
        tampered[in_sig] = tampered[in_sig] == 'A' ? 'B' : 'A';
        CHECK(!verify_token(verifier, tampered));
    }
    free(tampered);

    /* scope NULL or "": no scope claim; negative and large integers; the
     * token is appended after what `out` already holds. */
    const char *empty_scopes[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        buffer_reset(&out);
        buffer_append_str(&out, "prefix:");
        claims.scope = empty_scopes[i];
        claims.client_id = "plain\n\x01";
        claims.iat = -5;
        claims.exp = INT64_MAX;
        CHECK_INT(jwt_issuer_build(key, "at+jwt", &claims, &out), TK_OK);
        CHECK(strncmp(out.data, "prefix:", 7) == 0);
        CHECK(verify_token(verifier, out.data + 7));
        CHECK(split_token(out.data + 7, &parts));
        CHECK_STR(parts.claims,
                  "{\"iss\":\"https://auth.example.com\",\"sub\":\"svc-\\\"quoted\\\"\\\\back\","
                  "\"aud\":\"https://api.example.com\",\"client_id\":\"plain\\n\\u0001\","
                  "\"iat\":-5,\"exp\":9223372036854775807,"
                  "\"jti\":\"0123456789abcdef0123456789abcdef\"}");
        free_parts(&parts);
    }

    /* Claims too large for the stack scratch area take the heap path. */
    char *long_scope = malloc(3001);
    CHECK(long_scope != NULL);
    if (long_scope != NULL) {
        memset(long_scope, 's', 3000);
        long_scope[3000] = '\0';
        buffer_reset(&out);
        claims.scope = long_scope;
        claims.iat = INT64_MIN;
        CHECK_INT(jwt_issuer_build(key, "JWT", &claims, &out), TK_OK);
        CHECK(verify_token(verifier, out.data));
        CHECK(split_token(out.data, &parts));
        snprintf(expected, sizeof(expected), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                 key->kid);
        CHECK_STR(parts.header, expected);
        cJSON *body = cJSON_Parse(parts.claims);
        CHECK_STR(json_string(body, "scope"), long_scope);
        CHECK(strstr(parts.claims, ",\"iat\":-9223372036854775808,") != NULL);
        cJSON_Delete(body);
        free_parts(&parts);
        free(long_scope);
    }

    /* Missing required claims are a programming error. */
    claims.scope = NULL;
    claims.jti = NULL;
    buffer_reset(&out);
    CHECK_INT(jwt_issuer_build(key, "at+jwt", &claims, &out), TK_ERROR);
    claims.jti = "j";
    CHECK_INT(jwt_issuer_build(key, NULL, &claims, &out), TK_ERROR);
    buffer_free(&out);
}

/* Checks a typ "JWT" token with libjwt, an independent implementation. */
static void check_libjwt(const struct signing_key *key, const uint8_t *verify_key,
                         size_t verify_key_len, jwt_alg_t expected_alg)
{
    struct buffer out;
    buffer_init(&out);
    struct jwt_claims claims = {
        .iss = "https://auth.example.com",
        .sub = "client-1",
        .aud = "https://api.example.com",
        .client_id = "client\"1\\",
        .scope = "read:a write:b",
        .iat = 1700000000,
        .exp = 4102444800, /* 2100: libjwt 1.10 does not check exp, but keep it valid */
        .jti = "ffffffffffffffffffffffffffffffff",
    };
    int rc = jwt_issuer_build(key, "JWT", &claims, &out);
    CHECK_INT(rc, TK_OK);
    if (rc != TK_OK) {
        buffer_free(&out);
        return;
    }

    jwt_t *jwt = NULL;
    CHECK_INT(jwt_decode(&jwt, out.data, verify_key, (int)verify_key_len), 0);
    CHECK(jwt != NULL);
    if (jwt != NULL) {
        CHECK_INT(jwt_get_alg(jwt), expected_alg);
        CHECK_STR(jwt_get_header(jwt, "typ"), "JWT");
        CHECK_STR(jwt_get_header(jwt, "kid"), key->kid);
        CHECK_STR(jwt_get_grant(jwt, "iss"), "https://auth.example.com");
        CHECK_STR(jwt_get_grant(jwt, "sub"), "client-1");
        CHECK_STR(jwt_get_grant(jwt, "aud"), "https://api.example.com");
        CHECK_STR(jwt_get_grant(jwt, "client_id"), "client\"1\\");
        CHECK_STR(jwt_get_grant(jwt, "scope"), "read:a write:b");
        CHECK_STR(jwt_get_grant(jwt, "jti"), "ffffffffffffffffffffffffffffffff");
        CHECK_INT(jwt_get_grant_int(jwt, "iat"), 1700000000);
        CHECK_INT(jwt_get_grant_int(jwt, "exp"), 4102444800);
        jwt_free(jwt);
    }

    /* libjwt rejects the same token with one payload byte changed. */
    char *dot = strchr(out.data, '.');
    CHECK(dot != NULL);
    if (dot != NULL) {
        dot[4] = dot[4] == 'A' ? 'B' : 'A';
        jwt = NULL;
        CHECK(jwt_decode(&jwt, out.data, verify_key, (int)verify_key_len) != 0);
        CHECK(jwt == NULL);
        jwt_free(jwt);
    }
    buffer_free(&out);
}

/* Signs with keys[0] of a key set and verifies with its published JWK. */
static void check_pem_alg(const char *key_file, enum jws_alg alg, size_t sig_len,
                          jwt_alg_t libjwt_alg)
{
    char error[ERR_SIZE] = "";
    struct tokend_config config;
    struct key_set set;
    set_config(&config, jws_alg_name(alg), key_file, "", "", "");
    int rc = key_set_load(&set, &config, error, sizeof(error));
    CHECK_INT(rc, TK_OK);
    CHECK_STR(error, "");
    if (rc != TK_OK) {
        return;
    }
    const struct signing_key *key = key_set_signing(&set);
    CHECK_INT(key->alg, alg);

    cJSON *jwks = cJSON_Parse(set.jwks_json.data);
    const cJSON *jwk = jwks_find(jwks, key->kid);
    CHECK(jwk != NULL);
    struct verifier verifier = {.pkey = pkey_from_jwk(jwk), .is_ec = alg == JWS_ALG_ES256};
    CHECK(verifier.pkey != NULL);
    if (verifier.pkey != NULL) {
        check_tokens(key, &verifier, sig_len);

        /* Another key of the same type does not verify, this one does. */
        struct signing_key other;
        const char *other_file = alg == JWS_ALG_ES256 ? "es2.pem" : "rs2.pem";
        CHECK_INT(
            signing_key_load_pem(&other, in_dir(other_file), 0, NULL, true, error, sizeof(error)),
            TK_OK);
        struct buffer out;
        buffer_init(&out);
        struct jwt_claims claims = {"i", "s", "a", "c", NULL, 1, 2, "j"};
        CHECK_INT(jwt_issuer_build(&other, "at+jwt", &claims, &out), TK_OK);
        CHECK(!verify_token(&verifier, out.data));
        buffer_reset(&out);
        CHECK_INT(jwt_issuer_build(key, "at+jwt", &claims, &out), TK_OK);
        CHECK(verify_token(&verifier, out.data));
        buffer_free(&out);
        signing_key_free(&other);

        char *pem = public_pem(verifier.pkey);
        CHECK(pem != NULL);
        if (pem != NULL) {
            check_libjwt(key, (const uint8_t *)pem, strlen(pem), libjwt_alg);
        }
        free(pem);
    }
    EVP_PKEY_free(verifier.pkey);
    cJSON_Delete(jwks);
    key_set_free(&set);
}

static void test_tokens_es256(void)
{
    check_pem_alg(in_dir("es.pem"), JWS_ALG_ES256, 64, JWT_ALG_ES256);
}

static void test_tokens_rs256(void)
{
    check_pem_alg(in_dir("rs.pem"), JWS_ALG_RS256, 256, JWT_ALG_RS256);
}

static void test_tokens_hs256(void)
{
    char error[ERR_SIZE] = "";
    struct tokend_config config;
    struct key_set set;
    set_config(&config, "HS256", "", "", in_dir("hs.key"), "");
    int rc = key_set_load(&set, &config, error, sizeof(error));
    CHECK_INT(rc, TK_OK);
    if (rc != TK_OK) {
        return;
    }
    const struct signing_key *key = key_set_signing(&set);
    CHECK_INT(key->alg, JWS_ALG_HS256);

    size_t len = 0;
    char *secret = read_file(in_dir("hs.key"), &len);
    CHECK(secret != NULL && len == 44);
    if (secret != NULL && len == 44) {
        struct verifier verifier = {.hmac = (const uint8_t *)secret, .hmac_len = 43};
        check_tokens(key, &verifier, 32);
        check_libjwt(key, (const uint8_t *)secret, 43, JWT_ALG_HS256);

        /* One more byte of key and the MAC no longer matches. */
        struct verifier wrong = {.hmac = (const uint8_t *)secret, .hmac_len = 44};
        struct buffer out;
        buffer_init(&out);
        struct jwt_claims claims = {"i", "s", "a", "c", NULL, 1, 2, "j"};
        CHECK_INT(jwt_issuer_build(key, "at+jwt", &claims, &out), TK_OK);
        CHECK(verify_token(&verifier, out.data));
        CHECK(!verify_token(&wrong, out.data));
        buffer_free(&out);
    }
    free(secret);
    key_set_free(&set);
}

/* A P-256 key whose x or y has a leading zero byte must still publish
 * 32-byte coordinates (RFC 7518 6.2.1.2) and hash them so. About one key in
 * 128 has one, so keep generating until one turns up. */
static void test_ec_coordinate_padding(void)
{
    char error[ERR_SIZE] = "";
    bool found = false;
    for (int attempt = 0; attempt < 8192 && !found; attempt++) {
        EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        BIGNUM *x = NULL;
        BIGNUM *y = NULL;
        if (pkey == NULL || EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
            CHECK(false);
            attempt = 8192;
        } else if (BN_num_bytes(x) < 32 || BN_num_bytes(y) < 32) {
            found = true;
            CHECK(write_private_pem(in_dir("padded.pem"), pkey, 0600));
        }
        BN_free(x);
        BN_free(y);
        EVP_PKEY_free(pkey);
    }
    CHECK(found);
    if (!found) {
        return;
    }

    struct signing_key key;
    struct buffer jwk;
    buffer_init(&jwk);
    CHECK_INT(signing_key_load_pem(&key, in_dir("padded.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    CHECK_INT(signing_key_append_jwk(&key, &jwk), TK_OK);
    cJSON *parsed = cJSON_Parse(jwk.data);
    const char *x = json_string(parsed, "x");
    const char *y = json_string(parsed, "y");
    CHECK(x != NULL && y != NULL);
    if (x != NULL && y != NULL) {
        CHECK_INT(strlen(x), 43);
        CHECK_INT(strlen(y), 43);
        char canonical[256];
        snprintf(canonical, sizeof(canonical),
                 "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
        uint8_t digest[32];
        unsigned int digest_len = 0;
        char encoded[64];
        CHECK(EVP_Digest(canonical, strlen(canonical), digest, &digest_len, EVP_sha256(), NULL) ==
              1);
        CHECK_INT(base64url_encode(digest, digest_len, encoded, sizeof(encoded)), 43);
        CHECK_STR(key.kid, encoded);
    }
    struct verifier verifier = {.pkey = pkey_from_jwk(parsed), .is_ec = true};
    CHECK(verifier.pkey != NULL);
    if (verifier.pkey != NULL) {
        check_tokens(&key, &verifier, 64);
    }
    EVP_PKEY_free(verifier.pkey);
    cJSON_Delete(parsed);
    buffer_free(&jwk);
    signing_key_free(&key);
}

/* ES256 signatures whose R or S is shorter than 32 bytes must be padded in
 * the raw R||S form. About one signature in 128 has one; sign until a few
 * have turned up, verifying every signature on the way. */
static void test_es256_signature_padding(void)
{
    char error[ERR_SIZE] = "";
    struct signing_key key;
    CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
              TK_OK);
    int padded = 0;
    int failures = 0;
    for (int i = 0; i < 20000 && padded < 3 && key.pkey != NULL; i++) {
        char message[32];
        int len = snprintf(message, sizeof(message), "message %d", i);
        uint8_t sig[SIGNING_MAX_SIG];
        int sig_len = signing_key_sign(&key, (const uint8_t *)message, (size_t)len, sig);
        if (sig_len != 64 || !verify_with_pkey(key.pkey, true, message, (size_t)len, sig, 64)) {
            failures++;
            break;
        }
        if (sig[0] == 0 || sig[32] == 0) {
            padded++;
        }
    }
    CHECK_INT(failures, 0);
    CHECK_INT(padded, 3);
    signing_key_free(&key);
}

/* ---- key sets ---- */

/* Loads a set that must load; false (after reporting) if it did not. */
static bool load_ok(struct key_set *set, const struct tokend_config *config)
{
    char error[ERR_SIZE] = "";
    int rc = key_set_load(set, config, error, sizeof(error));
    CHECK_INT(rc, TK_OK);
    CHECK_STR(error, "");
    return rc == TK_OK;
}

static void check_key_set_fails(const struct tokend_config *config, const char *expected)
{
    char error[ERR_SIZE] = "";
    struct key_set set;
    memset(&set, 0xa5, sizeof(set));
    CHECK_INT(key_set_load(&set, config, error, sizeof(error)), TK_INVALID);
    CHECK_STR(error, expected);
    CHECK_INT(set.count, 0);
    CHECK(set.jwks_json.data == NULL);
    CHECK_INT(set.jwks_json.len, 0);
    for (size_t i = 0; i < KEY_SET_MAX; i++) {
        CHECK(key_is_zeroed(&set.keys[i]));
    }
}

static void test_key_set(void)
{
    char error[ERR_SIZE] = "";
    char expected[ERR_SIZE];
    char verify_list[1024];
    struct tokend_config config;
    struct key_set set;

    /* Signing key first, then the verify keys in order; a public PEM works;
     * whitespace of any kind separates paths. */
    snprintf(verify_list, sizeof(verify_list), "  %s \t%s\n%s ", in_dir("rs.pub.pem"),
             in_dir("es2.pem"), in_dir("rfc7638.pub.pem"));
    set_config(&config, "", in_dir("es.pem"), "", "", verify_list);
    if (!load_ok(&set, &config)) {
        return;
    }
    CHECK_STR(error, "");
    CHECK_INT(set.count, 4);
    CHECK_INT(set.keys[0].alg, JWS_ALG_ES256);
    CHECK(set.keys[0].has_private);
    CHECK_INT(set.keys[1].alg, JWS_ALG_RS256);
    CHECK(!set.keys[1].has_private);
    CHECK_INT(set.keys[2].alg, JWS_ALG_ES256);
    CHECK(set.keys[2].has_private);
    CHECK_STR(set.keys[3].kid, RFC7638_THUMBPRINT);
    CHECK(key_set_signing(&set) == &set.keys[0]);

    /* The document is exactly the concatenation of the keys' JWKs. */
    struct buffer expected_jwks;
    buffer_init(&expected_jwks);
    buffer_append_str(&expected_jwks, "{\"keys\":[");
    for (size_t i = 0; i < 4; i++) {
        if (i > 0) {
            buffer_append_str(&expected_jwks, ",");
        }
        CHECK_INT(signing_key_append_jwk(&set.keys[i], &expected_jwks), TK_OK);
    }
    buffer_append_str(&expected_jwks, "]}");
    CHECK_STR(set.jwks_json.data, expected_jwks.data);
    buffer_free(&expected_jwks);

    cJSON *jwks = cJSON_Parse(set.jwks_json.data);
    CHECK(jwks != NULL);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(jwks, "keys");
    CHECK(cJSON_IsArray(keys));
    CHECK_INT(cJSON_GetArraySize(keys), 4);
    const char *ktys[] = {"EC", "RSA", "EC", "RSA"};
    const char *algs[] = {"ES256", "RS256", "ES256", "RS256"};
    for (int i = 0; i < 4 && cJSON_GetArraySize(keys) == 4; i++) {
        const cJSON *jwk = cJSON_GetArrayItem(keys, i);
        CHECK_STR(json_string(jwk, "kid"), set.keys[i].kid);
        CHECK_STR(json_string(jwk, "kty"), ktys[i]);
        CHECK_STR(json_string(jwk, "alg"), algs[i]);
        CHECK_STR(json_string(jwk, "use"), "sig");
        CHECK_INT(cJSON_GetArraySize(jwk), i % 2 == 0 ? 7 : 6);
        CHECK(json_string(jwk, "d") == NULL);
        EVP_PKEY *pkey = pkey_from_jwk(jwk);
        CHECK(pkey != NULL);
        EVP_PKEY_free(pkey);
    }
    CHECK_STR(json_string(cJSON_GetArrayItem(keys, 0), "crv"), "P-256");
    CHECK_STR(json_string(cJSON_GetArrayItem(keys, 3), "n"), RFC7638_N);
    CHECK_STR(json_string(cJSON_GetArrayItem(keys, 3), "e"), RFC7638_E);
    cJSON_Delete(jwks);
    key_set_free(&set);
    CHECK_INT(set.count, 0);
    CHECK(set.jwks_json.data == NULL);

    /* A configured kid names the signing key only. */
    set_config(&config, "ES256", in_dir("es.pem"), "current-2026", "", in_dir("es2.pem"));
    if (!load_ok(&set, &config)) {
        return;
    }
    CHECK_STR(set.keys[0].kid, "current-2026");
    CHECK_INT(strlen(set.keys[1].kid), 43);
    CHECK(strstr(set.jwks_json.data, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"") ==
          set.jwks_json.data);
    CHECK(strstr(set.jwks_json.data,
                 "\"kid\":\"current-2026\",\"alg\":\"ES256\",\"use\":\"sig\"},{") != NULL);
    key_set_free(&set);

    /* HS256 signs but is never published; its verify keys are. */
    set_config(&config, "HS256", "", "", in_dir("hs.key"), in_dir("es.pub.pem"));
    if (!load_ok(&set, &config)) {
        return;
    }
    CHECK_INT(set.count, 2);
    CHECK_INT(set.keys[0].alg, JWS_ALG_HS256);
    struct buffer jwk;
    buffer_init(&jwk);
    CHECK_INT(signing_key_append_jwk(&set.keys[1], &jwk), TK_OK);
    snprintf(expected, sizeof(expected), "{\"keys\":[%s]}", jwk.data);
    CHECK_STR(set.jwks_json.data, expected);
    buffer_free(&jwk);
    CHECK(strstr(set.jwks_json.data, set.keys[0].kid) == NULL);
    key_set_free(&set);

    set_config(&config, "HS256", in_dir("es.pem"), "", in_dir("hs.key"), "");
    if (!load_ok(&set, &config)) {
        return;
    }
    CHECK_INT(set.count, 1);
    CHECK_INT(set.keys[0].alg, JWS_ALG_HS256);
    CHECK_STR(set.jwks_json.data, "{\"keys\":[]}");
    key_set_free(&set);

    /* NULL strings count as empty. */
    set_config(&config, NULL, in_dir("rs.pem"), NULL, NULL, NULL);
    if (!load_ok(&set, &config)) {
        return;
    }
    CHECK_INT(set.count, 1);
    CHECK_INT(set.keys[0].alg, JWS_ALG_RS256);
    key_set_free(&set);

    /* Failures leave an empty set. */
    snprintf(verify_list, sizeof(verify_list), "%s %s", in_dir("es2.pem"), in_dir("es.pub.pem"));
    set_config(&config, "", in_dir("es.pem"), "", "", verify_list);
    {
        struct signing_key key;
        CHECK_INT(signing_key_load_pem(&key, in_dir("es.pem"), 0, NULL, true, error, sizeof(error)),
                  TK_OK);
        snprintf(expected, sizeof(expected), "%s: kid '%s' is already used by another key",
                 in_dir("es.pub.pem"), key.kid);
        signing_key_free(&key);
    }
    check_key_set_fails(&config, expected);

    set_config(&config, NULL, NULL, NULL, NULL, NULL);
    check_key_set_fails(&config, "no signing_key_file configured");

    /* A configured kid can collide with a verify key's kid too. */
    {
        struct signing_key key;
        CHECK_INT(
            signing_key_load_pem(&key, in_dir("es2.pem"), 0, NULL, true, error, sizeof(error)),
            TK_OK);
        set_config(&config, "", in_dir("es.pem"), key.kid, "", in_dir("es2.pem"));
        snprintf(expected, sizeof(expected), "%s: kid '%s' is already used by another key",
                 in_dir("es2.pem"), key.kid);
        check_key_set_fails(&config, expected);
        signing_key_free(&key);
    }

    set_config(&config, "", in_dir("es.pub.pem"), "", "", "");
    snprintf(expected, sizeof(expected), "%s: holds a public key; signing needs the private key",
             in_dir("es.pub.pem"));
    check_key_set_fails(&config, expected);

    set_config(&config, "RS256", in_dir("es.pem"), "", "", "");
    snprintf(expected, sizeof(expected), "%s: key is for ES256, but RS256 is configured",
             in_dir("es.pem"));
    check_key_set_fails(&config, expected);

    set_config(&config, "none", in_dir("es.pem"), "", "", "");
    check_key_set_fails(&config, "signing_alg 'none' is not ES256, RS256 or HS256");

    set_config(&config, "", "", "", in_dir("hs.key"), "");
    check_key_set_fails(&config, "no signing_key_file configured");

    set_config(&config, "HS256", in_dir("es.pem"), "", "", "");
    check_key_set_fails(&config, "signing_alg HS256 needs hmac_key_file");

    set_config(&config, "HS256", "", "", in_dir("hs.0644"), "");
    snprintf(expected, sizeof(expected),
             "%s: private key is readable by group or others (chmod 600 %s)", in_dir("hs.0644"),
             in_dir("hs.0644"));
    check_key_set_fails(&config, expected);

    /* A bad verify key fails the load after good ones were loaded. */
    snprintf(verify_list, sizeof(verify_list), "%s %s", in_dir("rs.pub.pem"),
             in_dir("es.0644.pem"));
    set_config(&config, "", in_dir("es.pem"), "", "", verify_list);
    snprintf(expected, sizeof(expected),
             "%s: private key is readable by group or others (chmod 600 %s)", in_dir("es.0644.pem"),
             in_dir("es.0644.pem"));
    check_key_set_fails(&config, expected);

    snprintf(verify_list, sizeof(verify_list), "%s %s", in_dir("rs.pub.pem"), in_dir("nope.pem"));
    set_config(&config, "", in_dir("es.pem"), "", "", verify_list);
    snprintf(expected, sizeof(expected), "%s: cannot read: No such file or directory",
             in_dir("nope.pem"));
    check_key_set_fails(&config, expected);

    /* At most KEY_SET_MAX keys in all: 7 distinct verify keys fit, 8 do not. */
    size_t used = 0;
    verify_list[0] = '\0';
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof(name), "many%d.pem", i);
        CHECK_INT(signing_key_generate(JWS_ALG_ES256, in_dir(name), error, sizeof(error)), TK_OK);
        used +=
            (size_t)snprintf(verify_list + used, sizeof(verify_list) - used, "%s ", in_dir(name));
        CHECK(used < sizeof(verify_list));
        set_config(&config, "", in_dir("es.pem"), "", "", verify_list);
        if (i < 7) {
            CHECK_INT(key_set_load(&set, &config, error, sizeof(error)), TK_OK);
            CHECK_INT(set.count, (size_t)i + 2);
            key_set_free(&set);
        } else {
            check_key_set_fails(&config, "verify_key_files: at most 7 keys");
        }
    }
}

static void test_jti(void)
{
    char first[JWT_JTI_SIZE];
    char second[JWT_JTI_SIZE];
    memset(first, 'x', sizeof(first));
    CHECK_INT(jwt_new_jti(first), TK_OK);
    CHECK_INT(jwt_new_jti(second), TK_OK);
    CHECK_INT(strlen(first), 32);
    CHECK_INT(strlen(second), 32);
    CHECK_INT(strspn(first, "0123456789abcdef"), 32);
    CHECK_INT(strspn(second, "0123456789abcdef"), 32);
    CHECK(strcmp(first, second) != 0);

    /* jtis come from a pool of random bytes: a forked child (a worker)
     * must not mint the jtis its parent would mint next. */
    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    pid_t child = fork();
    if (child == 0) {
        char mine[JWT_JTI_SIZE];
        ssize_t written = -1;
        if (jwt_new_jti(mine) == TK_OK) {
            written = write(pipe_fds[1], mine, sizeof(mine));
        }
        _exit(written == (ssize_t)sizeof(mine) ? 0 : 1);
    }
    char parent_next[JWT_JTI_SIZE], child_first[JWT_JTI_SIZE];
    CHECK_INT(jwt_new_jti(parent_next), TK_OK);
    CHECK_INT(read(pipe_fds[0], child_first, sizeof(child_first)), sizeof(child_first));
    int status = -1;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_INT(strlen(child_first), 32);
    CHECK(strcmp(parent_next, child_first) != 0);
    close(pipe_fds[0]);
    close(pipe_fds[1]);

    /* 1000 jtis (several refills of the pool) are all different */
    static char many[1000][JWT_JTI_SIZE];
    for (int i = 0; i < 1000; i++) {
        CHECK_INT(jwt_new_jti(many[i]), TK_OK);
    }
    int duplicates = 0;
    for (int i = 0; i < 1000; i++) {
        for (int j = i + 1; j < 1000; j++) {
            duplicates += strcmp(many[i], many[j]) == 0;
        }
    }
    CHECK_INT(duplicates, 0);
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
    snprintf(test_dir, sizeof(test_dir), "/tmp/test_jwt_issuer.XXXXXX");
    if (mkdtemp(test_dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    RUN(setup_keys);
    RUN(test_alg_names);
    RUN(test_generate);
    RUN(test_load_pem);
    RUN(test_load_pem_errors);
    RUN(test_thumbprint_rfc7638);
    RUN(test_thumbprint_ec);
    RUN(test_load_hmac);
    RUN(test_tokens_es256);
    RUN(test_tokens_rs256);
    RUN(test_tokens_hs256);
    RUN(test_ec_coordinate_padding);
    RUN(test_es256_signature_padding);
    RUN(test_key_set);
    RUN(test_jti);
    remove_test_dir();
    return unit_test_finish();
}
