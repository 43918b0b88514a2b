/*
 * hmac_sha256.c - a reusable keyed HMAC-SHA256 context.
 *
 * OpenSSL 3's EVP_MAC_init with a NULL key re-initialises the context with
 * the key already set, so after hmac_sha256_new each computation is
 * init + update + final on the same EVP_MAC_CTX: no fetch of the algorithm
 * by name (which takes locks) and no allocation per message, unlike the
 * one-shot HMAC()/EVP_Q_mac(). On failure the OpenSSL error queue is
 * cleared so it never leaks into an unrelated later call.
 */
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include "tokend/hmac_sha256.h"
#include "tokend/status.h"

struct hmac_sha256 {
    EVP_MAC_CTX *ctx;
};

struct hmac_sha256 *hmac_sha256_new(const uint8_t *key, size_t key_len)
{
    struct hmac_sha256 *hmac = calloc(1, sizeof(*hmac));
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (hmac == NULL || mac == NULL) {
        goto fail;
    }
    hmac->ctx = EVP_MAC_CTX_new(mac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (hmac->ctx == NULL || EVP_MAC_init(hmac->ctx, key, key_len, params) != 1) {
        goto fail;
    }
    EVP_MAC_free(mac); /* the context keeps its own reference */
    return hmac;
fail:
    EVP_MAC_free(mac);
    hmac_sha256_free(hmac);
    ERR_clear_error();
    return NULL;
}

int hmac_sha256_compute(struct hmac_sha256 *hmac, const void *data, size_t len,
                        uint8_t mac[HMAC_SHA256_SIZE])
{
    size_t mac_len = 0;
    if (EVP_MAC_init(hmac->ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(hmac->ctx, data, len) != 1 ||
        EVP_MAC_final(hmac->ctx, mac, &mac_len, HMAC_SHA256_SIZE) != 1 ||
        mac_len != HMAC_SHA256_SIZE) {
        ERR_clear_error();
        return TK_ERROR;
    }
    return TK_OK;
}

void hmac_sha256_free(struct hmac_sha256 *hmac)
{
    if (hmac == NULL) {
        return;
    }
    EVP_MAC_CTX_free(hmac->ctx);
    free(hmac);
}
