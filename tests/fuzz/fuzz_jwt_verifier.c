/*
 * fuzz_jwt_verifier.c - libFuzzer harness for jwt_verify.
 *
 * Keys: at start-up an ES256 key (kid "es-fuzz") and an HS256 key (kid
 * "hs-fuzz") are generated into a mkdtemp directory, loaded into a key set
 * and the directory removed. Fixed kids let corpus tokens, made with other
 * keys under the same kids, get past the kid lookup to the signature check.
 *
 * Each input is used two ways:
 *  1. as the token itself (an exact-size heap copy, so ASan sees any read
 *     past token_len). A random input cannot carry a valid signature under
 *     freshly generated keys, so the result must never be JWT_VERIFY_OK;
 *     it must be one of the enum's values, never INTERNAL_ERROR (no
 *     OpenSSL failure is expected), and `out` must be left zeroed.
 *  2. as the claims JSON of a token with a correct header and a correct
 *     HS256 signature, so the claims parser, which a forged token can never
 *     reach, is fuzzed too. Here OK is possible; when it is returned every
 *     claim must be NUL-terminated inside its field and non-empty where
 *     required, iss must be the issuer, and the times must satisfy the
 *     rules at the fixed `now`.
 * Any violation aborts. libFuzzer's leak check covers the cJSON trees.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokend/base64.h"
#include "tokend/jwt_verifier.h"
#include "tokend/key_set.h"
#include "tokend/signing_key.h"
#include "tokend/status.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define ISSUER     "https://auth.example.com"
#define NOW        INT64_C(1750000000)
#define LEEWAY     30
#define HS_HEADER  "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"hs-fuzz\"}"
#define CLAIMS_MAX (JWT_VERIFY_MAX_TOKEN / 4 * 3) /* longer claims cannot fit a token */

static struct key_set keys;

static void remove_dir(const char *dir)
{
    DIR *handle = opendir(dir);
    if (handle == NULL) {
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(handle)) != NULL) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            char path[256];
            snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
            unlink(path);
        }
    }
    closedir(handle);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/fuzz_jwt_verifier.XXXXXX";
    char es_path[64];
    char hs_path[64];
    char error[512] = "";
    REQUIRE(mkdtemp(dir) != NULL);
    snprintf(es_path, sizeof(es_path), "%s/es.pem", dir);
    snprintf(hs_path, sizeof(hs_path), "%s/hs.key", dir);
    REQUIRE(signing_key_generate(JWS_ALG_ES256, es_path, error, sizeof(error)) == TK_OK);
    REQUIRE(signing_key_generate(JWS_ALG_HS256, hs_path, error, sizeof(error)) == TK_OK);
    /* Built by hand: key_set_load takes an HS256 key only as the signing
     * key and never lets a verify key's kid be configured. */
    memset(&keys, 0, sizeof(keys));
    REQUIRE(signing_key_load_pem(&keys.keys[0], es_path, JWS_ALG_ES256, "es-fuzz", true, error,
                                 sizeof(error)) == TK_OK);
    REQUIRE(signing_key_load_hmac(&keys.keys[1], hs_path, "hs-fuzz", error, sizeof(error)) ==
            TK_OK);
    keys.count = 2;
    remove_dir(dir);
    return 0;
}

static bool is_zeroed(const struct jwt_verified_claims *claims)
{
    static const struct jwt_verified_claims zero;
    return memcmp(claims, &zero, sizeof(zero)) == 0;
}

static void require_string(const char *field, size_t size, bool non_empty)
{
    size_t len = strnlen(field, size);
    REQUIRE(len < size);
    REQUIRE(!non_empty || len > 0);
}

static void require_valid_result(enum jwt_verify_result result,
                                 const struct jwt_verified_claims *out)
{
    REQUIRE(result >= JWT_VERIFY_OK && result < JWT_VERIFY_INTERNAL_ERROR);
    REQUIRE(strcmp(jwt_verify_result_name(result), "unknown") != 0);
    if (result != JWT_VERIFY_OK) {
        REQUIRE(is_zeroed(out));
    }
}

/* 1: the input as a token. */
static void fuzz_token(const uint8_t *data, size_t size)
{
    char *token = malloc(size == 0 ? 1 : size);
    REQUIRE(token != NULL);
    memcpy(token, data, size);
    struct jwt_verified_claims out;
    memset(&out, 0xa5, sizeof(out));
    enum jwt_verify_result result = jwt_verify(&keys, ISSUER, token, size, NOW, LEEWAY, &out);
    require_valid_result(result, &out);
    REQUIRE(result != JWT_VERIFY_OK);
    free(token);
}

/* 2: the input as claims JSON in a correctly signed HS256 token. */
static void fuzz_claims(const uint8_t *data, size_t size)
{
    if (size > CLAIMS_MAX) {
        return;
    }
    size_t header_size = BASE64URL_ENCODED_SIZE(sizeof(HS_HEADER) - 1);
    size_t claims_size = BASE64URL_ENCODED_SIZE(size);
    size_t token_size = header_size + claims_size + BASE64URL_ENCODED_SIZE(SIGNING_MAX_SIG) + 2;
    char *token = malloc(token_size);
    REQUIRE(token != NULL);
    int header_len =
        base64url_encode((const uint8_t *)HS_HEADER, sizeof(HS_HEADER) - 1, token, token_size);
    REQUIRE(header_len > 0);
    size_t len = (size_t)header_len;
    token[len++] = '.';
    int claims_len = base64url_encode(data, size, token + len, token_size - len);
    REQUIRE(claims_len >= 0);
    len += (size_t)claims_len;
    uint8_t sig[SIGNING_MAX_SIG];
    int sig_len = signing_key_sign(&keys.keys[1], (const uint8_t *)token, len, sig);
    REQUIRE(sig_len == 32);
    token[len++] = '.';
    int encoded_sig = base64url_encode(sig, (size_t)sig_len, token + len, token_size - len);
    REQUIRE(encoded_sig > 0);
    len += (size_t)encoded_sig;

    struct jwt_verified_claims out;
    memset(&out, 0xa5, sizeof(out));
    enum jwt_verify_result result = jwt_verify(&keys, ISSUER, token, len, NOW, LEEWAY, &out);
    require_valid_result(result, &out);
    /* The signature is right: the header, kid, alg and signature checks
     * cannot be what failed, unless the token is over the length cap. */
    REQUIRE(result != JWT_VERIFY_UNKNOWN_KEY && result != JWT_VERIFY_BAD_ALG &&
            result != JWT_VERIFY_BAD_SIGNATURE);
    if (result == JWT_VERIFY_OK) {
        require_string(out.jti, sizeof(out.jti), true);
        require_string(out.client_id, sizeof(out.client_id), true);
        require_string(out.sub, sizeof(out.sub), true);
        require_string(out.iss, sizeof(out.iss), true);
        require_string(out.aud, sizeof(out.aud), true);
        require_string(out.scope, sizeof(out.scope), false);
        REQUIRE(strcmp(out.iss, ISSUER) == 0);
        REQUIRE(out.aud_count >= 1);
        REQUIRE(out.exp + LEEWAY > NOW && out.iat - LEEWAY <= NOW);
        REQUIRE(strcmp(out.kid, "hs-fuzz") == 0 && out.alg == JWS_ALG_HS256);
        /* Every string claim came from the input, so the input holds it. */
        REQUIRE(memmem(data, size, "client_id", 9) != NULL);
    }
    free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_token(data, size);
    fuzz_claims(data, size);
    return 0;
}
