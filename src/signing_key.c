/*
 * signing_key.c - one JWS signing/verification key, loaded once at start.
 *
 * What it is for: turning a key file into a ready EVP_PKEY (ES256, RS256)
 * or raw HMAC bytes (HS256), naming it with a kid, signing JWS input with
 * it, checking a signature with it (signing_key_verify, for introspection),
 * and rendering its public JWK for the JWKS document. Nothing here runs a
 * PEM parser or a key fetch per token: signing_key_sign() only runs the
 * signature over the preloaded key.
 *
 * Invariants of a loaded `struct signing_key`:
 *   - ES256 <=> pkey is an EC key on P-256 (prime256v1);
 *     RS256 <=> pkey is an RSA key of 2048..4096 bits (4096 so the
 *     signature always fits SIGNING_MAX_SIG); HS256 <=> pkey is NULL and
 *     hmac holds SIGNING_HMAC_MIN..SIGNING_HMAC_MAX bytes.
 *   - kid is non-empty, at most SIGNING_KID_MAX printable ASCII characters.
 *     By default it is the RFC 7638 thumbprint (SHA-256 of the canonical
 *     public JWK, base64url), so every host loading the same file agrees on
 *     it; for HS256 it is the first 16 characters of
 *     base64url(HMAC-SHA256(key, "tokend-kid")), which reveals nothing.
 *   - has_private is true only when the file held a private key.
 *
 * Ownership: the struct owns pkey and the HMAC bytes; signing_key_free()
 * releases the key and wipes the bytes. Key files are read with
 * file_read_all (regular files only, capped, the mode taken from fstat on
 * the descriptor read), and their contents are wiped by file_read_free.
 *
 * Failure: the loaders either fill the whole struct and return TK_OK, or
 * leave it zeroed and return TK_INVALID with a message that names the file.
 * A private key (or HMAC key) file that group or others may read is refused
 * outright rather than warned about: a leaked signing key mints tokens.
 * Encrypted PEM files are refused without prompting for a passphrase.
 * signing_key_generate() creates its file with O_EXCL and mode 0600, so it
 * never replaces a key and the key is never readable by others, even
 * briefly; a partly written file is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "tokend/base64.h"
#include "tokend/buffer.h"
#include "tokend/file_read.h"
#include "tokend/secret_file.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"

#define KEY_FILE_MAX      (64 * 1024) /* far above any PEM key we accept */
#define EC_COORD_SIZE     32          /* P-256 */
#define ES256_SIG_SIZE    (2 * EC_COORD_SIZE)
#define ES256_DER_MAX     80 /* DER ECDSA-Sig-Value for P-256 is at most 72 */
#define RSA_MIN_BITS      2048
#define RSA_MAX_BITS      4096 /* SIGNING_MAX_SIG bytes of signature */
#define RSA_MAX_BYTES     (RSA_MAX_BITS / 8)
#define HMAC_FILE_MAX     (SIGNING_HMAC_MAX + 2) /* the longest key plus "\r\n" */
#define HMAC_KID_LENGTH   16
#define HMAC_KID_INPUT    "tokend-kid"
#define GENERATED_HS_SIZE 32
#define RSA_GENERATE_BITS 2048 /* the common RS256 size; see signing_key_generate */

/* The public members of a JWK, raw (not yet base64url): x and y for EC,
 * n and e for RSA. Big enough for the largest accepted RSA modulus. */
struct public_parts {
    uint8_t first[RSA_MAX_BYTES]; /* x or n */
    size_t first_len;
    uint8_t second[RSA_MAX_BYTES]; /* y or e */
    size_t second_len;
};

int jws_alg_parse(const char *name, enum jws_alg *out)
{
    if (name == NULL) {
        return TK_INVALID;
    }
    if (strcmp(name, "ES256") == 0) {
        *out = JWS_ALG_ES256;
    } else if (strcmp(name, "RS256") == 0) {
        *out = JWS_ALG_RS256;
    } else if (strcmp(name, "HS256") == 0) {
        *out = JWS_ALG_HS256;
    } else {
        return TK_INVALID;
    }
    return TK_OK;
}

const char *jws_alg_name(enum jws_alg alg)
{
    switch (alg) {
    case JWS_ALG_ES256:
        return "ES256";
    case JWS_ALG_RS256:
        return "RS256";
    case JWS_ALG_HS256:
        return "HS256";
    }
    return "unknown";
}

/* Sets up what signing needs once the private key is loaded. Returns
 * TK_OK or TK_ERROR (OpenSSL failure or out of memory). */
static int prepare_signing(struct signing_key *key)
{
    if (key->alg == JWS_ALG_HS256) {
        key->hmac_ctx = hmac_sha256_new(key->hmac, key->hmac_len);
        return key->hmac_ctx != NULL ? TK_OK : TK_ERROR;
    }
    key->sign_template = EVP_MD_CTX_new();
    key->sign_work = EVP_MD_CTX_new();
    /* RSA defaults to PKCS#1 v1.5 padding, which is what RS256 means. */
    if (key->sign_template == NULL || key->sign_work == NULL ||
        EVP_DigestSignInit_ex(key->sign_template, NULL, "SHA256", NULL, NULL, key->pkey, NULL) !=
            1) {
        ERR_clear_error();
        return TK_ERROR;
    }
    return TK_OK;
}

void signing_key_free(struct signing_key *key)
{
    hmac_sha256_free(key->hmac_ctx);
    EVP_MD_CTX_free(key->sign_template);
    EVP_MD_CTX_free(key->sign_work);
    EVP_PKEY_free(key->pkey);
    OPENSSL_cleanse(key->hmac, sizeof(key->hmac));
    memset(key, 0, sizeof(*key));
}

/* Refuses OpenSSL's interactive passphrase prompt: an encrypted key file
 * then simply fails to load. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

static bool secret_file_mode_ok(const char *path, mode_t mode, char *error, size_t error_size)
{
    if ((mode & 077) != 0) {
        snprintf(error, error_size, "%s: private key is readable by group or others (chmod 600 %s)",
                 path, path);
        return false;
    }
    return true;
}

/* Sets a configured kid: 1..SIGNING_KID_MAX printable ASCII characters
 * other than '"' and '\\', so it is the same string in every JSON it
 * appears in. */
static int set_configured_kid(struct signing_key *key, const char *path, const char *kid,
                              char *error, size_t error_size)
{
    size_t len = strlen(kid);
    if (len > SIGNING_KID_MAX) {
        snprintf(error, error_size, "%s: kid is longer than %d characters", path, SIGNING_KID_MAX);
        return TK_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') {
            snprintf(error, error_size,
                     "%s: kid may only hold printable ASCII without spaces, quotes or "
                     "backslashes",
                     path);
            return TK_INVALID;
        }
    }
    memcpy(key->kid, kid, len + 1);
    return TK_OK;
}

/* Big-endian bytes of a BIGNUM parameter. With `pad_to` non-zero the value
 * is left-padded to exactly that size; otherwise it has no leading zero
 * bytes (as JWK "n" and "e" require). */
static int get_bn_bytes(const EVP_PKEY *pkey, const char *param, size_t pad_to, uint8_t *out,
                        size_t out_size, size_t *out_len)
{
    int rc = TK_ERROR;
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
        goto done;
    }
    size_t natural = (size_t)BN_num_bytes(bn);
    size_t len = pad_to != 0 ? pad_to : natural;
    if (natural > len || len > out_size || len == 0) {
        goto done;
    }
    if (BN_bn2binpad(bn, out, (int)len) != (int)len) {
        goto done;
    }
    *out_len = len;
    rc = TK_OK;
done:
    BN_free(bn);
    return rc;
}

static int get_public_parts(const struct signing_key *key, struct public_parts *parts)
{
    switch (key->alg) {
    case JWS_ALG_ES256:
        if (get_bn_bytes(key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, EC_COORD_SIZE, parts->first,
                         sizeof(parts->first), &parts->first_len) != TK_OK ||
            get_bn_bytes(key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, EC_COORD_SIZE, parts->second,
                         sizeof(parts->second), &parts->second_len) != TK_OK) {
            return TK_ERROR;
        }
        return TK_OK;
    case JWS_ALG_RS256:
        if (get_bn_bytes(key->pkey, OSSL_PKEY_PARAM_RSA_N, 0, parts->first, sizeof(parts->first),
                         &parts->first_len) != TK_OK ||
            get_bn_bytes(key->pkey, OSSL_PKEY_PARAM_RSA_E, 0, parts->second, sizeof(parts->second),
                         &parts->second_len) != TK_OK) {
            return TK_ERROR;
        }
        return TK_OK;
    case JWS_ALG_HS256:
        break;
    }
    return TK_ERROR;
}

static void append_member(struct buffer *out, const char *name, const uint8_t *value, size_t len)
{
    buffer_append_str(out, name);
    buffer_append(out, "\"", 1);
    buffer_append_base64url(out, value, len);
    buffer_append(out, "\"", 1);
}

/* RFC 7638: SHA-256 over the required members in lexicographic order,
 * without whitespace, then base64url. */
static int compute_thumbprint(struct signing_key *key)
{
    int rc = TK_ERROR;
    struct public_parts *parts = OPENSSL_malloc(sizeof(*parts));
    struct buffer canonical;
    buffer_init(&canonical);
    if (parts == NULL || get_public_parts(key, parts) != TK_OK) {
        goto done;
    }
    if (key->alg == JWS_ALG_ES256) {
        buffer_append_str(&canonical, "{\"crv\":\"P-256\",\"kty\":\"EC\"");
        append_member(&canonical, ",\"x\":", parts->first, parts->first_len);
        append_member(&canonical, ",\"y\":", parts->second, parts->second_len);
    } else {
        buffer_append_str(&canonical, "{");
        append_member(&canonical, "\"e\":", parts->second, parts->second_len);
        buffer_append_str(&canonical, ",\"kty\":\"RSA\"");
        append_member(&canonical, ",\"n\":", parts->first, parts->first_len);
    }
    buffer_append_str(&canonical, "}");
    if (buffer_failed(&canonical)) {
        goto done;
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(canonical.data, canonical.len, digest, &digest_len, EVP_sha256(), NULL) != 1) {
        goto done;
    }
    if (base64url_encode(digest, digest_len, key->kid, sizeof(key->kid)) < 0) {
        goto done;
    }
    rc = TK_OK;
done:
    buffer_free(&canonical);
    OPENSSL_free(parts);
    return rc;
}

/* Classifies a loaded EVP key: P-256 EC -> ES256, RSA 2048..4096 -> RS256. */
static int classify_pkey(EVP_PKEY *pkey, const char *path, enum jws_alg *alg, char *error,
                         size_t error_size)
{
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = "";
        size_t group_len = 0;
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &group_len) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            snprintf(error, error_size, "%s: EC key is on curve %s; ES256 needs P-256", path,
                     group[0] != '\0' ? group : "(unnamed)");
            return TK_INVALID;
        }
        *alg = JWS_ALG_ES256;
        return TK_OK;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(pkey);
        if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
            snprintf(error, error_size, "%s: RSA key has %d bits; RS256 needs %d to %d", path, bits,
                     RSA_MIN_BITS, RSA_MAX_BITS);
            return TK_INVALID;
        }
        *alg = JWS_ALG_RS256;
        return TK_OK;
    }
    snprintf(error, error_size, "%s: unsupported key type %s (need a P-256 EC or an RSA key)", path,
             EVP_PKEY_get0_type_name(pkey) != NULL ? EVP_PKEY_get0_type_name(pkey) : "?");
    return TK_INVALID;
}

int signing_key_load_pem(struct signing_key *key, const char *path, enum jws_alg expected_alg,
                         const char *kid, bool require_private, char *error, size_t error_size)
{
    int rc = TK_INVALID;
    struct file_contents file;
    BIO *bio = NULL;

    memset(key, 0, sizeof(*key));
    /* Out of memory is TK_INVALID too: this loader's contract knows no other. */
    if (file_read_all(path, KEY_FILE_MAX, &file, error, error_size) != TK_OK) {
        goto done;
    }
    bio = BIO_new_mem_buf(file.data, (int)file.len);
    if (bio == NULL) {
        snprintf(error, error_size, "%s: out of memory", path);
        goto done;
    }
    key->pkey = PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, NULL);
    if (key->pkey != NULL) {
        key->has_private = true;
    } else if (BIO_reset(bio) == 1) {
        key->pkey = PEM_read_bio_PUBKEY(bio, NULL, refuse_passphrase, NULL);
    }
    ERR_clear_error();
    if (key->pkey == NULL) {
        snprintf(error, error_size,
                 "%s: no usable PEM key found (unencrypted PKCS#8, SEC1, PKCS#1 or SPKI)", path);
        goto done;
    }
    if (key->has_private && !secret_file_mode_ok(path, file.mode, error, error_size)) {
        goto done;
    }
    if (!key->has_private && require_private) {
        snprintf(error, error_size, "%s: holds a public key; signing needs the private key", path);
        goto done;
    }
    if (classify_pkey(key->pkey, path, &key->alg, error, error_size) != TK_OK) {
        goto done;
    }
    if (expected_alg != 0 && key->alg != expected_alg) {
        snprintf(error, error_size, "%s: key is for %s, but %s is configured", path,
                 jws_alg_name(key->alg), jws_alg_name(expected_alg));
        goto done;
    }
    if (key->has_private && prepare_signing(key) != TK_OK) {
        snprintf(error, error_size, "%s: cannot set up signing with this key", path);
        goto done;
    }
    if (kid != NULL && kid[0] != '\0') {
        if (set_configured_kid(key, path, kid, error, error_size) != TK_OK) {
            goto done;
        }
    } else if (compute_thumbprint(key) != TK_OK) {
        snprintf(error, error_size, "%s: cannot compute the key thumbprint", path);
        goto done;
    }
    rc = TK_OK;
done:
    BIO_free(bio);
    file_read_free(&file);
    ERR_clear_error();
    if (rc != TK_OK) {
        signing_key_free(key);
    }
    return rc;
}

int signing_key_load_hmac(struct signing_key *key, const char *path, const char *kid, char *error,
                          size_t error_size)
{
    int rc = TK_INVALID;
    struct file_contents file;

    memset(key, 0, sizeof(*key));
    if (file_read_all(path, HMAC_FILE_MAX, &file, error, error_size) != TK_OK) {
        goto done;
    }
    if (!secret_file_mode_ok(path, file.mode, error, error_size)) {
        goto done;
    }
    file_read_strip_line_ending(&file);
    if (file.len < SIGNING_HMAC_MIN || file.len > SIGNING_HMAC_MAX) {
        snprintf(error, error_size, "%s: HMAC key is %zu bytes; HS256 needs %d to %d", path,
                 file.len, SIGNING_HMAC_MIN, SIGNING_HMAC_MAX);
        goto done;
    }
    key->alg = JWS_ALG_HS256;
    key->has_private = true;
    memcpy(key->hmac, file.data, file.len);
    key->hmac_len = file.len;
    if (prepare_signing(key) != TK_OK) {
        snprintf(error, error_size, "%s: cannot set up HMAC-SHA256", path);
        goto done;
    }
    if (kid != NULL && kid[0] != '\0') {
        if (set_configured_kid(key, path, kid, error, error_size) != TK_OK) {
            goto done;
        }
    } else {
        uint8_t mac[HMAC_SHA256_SIZE];
        char encoded[BASE64URL_ENCODED_SIZE(HMAC_SHA256_SIZE)];
        if (hmac_sha256_compute(key->hmac_ctx, HMAC_KID_INPUT, strlen(HMAC_KID_INPUT), mac) !=
                TK_OK ||
            base64url_encode(mac, sizeof(mac), encoded, sizeof(encoded)) < HMAC_KID_LENGTH) {
            snprintf(error, error_size, "%s: cannot derive the key id", path);
            goto done;
        }
        memcpy(key->kid, encoded, HMAC_KID_LENGTH);
        key->kid[HMAC_KID_LENGTH] = '\0';
    }
    rc = TK_OK;
done:
    file_read_free(&file);
    ERR_clear_error();
    if (rc != TK_OK) {
        signing_key_free(key);
    }
    return rc;
}

/* DER ECDSA-Sig-Value -> the fixed-size R||S form JWS uses (RFC 7518 3.4). */
static int ecdsa_der_to_raw(const uint8_t *der, size_t der_len, uint8_t raw[ES256_SIG_SIZE])
{
    int rc = TK_ERROR;
    const unsigned char *cursor = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &cursor, (long)der_len);
    if (sig == NULL) {
        goto done;
    }
    const BIGNUM *r = NULL;
    const BIGNUM *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, raw, EC_COORD_SIZE) != EC_COORD_SIZE ||
        BN_bn2binpad(s, raw + EC_COORD_SIZE, EC_COORD_SIZE) != EC_COORD_SIZE) {
        goto done;
    }
    rc = ES256_SIG_SIZE;
done:
    ECDSA_SIG_free(sig);
    return rc;
}

int signing_key_sign(const struct signing_key *key, const uint8_t *data, size_t len,
                     uint8_t sig[SIGNING_MAX_SIG])
{
    if (!key->has_private) {
        return TK_ERROR;
    }
    if (key->alg == JWS_ALG_HS256) {
        return hmac_sha256_compute(key->hmac_ctx, data, len, sig) == TK_OK ? HMAC_SHA256_SIZE
                                                                           : TK_ERROR;
    }
    int rc = TK_ERROR;
    uint8_t der[ES256_DER_MAX];
    uint8_t *target = key->alg == JWS_ALG_ES256 ? der : sig;
    size_t sig_len = key->alg == JWS_ALG_ES256 ? sizeof(der) : SIGNING_MAX_SIG;
    /* A copy of the prepared context: the template itself is never used
     * up, so the key stays reusable and free of per-signature state. */
    if (EVP_MD_CTX_copy_ex(key->sign_work, key->sign_template) != 1 ||
        EVP_DigestSign(key->sign_work, target, &sig_len, data, len) != 1) {
        goto done;
    }
    if (key->alg == JWS_ALG_ES256) {
        rc = ecdsa_der_to_raw(der, sig_len, sig);
    } else if (sig_len <= SIGNING_MAX_SIG) {
        rc = (int)sig_len;
    }
done:
    if (rc < 0) {
        ERR_clear_error();
    }
    return rc;
}

/* Raw R||S (RFC 7518 3.4) -> DER ECDSA-Sig-Value, as EVP_DigestVerify
 * wants. Returns the DER length or TK_ERROR. */
static int ecdsa_raw_to_der(const uint8_t raw[ES256_SIG_SIZE], uint8_t der[ES256_DER_MAX])
{
    int rc = TK_ERROR;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, EC_COORD_SIZE, NULL);
    BIGNUM *s = BN_bin2bn(raw + EC_COORD_SIZE, EC_COORD_SIZE, NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        goto done;
    }
    /* sig owns r and s now. */
    int der_len = i2d_ECDSA_SIG(sig, NULL);
    if (der_len <= 0 || der_len > ES256_DER_MAX) {
        goto done;
    }
    unsigned char *cursor = der;
    rc = i2d_ECDSA_SIG(sig, &cursor) == der_len ? der_len : TK_ERROR;
done:
    ECDSA_SIG_free(sig);
    return rc;
}

/* A verification context is made per call rather than prepared at load like
 * the signing one: verification serves introspection, which a cache in
 * front absorbs, and a public key is then free of per-call state. */
int signing_key_verify(const struct signing_key *key, const uint8_t *data, size_t len,
                       const uint8_t *sig, size_t sig_len)
{
    if (key->alg == JWS_ALG_HS256) {
        if (sig_len != HMAC_SHA256_SIZE) {
            return TK_DECLINED;
        }
        uint8_t mac[HMAC_SHA256_SIZE];
        if (key->hmac_ctx == NULL || hmac_sha256_compute(key->hmac_ctx, data, len, mac) != TK_OK) {
            return TK_ERROR;
        }
        int rc = CRYPTO_memcmp(mac, sig, HMAC_SHA256_SIZE) == 0 ? TK_OK : TK_DECLINED;
        OPENSSL_cleanse(mac, sizeof(mac));
        return rc;
    }
    if (key->pkey == NULL) {
        return TK_ERROR;
    }
    uint8_t der[ES256_DER_MAX];
    const uint8_t *expected = sig;
    size_t expected_len = sig_len;
    if (key->alg == JWS_ALG_ES256) {
        if (sig_len != ES256_SIG_SIZE) {
            return TK_DECLINED;
        }
        int der_len = ecdsa_raw_to_der(sig, der);
        if (der_len < 0) {
            ERR_clear_error();
            return TK_ERROR;
        }
        expected = der;
        expected_len = (size_t)der_len;
    } else if (key->alg != JWS_ALG_RS256 || EVP_PKEY_get_size(key->pkey) <= 0 ||
               sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        return TK_DECLINED;
    }
    int rc = TK_ERROR;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* RSA defaults to PKCS#1 v1.5 padding, which is what RS256 means. */
    if (ctx == NULL ||
        EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, key->pkey, NULL) != 1) {
        goto done;
    }
    /* 1 verifies; 0 or a negative value (a signature OpenSSL cannot even
     * parse) does not. */
    rc = EVP_DigestVerify(ctx, expected, expected_len, data, len) == 1 ? TK_OK : TK_DECLINED;
done:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int signing_key_append_jwk(const struct signing_key *key, struct buffer *out)
{
    if (key->alg == JWS_ALG_HS256) {
        return TK_DECLINED;
    }
    int rc = TK_ERROR;
    struct public_parts *parts = OPENSSL_malloc(sizeof(*parts));
    if (parts == NULL || get_public_parts(key, parts) != TK_OK) {
        goto done;
    }
    if (key->alg == JWS_ALG_ES256) {
        buffer_append_str(out, "{\"kty\":\"EC\",\"crv\":\"P-256\"");
        append_member(out, ",\"x\":", parts->first, parts->first_len);
        append_member(out, ",\"y\":", parts->second, parts->second_len);
    } else {
        buffer_append_str(out, "{\"kty\":\"RSA\"");
        append_member(out, ",\"n\":", parts->first, parts->first_len);
        append_member(out, ",\"e\":", parts->second, parts->second_len);
    }
    buffer_append_str(out, ",\"kid\":");
    buffer_append_json_string(out, key->kid);
    buffer_append_str(out, ",\"alg\":\"");
    buffer_append_str(out, jws_alg_name(key->alg));
    buffer_append_str(out, "\",\"use\":\"sig\"}");
    rc = buffer_failed(out) ? TK_ERROR : TK_OK;
done:
    OPENSSL_free(parts);
    ERR_clear_error();
    return rc;
}

static int generate_hmac_file(const char *path, char *error, size_t error_size)
{
    int rc = TK_ERROR;
    uint8_t raw[GENERATED_HS_SIZE];
    char text[BASE64URL_ENCODED_SIZE(GENERATED_HS_SIZE) + 1];
    int text_len = -1;
    if (RAND_bytes(raw, sizeof(raw)) == 1) {
        text_len = base64url_encode(raw, sizeof(raw), text, sizeof(text) - 1);
    }
    if (text_len < 0) {
        snprintf(error, error_size, "%s: cannot generate random key bytes", path);
        goto done;
    }
    text[text_len] = '\n';
    rc = secret_file_create(path, text, (size_t)text_len + 1, error, error_size);
done:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(text, sizeof(text));
    ERR_clear_error();
    return rc;
}

/* RS256 keys are generated with 2048 bits: the size RS256 deployments
 * commonly use and every verifier accepts; a 3072-bit key signs about three
 * times slower. Operators wanting more can bring their own key (up to 4096). */
int signing_key_generate(enum jws_alg alg, const char *path, char *error, size_t error_size)
{
    int rc = TK_ERROR;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;

    if (alg == JWS_ALG_HS256) {
        return generate_hmac_file(path, error, error_size);
    }
    if (alg == JWS_ALG_ES256) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    } else if (alg == JWS_ALG_RS256) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_GENERATE_BITS);
    } else {
        snprintf(error, error_size, "%s: unknown algorithm", path);
        goto done;
    }
    if (pkey == NULL) {
        snprintf(error, error_size, "%s: cannot generate a %s key", path, jws_alg_name(alg));
        goto done;
    }
    /* A memory BIO wipes its storage when freed (BUF_MEM_free). */
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        snprintf(error, error_size, "%s: cannot encode the key as PKCS#8 PEM", path);
        goto done;
    }
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    if (pem_len <= 0) {
        snprintf(error, error_size, "%s: cannot encode the key as PKCS#8 PEM", path);
        goto done;
    }
    rc = secret_file_create(path, pem, (size_t)pem_len, error, error_size);
done:
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}
