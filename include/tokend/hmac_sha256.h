/*
 * hmac_sha256.h - HMAC-SHA256 under one key, computed many times: the key
 * is set once and the context re-initialised per message, so a call costs
 * the two hashes and nothing else (no algorithm lookup, no allocation).
 * Used for HS256 signatures and for the client cache's digests of verified
 * secrets. Not thread-safe: one per process (or per owner).
 */
#ifndef TOKEND_HMAC_SHA256_H
#define TOKEND_HMAC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HMAC_SHA256_SIZE 32

struct hmac_sha256;

/* A context keyed with `key` (copied by OpenSSL). NULL when OpenSSL fails
 * or out of memory. */
struct hmac_sha256 *hmac_sha256_new(const uint8_t *key, size_t key_len);

/* HMAC-SHA256(key, data) into `mac`. Returns TK_OK or TK_ERROR (OpenSSL
 * failure; `mac` undefined). */
int hmac_sha256_compute(struct hmac_sha256 *hmac, const void *data, size_t len,
                        uint8_t mac[HMAC_SHA256_SIZE]);

/* Frees the context (OpenSSL wipes the key). NULL allowed. */
void hmac_sha256_free(struct hmac_sha256 *hmac);

#endif
