/*
 * introspection_cache.c - a worker's process-local cache of token
 * introspection answers, keyed by the SHA-256 digest of the token.
 *
 * Layout: as in client_cache.c, a fixed array of buckets (a power of two, at
 * least twice max_entries, so chains stay short) indexed by SipHash-2-4 of
 * the 32-byte key under a key drawn from RAND_bytes at creation. The digest
 * alone would not do as a bucket index: anyone can pick tokens whose
 * SHA-256 lands in one bucket, nobody can do that against an unknown
 * SipHash key. Every entry is on exactly one bucket chain and on the LRU
 * list, which runs from newest (most recently put or looked up) to oldest.
 * Chains are doubly linked through `chain_link` (the pointer that points at
 * the entry), so unlinking is O(1) like the LRU list.
 *
 * Invariants:
 * - stats.size == number of entries == length of the LRU list <= max_entries.
 * - At most one entry per key.
 * - An entry is fresh while now < expires_at_ms; an entry put at t with a
 *   lifetime of T is fresh up to t+T-1 and expired from t+T on. For a
 *   positive entry T = min(ttl_ms, expires_in_ms) > 0.
 * - A positive entry has data.active set and every string in data
 *   terminated; a negative entry has data all zero (so its jti is "" and no
 *   revocation ever matches it).
 *
 * Lookup compares the stored SipHash value first (it is keyed, so whether
 * it matches tells an observer nothing about the digest) and then the
 * whole key with CRYPTO_memcmp, since keys are digests of bearer tokens.
 *
 * Ownership: each entry is one fixed-size allocation holding its key and a
 * plain copy of the caller's data; nothing the caller passes is kept and
 * lookups copy out. The cache owns every entry. Entries are wiped with
 * OPENSSL_cleanse before free, and the cache (with its hash key) when it is
 * destroyed.
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
#include <openssl/rand.h>

#include "tokend/introspection_cache.h"
#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/siphash.h"
#include "tokend/status.h"

struct introspection_cache_entry {
    struct introspection_cache_entry *chain_next;
    struct introspection_cache_entry **chain_link; /* the pointer that points at this entry */
    struct introspection_cache_entry *lru_newer;
    struct introspection_cache_entry *lru_older;
    uint64_t hash;
    int64_t expires_at_ms;
    bool negative;
    uint8_t key[INTROSPECTION_CACHE_KEY_SIZE];
    struct introspection_entry_data data;
};

struct introspection_cache {
    struct introspection_cache_entry **buckets;
    size_t bucket_mask; /* bucket count - 1 */
    size_t max_entries;
    int64_t ttl_ms;
    int64_t negative_ttl_ms;
    introspection_cache_clock_fn clock;
    void *clock_context;
    struct introspection_cache_entry *lru_newest;
    struct introspection_cache_entry *lru_oldest;
    struct introspection_cache_stats stats;
    uint8_t hash_key[SIPHASH_KEY_SIZE];
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

static int64_t monotonic_clock_ms(void *context)
{
    (void)context;
    return monotonic_ms();
}

static int64_t cache_now_ms(const struct introspection_cache *cache)
{
    return cache->clock(cache->clock_context);
}

/* now + lifetime, saturating so a huge lifetime means "never" rather than
 * overflow. */
static int64_t deadline_ms(int64_t now_ms, int64_t lifetime_ms)
{
    if (now_ms > 0 && lifetime_ms > INT64_MAX - now_ms) {
        return INT64_MAX;
    }
    return now_ms + lifetime_ms;
}

static bool entry_is_fresh(const struct introspection_cache_entry *entry, int64_t now_ms)
{
    return now_ms < entry->expires_at_ms;
}

static uint64_t hash_key(const struct introspection_cache *cache,
                         const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE])
{
    return siphash24(cache->hash_key, key, INTROSPECTION_CACHE_KEY_SIZE);
}

static struct introspection_cache_entry **bucket_for(const struct introspection_cache *cache,
                                                     uint64_t hash)
{
    return &cache->buckets[hash & cache->bucket_mask];
}

static struct introspection_cache_entry *find_entry(const struct introspection_cache *cache,
                                                    const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE],
                                                    uint64_t hash)
{
    for (struct introspection_cache_entry *entry = *bucket_for(cache, hash); entry != NULL;
         entry = entry->chain_next) {
        if (entry->hash == hash &&
            CRYPTO_memcmp(entry->key, key, INTROSPECTION_CACHE_KEY_SIZE) == 0) {
            return entry;
        }
    }
    return NULL;
}

static void lru_push_newest(struct introspection_cache *cache,
                            struct introspection_cache_entry *entry)
{
    entry->lru_newer = NULL;
    entry->lru_older = cache->lru_newest;
    if (cache->lru_newest != NULL) {
        cache->lru_newest->lru_newer = entry;
    } else {
        cache->lru_oldest = entry;
    }
    cache->lru_newest = entry;
}

static void lru_unlink(struct introspection_cache *cache, struct introspection_cache_entry *entry)
{
    if (entry->lru_newer != NULL) {
        entry->lru_newer->lru_older = entry->lru_older;
    } else {
        cache->lru_newest = entry->lru_older;
    }
    if (entry->lru_older != NULL) {
        entry->lru_older->lru_newer = entry->lru_newer;
    } else {
        cache->lru_oldest = entry->lru_newer;
    }
    entry->lru_newer = NULL;
    entry->lru_older = NULL;
}

static void lru_touch(struct introspection_cache *cache, struct introspection_cache_entry *entry)
{
    if (cache->lru_newest != entry) {
        lru_unlink(cache, entry);
        lru_push_newest(cache, entry);
    }
}

static void link_entry(struct introspection_cache *cache, struct introspection_cache_entry *entry)
{
    struct introspection_cache_entry **bucket = bucket_for(cache, entry->hash);
    entry->chain_next = *bucket;
    entry->chain_link = bucket;
    if (*bucket != NULL) {
        (*bucket)->chain_link = &entry->chain_next;
    }
    *bucket = entry;
    lru_push_newest(cache, entry);
    cache->stats.size++;
}

static void entry_free(struct introspection_cache_entry *entry)
{
    OPENSSL_cleanse(entry, sizeof(*entry));
    free(entry);
}

/* Unlinks `entry` from its chain and the LRU list and frees it. */
static void drop_entry(struct introspection_cache *cache, struct introspection_cache_entry *entry)
{
    *entry->chain_link = entry->chain_next;
    if (entry->chain_next != NULL) {
        entry->chain_next->chain_link = entry->chain_link;
    }
    lru_unlink(cache, entry);
    cache->stats.size--;
    entry_free(entry);
}

/* A new unlinked entry for `key`: a copy of `data`, or all-zero data when
 * `data` is NULL (negative). NULL when out of memory. */
static struct introspection_cache_entry *entry_new(const struct introspection_cache *cache,
                                                   const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE],
                                                   const struct introspection_entry_data *data)
{
    struct introspection_cache_entry *entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        return NULL;
    }
    memcpy(entry->key, key, INTROSPECTION_CACHE_KEY_SIZE);
    entry->hash = hash_key(cache, key);
    entry->negative = data == NULL;
    if (data != NULL) {
        entry->data = *data;
    }
    return entry;
}

/* Links a new entry in place of any entry with its key, evicting the
 * oldest entry when the cache is full, fresh for `lifetime_ms` from now.
 * Cannot fail. */
static void insert_entry(struct introspection_cache *cache, struct introspection_cache_entry *entry,
                         int64_t lifetime_ms)
{
    struct introspection_cache_entry *existing = find_entry(cache, entry->key, entry->hash);
    if (existing != NULL) {
        drop_entry(cache, existing);
    } else if (cache->stats.size >= cache->max_entries) {
        drop_entry(cache, cache->lru_oldest);
        cache->stats.evictions++;
    }
    entry->expires_at_ms = deadline_ms(cache_now_ms(cache), lifetime_ms);
    link_entry(cache, entry);
}

struct introspection_cache *
introspection_cache_create(const struct introspection_cache_options *options)
{
    if (options == NULL || options->max_entries < 1 || options->ttl_ms <= 0 ||
        options->negative_ttl_ms <= 0 || options->max_entries > SIZE_MAX / 4) {
        return NULL;
    }
    size_t bucket_count = 1;
    while (bucket_count < 2 * options->max_entries) {
        bucket_count <<= 1;
    }

    struct introspection_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        goto fail;
    }
    cache->buckets = calloc(bucket_count, sizeof(cache->buckets[0]));
    if (cache->buckets == NULL) {
        goto fail;
    }
    if (RAND_bytes(cache->hash_key, sizeof(cache->hash_key)) != 1) {
        log_error("introspection cache: RAND_bytes failed, cannot key the cache");
        goto fail;
    }
    cache->bucket_mask = bucket_count - 1;
    cache->max_entries = options->max_entries;
    cache->ttl_ms = options->ttl_ms;
    cache->negative_ttl_ms = options->negative_ttl_ms;
    cache->clock = options->clock != NULL ? options->clock : monotonic_clock_ms;
    cache->clock_context = options->clock_context;
    return cache;

fail:
    introspection_cache_destroy(cache);
    return NULL;
}

void introspection_cache_destroy(struct introspection_cache *cache)
{
    if (cache == NULL) {
        return;
    }
    if (cache->buckets != NULL) {
        introspection_cache_clear(cache);
        free(cache->buckets);
    }
    OPENSSL_cleanse(cache, sizeof(*cache));
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
    if (key == NULL) {
        cache->stats.misses++;
        return INTROSPECTION_CACHE_MISS;
    }
    struct introspection_cache_entry *found = find_entry(cache, key, hash_key(cache, key));
    if (found == NULL) {
        cache->stats.misses++;
        return INTROSPECTION_CACHE_MISS;
    }
    if (!entry_is_fresh(found, cache_now_ms(cache))) {
        drop_entry(cache, found);
        cache->stats.expirations++;
        cache->stats.misses++;
        return INTROSPECTION_CACHE_MISS;
    }
    /* A negative entry in use is as recent as a positive one. */
    lru_touch(cache, found);
    if (found->negative) {
        cache->stats.negative_hits++;
        return INTROSPECTION_CACHE_NEGATIVE;
    }
    cache->stats.hits++;
    if (out != NULL) {
        *out = found->data;
    }
    return INTROSPECTION_CACHE_HIT;
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
    struct introspection_cache_entry *created = entry_new(cache, key, data);
    if (created == NULL) {
        return TK_ERROR;
    }
    insert_entry(cache, created, expires_in_ms < cache->ttl_ms ? expires_in_ms : cache->ttl_ms);
    return TK_OK;
}

int introspection_cache_put_negative(struct introspection_cache *cache,
                                     const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE])
{
    if (key == NULL) {
        return TK_INVALID;
    }
    struct introspection_cache_entry *created = entry_new(cache, key, NULL);
    if (created == NULL) {
        return TK_ERROR;
    }
    insert_entry(cache, created, cache->negative_ttl_ms);
    return TK_OK;
}

size_t introspection_cache_remove_jti(struct introspection_cache *cache, const char *jti)
{
    if (jti == NULL || jti[0] == '\0') {
        return 0;
    }
    size_t dropped = 0;
    struct introspection_cache_entry *entry = cache->lru_oldest;
    while (entry != NULL) {
        struct introspection_cache_entry *newer = entry->lru_newer;
        if (!entry->negative && strcmp(entry->data.jti, jti) == 0) {
            drop_entry(cache, entry);
            dropped++;
        }
        entry = newer;
    }
    return dropped;
}

void introspection_cache_clear(struct introspection_cache *cache)
{
    while (cache->lru_oldest != NULL) {
        drop_entry(cache, cache->lru_oldest);
    }
}

size_t introspection_cache_sweep(struct introspection_cache *cache)
{
    const int64_t now_ms = cache_now_ms(cache);
    size_t dropped = 0;
    struct introspection_cache_entry *entry = cache->lru_oldest;
    while (entry != NULL) {
        struct introspection_cache_entry *newer = entry->lru_newer;
        if (!entry_is_fresh(entry, now_ms)) {
            drop_entry(cache, entry);
            dropped++;
        }
        entry = newer;
    }
    cache->stats.expirations += dropped;
    return dropped;
}

const struct introspection_cache_stats *
introspection_cache_get_stats(const struct introspection_cache *cache)
{
    return &cache->stats;
}
