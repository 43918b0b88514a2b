/*
 * introspection_cache.c - a worker's process-local cache of token
 * introspection answers, keyed by the SHA-256 digest of the token, on the
 * TTL + LRU core of lru_table.c.
 *
 * The table hashes the 32-byte key with SipHash under its own random key:
 * the digest alone would not do as a bucket index, since anyone can pick
 * tokens whose SHA-256 lands in one bucket, and nobody can do that against
 * an unknown SipHash key. Keys are compared with CRYPTO_memcmp (they are
 * digests of bearer tokens).
 *
 * Invariants:
 * - A positive entry has data.active set and every string in data
 *   terminated, and lives min(ttl_ms, expires_in_ms) > 0.
 * - A negative entry has data all zero (so its jti and client_id are "" and
 *   no revocation ever matches it).
 *
 * Ownership: each entry is one fixed-size allocation holding its node, its
 * key and a plain copy of the caller's data; nothing the caller passes is
 * kept and lookups copy out. Entries are wiped with OPENSSL_cleanse before
 * free.
 *
 * Failure: creation returns NULL (out of memory, invalid options, no
 * randomness); a put with bad arguments returns TK_INVALID, one that cannot
 * allocate TK_ERROR, both before touching the cache, so the cache is
 * unchanged. Everything else cannot fail.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tokend/introspection_cache.h"
#include "tokend/lru_table.h"
#include "tokend/status.h"

struct introspection_cache_entry {
    struct lru_node node; /* first: the table hands back this pointer */
    uint8_t key[INTROSPECTION_CACHE_KEY_SIZE];
    struct introspection_entry_data data; /* zero for a negative entry */
};

struct introspection_cache {
    struct lru_table *table;
    int64_t ttl_ms;
    int64_t negative_ttl_ms;
};

int introspection_cache_key(const char *token, size_t len,
                            uint8_t out[INTROSPECTION_CACHE_KEY_SIZE])
{
    unsigned int digest_len = 0;
    if ((token == NULL && len > 0) ||
        EVP_Digest(token != NULL ? token : "", len, out, &digest_len, EVP_sha256(), NULL) != 1 ||
        digest_len != INTROSPECTION_CACHE_KEY_SIZE) {
        /* A zeroed key would be the same for every failed token: say so. */
        memset(out, 0, INTROSPECTION_CACHE_KEY_SIZE);
        return TK_ERROR;
    }
    return TK_OK;
}

static struct introspection_cache_entry *entry_of(const struct lru_node *node)
{
    return (struct introspection_cache_entry *)node;
}

static void entry_free(struct lru_node *node)
{
    struct introspection_cache_entry *entry = entry_of(node);
    OPENSSL_cleanse(entry, sizeof(*entry));
    free(entry);
}

/* A new unlinked entry for `key` holding a copy of `data` (NULL: negative).
 * NULL when out of memory. */
static struct introspection_cache_entry *entry_new(const uint8_t *key,
                                                   const struct introspection_entry_data *data)
{
    struct introspection_cache_entry *entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        return NULL;
    }
    memcpy(entry->key, key, sizeof(entry->key));
    entry->node.key = entry->key;
    entry->node.key_len = sizeof(entry->key);
    entry->node.negative = data == NULL;
    if (data != NULL) {
        entry->data = *data;
    }
    return entry;
}

struct introspection_cache *
introspection_cache_create(const struct introspection_cache_options *options)
{
    if (options == NULL) {
        return NULL;
    }
    struct introspection_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        return NULL;
    }
    cache->table =
        lru_table_create_cache(options->max_entries, options->ttl_ms, options->negative_ttl_ms,
                               options->clock, options->clock_context, entry_free);
    if (cache->table == NULL) {
        free(cache);
        return NULL;
    }
    cache->ttl_ms = options->ttl_ms;
    cache->negative_ttl_ms = options->negative_ttl_ms;
    return cache;
}

void introspection_cache_destroy(struct introspection_cache *cache)
{
    if (cache == NULL) {
        return;
    }
    lru_table_destroy(cache->table);
    free(cache);
}

enum introspection_cache_result
introspection_cache_lookup(struct introspection_cache *cache,
                           const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE],
                           struct introspection_entry_data *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    struct lru_node *node = NULL;
    switch (lru_table_lookup(cache->table, key, INTROSPECTION_CACHE_KEY_SIZE, &node)) {
    case LRU_HIT:
        if (out != NULL) {
            *out = entry_of(node)->data;
        }
        return INTROSPECTION_CACHE_HIT;
    case LRU_NEGATIVE:
        return INTROSPECTION_CACHE_NEGATIVE;
    case LRU_MISS:
        break;
    }
    return INTROSPECTION_CACHE_MISS;
}

static bool terminated(const char *text, size_t size)
{
    return memchr(text, '\0', size) != NULL;
}

static bool data_is_valid(const struct introspection_entry_data *data)
{
    return data->active && terminated(data->jti, sizeof(data->jti)) &&
           terminated(data->client_id, sizeof(data->client_id)) &&
           terminated(data->sub, sizeof(data->sub)) &&
           terminated(data->scope, sizeof(data->scope)) && terminated(data->aud, sizeof(data->aud));
}

int introspection_cache_put(struct introspection_cache *cache,
                            const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE],
                            const struct introspection_entry_data *data, int64_t expires_in_ms)
{
    if (key == NULL || data == NULL || !data_is_valid(data) || expires_in_ms <= 0) {
        return TK_INVALID;
    }
    struct introspection_cache_entry *created = entry_new(key, data);
    if (created == NULL) {
        return TK_ERROR;
    }
    lru_table_insert(cache->table, &created->node,
                     expires_in_ms < cache->ttl_ms ? expires_in_ms : cache->ttl_ms);
    return TK_OK;
}

int introspection_cache_put_negative(struct introspection_cache *cache,
                                     const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE])
{
    if (key == NULL) {
        return TK_INVALID;
    }
    struct introspection_cache_entry *created = entry_new(key, NULL);
    if (created == NULL) {
        return TK_ERROR;
    }
    lru_table_insert(cache->table, &created->node, cache->negative_ttl_ms);
    return TK_OK;
}

static bool jti_matches(const struct lru_node *node, const void *jti)
{
    return !node->negative && strcmp(entry_of(node)->data.jti, jti) == 0;
}

static bool client_matches(const struct lru_node *node, const void *client_id)
{
    return !node->negative && strcmp(entry_of(node)->data.client_id, client_id) == 0;
}

size_t introspection_cache_remove_jti(struct introspection_cache *cache, const char *jti)
{
    if (jti == NULL || jti[0] == '\0') {
        return 0;
    }
    return lru_table_remove_if(cache->table, jti_matches, jti);
}

size_t introspection_cache_remove_client(struct introspection_cache *cache, const char *client_id)
{
    if (client_id == NULL || client_id[0] == '\0') {
        return 0;
    }
    return lru_table_remove_if(cache->table, client_matches, client_id);
}

void introspection_cache_clear(struct introspection_cache *cache)
{
    lru_table_clear(cache->table);
}

size_t introspection_cache_sweep(struct introspection_cache *cache)
{
    return lru_table_sweep(cache->table);
}

const struct cache_stats *introspection_cache_get_stats(const struct introspection_cache *cache)
{
    return lru_table_stats(cache->table);
}
