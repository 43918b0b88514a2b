/*
 * client_cache.c - a worker's process-local cache of client records, on the
 * shared TTL + LRU core (lru_table.c), keyed by client id.
 *
 * Invariants:
 * - At most one entry per client id (the table's rule).
 * - A negative entry holds only the client id and never a remembered secret.
 *
 * Ownership: each entry is one allocation holding its table node and copies
 * of every string of its record, so freeing an entry is one free() and
 * nothing the caller passed in is kept. The table owns every linked entry;
 * pointers handed out stay valid until the next put, remove, clear or sweep
 * (or a lookup that drops that same entry as expired).
 *
 * Secrets: a remembered secret is kept only as HMAC-SHA256 under a random
 * per-cache key, compared with CRYPTO_memcmp. Entries are wiped with
 * OPENSSL_cleanse before free (digest and the copied secret hash), and the
 * keys when the cache is destroyed.
 *
 * Failure: creation returns NULL (out of memory, invalid options, no
 * randomness); a put that cannot allocate returns TK_ERROR before touching
 * the cache, so the cache is unchanged. Everything else cannot fail.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tokend/client_cache.h"
#include "tokend/hmac_sha256.h"
#include "tokend/logging.h"
#include "tokend/lru_table.h"
#include "tokend/status.h"

#define SECRET_KEY_SIZE    32
#define SECRET_DIGEST_SIZE 32 /* SHA-256 */

struct client_cache_entry {
    struct lru_node node; /* first: the table hands back this pointer */
    size_t alloc_size;    /* bytes to wipe on free */
    bool secret_remembered;
    unsigned char secret_digest[SECRET_DIGEST_SIZE];
    struct client_record record; /* strings point into strings[] */
    char strings[];
};

struct client_cache {
    struct lru_table *table;
    int64_t ttl_ms;
    int64_t negative_ttl_ms;
    unsigned char secret_key[SECRET_KEY_SIZE]; /* only until secret_hmac is keyed */
    struct hmac_sha256 *secret_hmac;           /* HMAC-SHA256 under that key */
};

static struct client_cache_entry *entry_of(struct lru_node *node)
{
    return (struct client_cache_entry *)node;
}

static void entry_free(struct lru_node *node)
{
    struct client_cache_entry *entry = entry_of(node);
    OPENSSL_cleanse(entry, entry->alloc_size);
    free(entry);
}

static size_t string_size(const char *text)
{
    return text == NULL ? 0 : strlen(text) + 1;
}

/* Copies `text` to *cursor and advances it; NULL stays NULL. */
static const char *copy_string(char **cursor, const char *text)
{
    if (text == NULL) {
        return NULL;
    }
    size_t size = strlen(text) + 1;
    char *copy = *cursor;
    memcpy(copy, text, size);
    *cursor += size;
    return copy;
}

/* A new unlinked entry holding copies of the strings of `record` (or only
 * `record->client_id` when `negative`). NULL when out of memory. */
static struct client_cache_entry *entry_new(const struct client_record *record, bool negative)
{
    const char *optional[] = {record->secret_hash, record->allowed_scopes, record->default_scopes,
                              record->audiences};
    size_t size = sizeof(struct client_cache_entry);
    size_t strings_size = string_size(record->client_id);
    if (!negative) {
        for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++) {
            size_t more = string_size(optional[i]);
            if (more > SIZE_MAX - strings_size) {
                return NULL;
            }
            strings_size += more;
        }
    }
    if (strings_size > SIZE_MAX - size) {
        return NULL;
    }
    size += strings_size;

    struct client_cache_entry *entry = calloc(1, size);
    if (entry == NULL) {
        return NULL;
    }
    entry->alloc_size = size;
    char *cursor = entry->strings;
    entry->record.client_id = copy_string(&cursor, record->client_id);
    entry->node.key = entry->record.client_id;
    entry->node.key_len = strlen(record->client_id);
    entry->node.negative = negative;
    if (!negative) {
        entry->record.secret_hash = copy_string(&cursor, record->secret_hash);
        entry->record.allowed_scopes = copy_string(&cursor, record->allowed_scopes);
        entry->record.default_scopes = copy_string(&cursor, record->default_scopes);
        entry->record.audiences = copy_string(&cursor, record->audiences);
        entry->record.token_ttl_s = record->token_ttl_s;
        entry->record.tokens_not_before_s = record->tokens_not_before_s;
        entry->record.enabled = record->enabled;
        entry->record.client_credentials_allowed = record->client_credentials_allowed;
    }
    return entry;
}

struct client_cache *client_cache_create(const struct client_cache_options *options)
{
    if (options == NULL) {
        return NULL;
    }
    struct client_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        return NULL;
    }
    cache->table =
        lru_table_create_cache(options->max_entries, options->ttl_ms, options->negative_ttl_ms,
                               options->clock, options->clock_context, entry_free);
    if (cache->table == NULL) {
        goto fail;
    }
    if (RAND_bytes(cache->secret_key, sizeof(cache->secret_key)) != 1) {
        log_error("client cache: RAND_bytes failed, cannot key the cache");
        goto fail;
    }
    cache->secret_hmac = hmac_sha256_new(cache->secret_key, sizeof(cache->secret_key));
    OPENSSL_cleanse(cache->secret_key, sizeof(cache->secret_key)); /* the context has it */
    if (cache->secret_hmac == NULL) {
        log_error("client cache: cannot set up HMAC-SHA256");
        goto fail;
    }
    cache->ttl_ms = options->ttl_ms;
    cache->negative_ttl_ms = options->negative_ttl_ms;
    return cache;

fail:
    client_cache_destroy(cache);
    return NULL;
}

void client_cache_destroy(struct client_cache *cache)
{
    if (cache == NULL) {
        return;
    }
    lru_table_destroy(cache->table);
    hmac_sha256_free(cache->secret_hmac);
    OPENSSL_cleanse(cache, sizeof(*cache));
    free(cache);
}

enum client_cache_result client_cache_lookup(struct client_cache *cache, const char *client_id,
                                             struct client_cache_entry **entry)
{
    struct lru_node *node = NULL;
    enum lru_result result =
        lru_table_lookup(cache->table, client_id, client_id != NULL ? strlen(client_id) : 0, &node);
    if (entry != NULL) {
        *entry = result == LRU_HIT ? entry_of(node) : NULL;
    }
    switch (result) {
    case LRU_HIT:
        return CLIENT_CACHE_HIT;
    case LRU_NEGATIVE:
        return CLIENT_CACHE_NEGATIVE;
    case LRU_MISS:
        break;
    }
    return CLIENT_CACHE_MISS;
}

const struct client_record *client_cache_entry_record(const struct client_cache_entry *entry)
{
    if (entry == NULL || entry->node.negative) {
        return NULL;
    }
    return &entry->record;
}

int client_cache_put(struct client_cache *cache, const struct client_record *record,
                     struct client_cache_entry **entry)
{
    if (entry != NULL) {
        *entry = NULL;
    }
    if (record == NULL || record->client_id == NULL) {
        return TK_INVALID;
    }
    struct client_cache_entry *created = entry_new(record, false);
    if (created == NULL) {
        return TK_ERROR;
    }
    lru_table_insert(cache->table, &created->node, cache->ttl_ms);
    if (entry != NULL) {
        *entry = created;
    }
    return TK_OK;
}

int client_cache_put_negative(struct client_cache *cache, const char *client_id)
{
    if (client_id == NULL) {
        return TK_INVALID;
    }
    const struct client_record id_only = {.client_id = client_id};
    struct client_cache_entry *created = entry_new(&id_only, true);
    if (created == NULL) {
        return TK_ERROR;
    }
    lru_table_insert(cache->table, &created->node, cache->negative_ttl_ms);
    return TK_OK;
}

bool client_cache_remove(struct client_cache *cache, const char *client_id)
{
    return client_id != NULL && lru_table_remove(cache->table, client_id, strlen(client_id));
}

void client_cache_clear(struct client_cache *cache)
{
    lru_table_clear(cache->table);
}

size_t client_cache_sweep(struct client_cache *cache)
{
    return lru_table_sweep(cache->table);
}

/* HMAC-SHA256(secret_key, secret) into `digest`. False if OpenSSL failed. */
static bool secret_digest(const struct client_cache *cache, const char *secret,
                          unsigned char digest[SECRET_DIGEST_SIZE])
{
    return hmac_sha256_compute(cache->secret_hmac, secret, strlen(secret), digest) == TK_OK;
}
bool client_cache_secret_matches(const struct client_cache *cache,
                                 const struct client_cache_entry *entry, const char *secret)
{
    if (entry == NULL || !entry->secret_remembered || secret == NULL) {
        return false;
    }
    unsigned char digest[SECRET_DIGEST_SIZE];
    bool matches = secret_digest(cache, secret, digest) &&
                   CRYPTO_memcmp(digest, entry->secret_digest, sizeof(digest)) == 0;
    OPENSSL_cleanse(digest, sizeof(digest));
    return matches;
}

void client_cache_remember_secret(const struct client_cache *cache,
                                  struct client_cache_entry *entry, const char *secret)
{
    if (entry == NULL || entry->node.negative) {
        return;
    }
    /* On any failure forget rather than keep a digest of an older secret. */
    entry->secret_remembered = secret != NULL && secret_digest(cache, secret, entry->secret_digest);
    if (!entry->secret_remembered) {
        OPENSSL_cleanse(entry->secret_digest, sizeof(entry->secret_digest));
    }
}

const struct cache_stats *client_cache_get_stats(const struct client_cache *cache)
{
    return lru_table_stats(cache->table);
}
