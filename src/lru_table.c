/*
 * lru_table.c - the hash table and LRU list shared by the worker's caches
 * (client records, introspection answers, revoked token ids).
 *
 * Layout: an array of buckets (a power of two: at least twice max_entries,
 * so chains stay short and it never resizes; for a table without limit,
 * expected_entries to start with, doubled whenever the entries reach the
 * bucket count) indexed by SipHash-2-4 of the key under a key drawn from
 * RAND_bytes at creation; a key an attacker picks cannot be aimed at one
 * bucket. Every node is on exactly one bucket chain and on the LRU list,
 * which runs from newest (most recently inserted or looked up) to oldest.
 * Chains are doubly linked through `chain_link` (the pointer that points at
 * the node), so unlinking is O(1) like the LRU list.
 *
 * Invariants:
 * - stats.size == number of nodes == length of the LRU list, and
 *   <= max_entries when max_entries > 0.
 * - At most one node per key.
 * - A node inserted at t with a TTL of T is fresh up to t+T-1 and expired
 *   from t+T on.
 *
 * Ownership: nodes belong to the cache that embeds them until inserted;
 * then the table owns them and returns each exactly once to free_node.
 * Keys are compared with CRYPTO_memcmp after their lengths, so a key that
 * is a digest of a secret is never compared byte by byte in variable time.
 *
 * Failure: only creation can fail (NULL); nothing else allocates.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tokend/logging.h"
#include "tokend/lru_table.h"
#include "tokend/monotonic_clock.h"
#include "tokend/siphash.h"

struct lru_table {
    struct lru_node **buckets;
    size_t bucket_mask; /* bucket count - 1 */
    size_t max_entries; /* 0 = no limit */
    lru_node_free_fn free_node;
    cache_clock_fn clock;
    void *clock_context;
    struct lru_node *lru_newest;
    struct lru_node *lru_oldest;
    struct cache_stats stats;
    uint8_t hash_key[SIPHASH_KEY_SIZE];
};

static int64_t monotonic_clock_ms(void *context)
{
    (void)context;
    return monotonic_ms();
}

int64_t lru_table_now_ms(const struct lru_table *table)
{
    return table->clock(table->clock_context);
}

/* now + ttl, saturating so a huge TTL means "never" rather than overflow. */
static int64_t deadline_ms(int64_t now_ms, int64_t ttl_ms)
{
    if (now_ms > 0 && ttl_ms > INT64_MAX - now_ms) {
        return INT64_MAX;
    }
    if (now_ms < 0 && ttl_ms < INT64_MIN - now_ms) {
        return INT64_MIN;
    }
    return now_ms + ttl_ms;
}

static struct lru_node **bucket_for(const struct lru_table *table, uint64_t hash)
{
    return &table->buckets[hash & table->bucket_mask];
}

static struct lru_node *find_node(const struct lru_table *table, const void *key, size_t key_len,
                                  uint64_t hash)
{
    for (struct lru_node *node = *bucket_for(table, hash); node != NULL; node = node->chain_next) {
        if (node->hash == hash && node->key_len == key_len &&
            CRYPTO_memcmp(node->key, key, key_len) == 0) {
            return node;
        }
    }
    return NULL;
}

static void lru_push_newest(struct lru_table *table, struct lru_node *node)
{
    node->lru_newer = NULL;
    node->lru_older = table->lru_newest;
    if (table->lru_newest != NULL) {
        table->lru_newest->lru_newer = node;
    } else {
        table->lru_oldest = node;
    }
    table->lru_newest = node;
}

static void lru_unlink(struct lru_table *table, struct lru_node *node)
{
    if (node->lru_newer != NULL) {
        node->lru_newer->lru_older = node->lru_older;
    } else {
        table->lru_newest = node->lru_older;
    }
    if (node->lru_older != NULL) {
        node->lru_older->lru_newer = node->lru_newer;
    } else {
        table->lru_oldest = node->lru_newer;
    }
    node->lru_newer = NULL;
    node->lru_older = NULL;
}

static void lru_touch(struct lru_table *table, struct lru_node *node)
{
    if (table->lru_newest != node) {
        lru_unlink(table, node);
        lru_push_newest(table, node);
    }
}

/* Unlinks `node` from its chain and the LRU list and frees it. */
static void drop_node(struct lru_table *table, struct lru_node *node)
{
    *node->chain_link = node->chain_next;
    if (node->chain_next != NULL) {
        node->chain_next->chain_link = node->chain_link;
    }
    lru_unlink(table, node);
    table->stats.size--;
    table->free_node(node);
}

struct lru_table *lru_table_create(const struct lru_table_options *options)
{
    if (options == NULL || options->free_node == NULL || options->max_entries > SIZE_MAX / 4 ||
        options->expected_entries > SIZE_MAX / 4) {
        return NULL;
    }
    size_t wanted = options->max_entries > 0 ? 2 * options->max_entries : options->expected_entries;
    size_t bucket_count = 16;
    while (bucket_count < wanted) {
        bucket_count <<= 1;
    }
    struct lru_table *table = calloc(1, sizeof(*table));
    if (table == NULL) {
        return NULL;
    }
    table->buckets = calloc(bucket_count, sizeof(table->buckets[0]));
    if (table->buckets == NULL) {
        free(table);
        return NULL;
    }
    if (RAND_bytes(table->hash_key, sizeof(table->hash_key)) != 1) {
        log_error("cache: RAND_bytes failed, cannot key the hash table");
        free(table->buckets);
        free(table);
        return NULL;
    }
    table->bucket_mask = bucket_count - 1;
    table->max_entries = options->max_entries;
    table->free_node = options->free_node;
    table->clock = options->clock != NULL ? options->clock : monotonic_clock_ms;
    table->clock_context = options->clock_context;
    return table;
}

struct lru_table *lru_table_create_cache(size_t max_entries, int64_t ttl_ms,
                                         int64_t negative_ttl_ms, cache_clock_fn clock,
                                         void *clock_context, lru_node_free_fn free_node)
{
    if (max_entries < 1 || ttl_ms <= 0 || negative_ttl_ms <= 0) {
        return NULL;
    }
    const struct lru_table_options options = {
        .max_entries = max_entries,
        .free_node = free_node,
        .clock = clock,
        .clock_context = clock_context,
    };
    return lru_table_create(&options);
}

void lru_table_destroy(struct lru_table *table)
{
    if (table == NULL) {
        return;
    }
    lru_table_clear(table);
    free(table->buckets);
    OPENSSL_cleanse(table->hash_key, sizeof(table->hash_key));
    free(table);
}

/* The fresh node for `key`, or NULL (dropping and counting a stale one). */
static struct lru_node *find_fresh(struct lru_table *table, const void *key, size_t key_len)
{
    struct lru_node *found =
        find_node(table, key, key_len, siphash24(table->hash_key, key, key_len));
    if (found != NULL && lru_table_now_ms(table) >= found->expires_at_ms) {
        drop_node(table, found);
        table->stats.expirations++;
        return NULL;
    }
    return found;
}

enum lru_result lru_table_lookup(struct lru_table *table, const void *key, size_t key_len,
                                 struct lru_node **node)
{
    struct lru_node *found = key != NULL ? find_fresh(table, key, key_len) : NULL;
    if (node != NULL) {
        *node = found;
    }
    if (found == NULL) {
        table->stats.misses++;
        return LRU_MISS;
    }
    /* A negative entry in use is as recent as a positive one. */
    lru_touch(table, found);
    if (found->negative) {
        table->stats.negative_hits++;
        return LRU_NEGATIVE;
    }
    table->stats.hits++;
    return LRU_HIT;
}

struct lru_node *lru_table_peek(struct lru_table *table, const void *key, size_t key_len)
{
    return key != NULL ? find_fresh(table, key, key_len) : NULL;
}

/* A table without limit doubles its buckets when it holds as many entries
 * as buckets, so chains stay short however many revocations pile up. If
 * the larger array cannot be had the table goes on with longer chains:
 * slower, never wrong. */
static void grow_if_crowded(struct lru_table *table)
{
    size_t count = table->bucket_mask + 1;
    if (table->max_entries > 0 || table->stats.size < count || count > SIZE_MAX / 4) {
        return;
    }
    struct lru_node **buckets = calloc(2 * count, sizeof(buckets[0]));
    if (buckets == NULL) {
        return;
    }
    free(table->buckets);
    table->buckets = buckets;
    table->bucket_mask = 2 * count - 1;
    for (struct lru_node *node = table->lru_newest; node != NULL; node = node->lru_older) {
        struct lru_node **bucket = bucket_for(table, node->hash);
        node->chain_next = *bucket;
        node->chain_link = bucket;
        if (*bucket != NULL) {
            (*bucket)->chain_link = &node->chain_next;
        }
        *bucket = node;
    }
}

void lru_table_insert(struct lru_table *table, struct lru_node *node, int64_t ttl_ms)
{
    grow_if_crowded(table);
    node->hash = siphash24(table->hash_key, node->key, node->key_len);
    struct lru_node *existing = find_node(table, node->key, node->key_len, node->hash);
    if (existing != NULL) {
        drop_node(table, existing);
    } else if (table->max_entries > 0 && table->stats.size >= table->max_entries) {
        drop_node(table, table->lru_oldest);
        table->stats.evictions++;
    }
    node->expires_at_ms = deadline_ms(lru_table_now_ms(table), ttl_ms);
    struct lru_node **bucket = bucket_for(table, node->hash);
    node->chain_next = *bucket;
    node->chain_link = bucket;
    if (*bucket != NULL) {
        (*bucket)->chain_link = &node->chain_next;
    }
    *bucket = node;
    lru_push_newest(table, node);
    table->stats.size++;
}

bool lru_table_remove(struct lru_table *table, const void *key, size_t key_len)
{
    if (key == NULL) {
        return false;
    }
    struct lru_node *found =
        find_node(table, key, key_len, siphash24(table->hash_key, key, key_len));
    if (found == NULL) {
        return false;
    }
    drop_node(table, found);
    return true;
}

size_t lru_table_remove_if(struct lru_table *table,
                           bool (*match)(const struct lru_node *node, const void *context),
                           const void *context)
{
    size_t dropped = 0;
    struct lru_node *node = table->lru_oldest;
    while (node != NULL) {
        struct lru_node *newer = node->lru_newer;
        if (match(node, context)) {
            drop_node(table, node);
            dropped++;
        }
        node = newer;
    }
    return dropped;
}

void lru_table_clear(struct lru_table *table)
{
    while (table->lru_oldest != NULL) {
        drop_node(table, table->lru_oldest);
    }
}

static bool is_expired(const struct lru_node *node, const void *context)
{
    return *(const int64_t *)context >= node->expires_at_ms;
}

size_t lru_table_sweep(struct lru_table *table)
{
    int64_t now_ms = lru_table_now_ms(table);
    size_t dropped = lru_table_remove_if(table, is_expired, &now_ms);
    table->stats.expirations += dropped;
    return dropped;
}

const struct cache_stats *lru_table_stats(const struct lru_table *table)
{
    return &table->stats;
}
