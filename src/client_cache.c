/*
 * client_cache.c - a worker's process-local cache of client records.
 *
 * Layout: a fixed array of buckets (a power of two, at least twice
 * max_entries, so chains stay short) indexed by SipHash-2-4 of the client id
 * under a key drawn from RAND_bytes at creation; a client id an attacker
 * picks cannot be aimed at one bucket. Every entry is on exactly one bucket
 * chain and on the LRU list, which runs from newest (most recently put or
 * looked up) to oldest. Chains are doubly linked through `chain_link` (the
 * pointer that points at the entry), so unlinking is O(1) like the LRU list.
 *
 * Invariants:
 * - stats.size == number of entries == length of the LRU list <= max_entries.
 * - At most one entry per client id.
 * - An entry is fresh while now < expires_at_ms; an entry put at t with a
 *   TTL of T is fresh up to t+T-1 and expired from t+T on.
 * - A negative entry holds only the client id and never a remembered secret.
 *
 * Ownership: each entry is one allocation holding its header and copies of
 * every string of its record, so freeing an entry is one free() and nothing
 * the caller passed in is kept. The cache owns every entry; pointers handed
 * out stay valid until the next put, remove, clear or sweep (or a lookup that
 * drops that same entry as expired).
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
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "tokend/client_cache.h"
#include "tokend/hmac_sha256.h"
#include "tokend/monotonic_clock.h"
#include "tokend/logging.h"
#include "tokend/siphash.h"
#include "tokend/status.h"

#define SECRET_KEY_SIZE    32
#define SECRET_DIGEST_SIZE 32 /* SHA-256 */

struct client_cache_entry {
    struct client_cache_entry *chain_next;
    struct client_cache_entry **chain_link; /* the pointer that points at this entry */
    struct client_cache_entry *lru_newer;
    struct client_cache_entry *lru_older;
    uint64_t hash;
    int64_t expires_at_ms;
    size_t alloc_size; /* bytes to wipe on free */
    bool negative;
    bool secret_remembered;
    unsigned char secret_digest[SECRET_DIGEST_SIZE];
    struct client_record record; /* strings point into strings[] */
    char strings[];
};

struct client_cache {
    struct client_cache_entry **buckets;
    size_t bucket_mask; /* bucket count - 1 */
    size_t max_entries;
    int64_t ttl_ms;
    int64_t negative_ttl_ms;
    client_cache_clock_fn clock;
    void *clock_context;
    struct client_cache_entry *lru_newest;
    struct client_cache_entry *lru_oldest;
    struct client_cache_stats stats;
    uint8_t hash_key[SIPHASH_KEY_SIZE];
    unsigned char secret_key[SECRET_KEY_SIZE]; /* only until secret_hmac is keyed */
    struct hmac_sha256 *secret_hmac;           /* HMAC-SHA256 under that key */
};

static int64_t monotonic_clock_ms(void *context)
{
    (void)context;
    return monotonic_ms();
}

static int64_t cache_now_ms(const struct client_cache *cache)
{
    return cache->clock(cache->clock_context);
}

/* now + ttl, saturating so a huge TTL means "never" rather than overflow. */
static int64_t deadline_ms(int64_t now_ms, int64_t ttl_ms)
{
    if (now_ms > 0 && ttl_ms > INT64_MAX - now_ms) {
        return INT64_MAX;
    }
    return now_ms + ttl_ms;
}

static bool entry_is_fresh(const struct client_cache_entry *entry, int64_t now_ms)
{
    return now_ms < entry->expires_at_ms;
}

static uint64_t hash_id(const struct client_cache *cache, const char *client_id)
{
    return siphash24(cache->hash_key, client_id, strlen(client_id));
}

static struct client_cache_entry **bucket_for(const struct client_cache *cache, uint64_t hash)
{
    return &cache->buckets[hash & cache->bucket_mask];
}

static struct client_cache_entry *find_entry(const struct client_cache *cache,
                                             const char *client_id, uint64_t hash)
{
    for (struct client_cache_entry *entry = *bucket_for(cache, hash); entry != NULL;
         entry = entry->chain_next) {
        if (entry->hash == hash && strcmp(entry->record.client_id, client_id) == 0) {
            return entry;
        }
    }
    return NULL;
}

static void lru_push_newest(struct client_cache *cache, struct client_cache_entry *entry)
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

static void lru_unlink(struct client_cache *cache, struct client_cache_entry *entry)
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

static void lru_touch(struct client_cache *cache, struct client_cache_entry *entry)
{
    if (cache->lru_newest != entry) {
        lru_unlink(cache, entry);
        lru_push_newest(cache, entry);
    }
}

static void link_entry(struct client_cache *cache, struct client_cache_entry *entry)
{
    struct client_cache_entry **bucket = bucket_for(cache, entry->hash);
    entry->chain_next = *bucket;
    entry->chain_link = bucket;
    if (*bucket != NULL) {
        (*bucket)->chain_link = &entry->chain_next;
    }
    *bucket = entry;
    lru_push_newest(cache, entry);
    cache->stats.size++;
}

static void entry_free(struct client_cache_entry *entry)
{
    OPENSSL_cleanse(entry, entry->alloc_size);
    free(entry);
}

/* Unlinks `entry` from its chain and the LRU list and frees it. */
static void drop_entry(struct client_cache *cache, struct client_cache_entry *entry)
{
    *entry->chain_link = entry->chain_next;
    if (entry->chain_next != NULL) {
        entry->chain_next->chain_link = entry->chain_link;
    }
    lru_unlink(cache, entry);
    cache->stats.size--;
    entry_free(entry);
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
 * `record->client_id` when `negative`), with no TTL set yet. NULL when out of
 * memory. */
static struct client_cache_entry *entry_new(const struct client_cache *cache,
                                            const struct client_record *record, bool negative)
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
    entry->negative = negative;
    entry->hash = hash_id(cache, record->client_id);

    char *cursor = entry->strings;
    entry->record.client_id = copy_string(&cursor, record->client_id);
    if (!negative) {
        entry->record.secret_hash = copy_string(&cursor, record->secret_hash);
        entry->record.allowed_scopes = copy_string(&cursor, record->allowed_scopes);
        entry->record.default_scopes = copy_string(&cursor, record->default_scopes);
        entry->record.audiences = copy_string(&cursor, record->audiences);
        entry->record.token_ttl_s = record->token_ttl_s;
        entry->record.enabled = record->enabled;
        entry->record.client_credentials_allowed = record->client_credentials_allowed;
    }
    return entry;
}

/* Links a new entry in place of any entry with its id, evicting the oldest
 * entry when the cache is full. Cannot fail. */
static void insert_entry(struct client_cache *cache, struct client_cache_entry *entry)
{
    struct client_cache_entry *existing = find_entry(cache, entry->record.client_id, entry->hash);
    if (existing != NULL) {
        drop_entry(cache, existing);
    } else if (cache->stats.size >= cache->max_entries) {
        drop_entry(cache, cache->lru_oldest);
        cache->stats.evictions++;
    }
    entry->expires_at_ms =
        deadline_ms(cache_now_ms(cache), entry->negative ? cache->negative_ttl_ms : cache->ttl_ms);
    link_entry(cache, entry);
}

struct client_cache *client_cache_create(const struct client_cache_options *options)
{
    if (options == NULL || options->max_entries < 1 || options->ttl_ms <= 0 ||
        options->negative_ttl_ms <= 0 || options->max_entries > SIZE_MAX / 4) {
        return NULL;
    }
    size_t bucket_count = 1;
    while (bucket_count < 2 * options->max_entries) {
        bucket_count <<= 1;
    }

    struct client_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        goto fail;
    }
    cache->buckets = calloc(bucket_count, sizeof(cache->buckets[0]));
    if (cache->buckets == NULL) {
        goto fail;
    }
    if (RAND_bytes(cache->hash_key, sizeof(cache->hash_key)) != 1 ||
        RAND_bytes(cache->secret_key, sizeof(cache->secret_key)) != 1) {
        log_error("client cache: RAND_bytes failed, cannot key the cache");
        goto fail;
    }
    cache->secret_hmac = hmac_sha256_new(cache->secret_key, sizeof(cache->secret_key));
    OPENSSL_cleanse(cache->secret_key, sizeof(cache->secret_key)); /* the context has it */
    if (cache->secret_hmac == NULL) {
        log_error("client cache: cannot set up HMAC-SHA256");
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
    client_cache_destroy(cache);
    return NULL;
}

void client_cache_destroy(struct client_cache *cache)
{
    if (cache == NULL) {
        return;
    }
    if (cache->buckets != NULL) {
        client_cache_clear(cache);
        free(cache->buckets);
    }
    hmac_sha256_free(cache->secret_hmac);
    OPENSSL_cleanse(cache, sizeof(*cache));
    free(cache);
}

enum client_cache_result client_cache_lookup(struct client_cache *cache, const char *client_id,
                                             struct client_cache_entry **entry)
{
    if (entry != NULL) {
        *entry = NULL;
    }
    if (client_id == NULL) {
        cache->stats.misses++;
        return CLIENT_CACHE_MISS;
    }
    struct client_cache_entry *found = find_entry(cache, client_id, hash_id(cache, client_id));
    if (found == NULL) {
        cache->stats.misses++;
        return CLIENT_CACHE_MISS;
    }
    if (!entry_is_fresh(found, cache_now_ms(cache))) {
        drop_entry(cache, found);
        cache->stats.expirations++;
        cache->stats.misses++;
        return CLIENT_CACHE_MISS;
    }
    /* A negative entry in use is as recent as a positive one. */
    lru_touch(cache, found);
    if (found->negative) {
        cache->stats.negative_hits++;
        return CLIENT_CACHE_NEGATIVE;
    }
    cache->stats.hits++;
    if (entry != NULL) {
        *entry = found;
    }
    return CLIENT_CACHE_HIT;
}

const struct client_record *client_cache_entry_record(const struct client_cache_entry *entry)
{
    if (entry == NULL || entry->negative) {
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
    struct client_cache_entry *created = entry_new(cache, record, false);
    if (created == NULL) {
        return TK_ERROR;
    }
    insert_entry(cache, created);
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
    struct client_cache_entry *created = entry_new(cache, &id_only, true);
    if (created == NULL) {
        return TK_ERROR;
    }
    insert_entry(cache, created);
    return TK_OK;
}

bool client_cache_remove(struct client_cache *cache, const char *client_id)
{
    if (client_id == NULL) {
        return false;
    }
    struct client_cache_entry *found = find_entry(cache, client_id, hash_id(cache, client_id));
    if (found == NULL) {
        return false;
    }
    drop_entry(cache, found);
    return true;
}

void client_cache_clear(struct client_cache *cache)
{
    while (cache->lru_oldest != NULL) {
        drop_entry(cache, cache->lru_oldest);
    }
}

size_t client_cache_sweep(struct client_cache *cache)
{
    const int64_t now_ms = cache_now_ms(cache);
    size_t dropped = 0;
    struct client_cache_entry *entry = cache->lru_oldest;
    while (entry != NULL) {
        struct client_cache_entry *newer = entry->lru_newer;
        if (!entry_is_fresh(entry, now_ms)) {
            drop_entry(cache, entry);
            dropped++;
        }
        entry = newer;
    }
    cache->stats.expirations += dropped;
    return dropped;
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
    if (entry == NULL || entry->negative) {
        return;
    }
    /* On any failure forget rather than keep a digest of an older secret. */
    entry->secret_remembered = secret != NULL && secret_digest(cache, secret, entry->secret_digest);
    if (!entry->secret_remembered) {
        OPENSSL_cleanse(entry->secret_digest, sizeof(entry->secret_digest));
    }
}

const struct client_cache_stats *client_cache_get_stats(const struct client_cache *cache)
{
    return &cache->stats;
}
