/*
 * lru_table.h - the TTL + LRU core under a worker's caches: a hash table
 * (SipHash-2-4 under a per-table random key) threaded on an LRU list, with
 * a deadline per entry and the counters every cache reports.
 *
 * The table does not allocate entries. A cache embeds a struct lru_node in
 * its own entry type, points node.key at the key bytes inside that entry,
 * and hands the node over with lru_table_insert(); from then on the table
 * owns it and gives it back to the cache's free_node callback when it is
 * dropped (replaced, evicted, expired, removed, cleared, destroyed).
 *
 * - lookup/insert/remove are O(1); the bucket array of a table with a limit
 *   never resizes (sized from max_entries); one without limit starts at
 *   expected_entries and doubles as it fills (an insert may then take
 *   O(n) once).
 * - An entry is fresh while now < expires_at_ms (monotonic clock); expired
 *   entries are dropped when looked up and by lru_table_sweep.
 * - An insert into a full table evicts the least recently used entry. A
 *   table with max_entries 0 never evicts (for sets that must not forget,
 *   such as revoked token ids); its bucket array grows instead.
 * - The clock is injectable so tests can move time.
 * - Not thread-safe: one table per worker process.
 */
#ifndef TOKEND_LRU_TABLE_H
#define TOKEND_LRU_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The counters of one cache; plain so they can be copied into a
 * shared-memory stats slot. */
struct cache_stats {
    uint64_t hits;          /* positive entry found and fresh */
    uint64_t misses;        /* nothing usable found (includes expired) */
    uint64_t negative_hits; /* fresh negative entry found */
    uint64_t evictions;     /* entries pushed out by LRU */
    uint64_t expirations;   /* entries dropped because their TTL ran out */
    uint64_t size;          /* entries now held, positive and negative */
};

/* Milliseconds on a monotonic clock. */
typedef int64_t (*cache_clock_fn)(void *context);

/* Embedded in a cache's entry. The owner sets key, key_len and negative
 * before lru_table_insert(); the table sets the rest. */
struct lru_node {
    struct lru_node *chain_next;
    struct lru_node **chain_link; /* the pointer that points at this node */
    struct lru_node *lru_newer;
    struct lru_node *lru_older;
    uint64_t hash;
    int64_t expires_at_ms;
    const void *key; /* inside the entry; compared with CRYPTO_memcmp */
    size_t key_len;
    bool negative; /* a remembered "no such thing" */
};

typedef void (*lru_node_free_fn)(struct lru_node *node);

struct lru_table_options {
    size_t max_entries;      /* 0 = no limit, never evict */
    size_t expected_entries; /* sizes the buckets when max_entries is 0 */
    lru_node_free_fn free_node;
    cache_clock_fn clock; /* NULL = CLOCK_MONOTONIC */
    void *clock_context;
};

enum lru_result {
    LRU_MISS = 0,
    LRU_HIT,
    LRU_NEGATIVE,
};

struct lru_table;

/* Returns a new empty table, or NULL when out of memory, when the options
 * are invalid (no free_node) or when no randomness is available for the
 * hash key (logged). */
struct lru_table *lru_table_create(const struct lru_table_options *options);

/* For a cache with positive and negative entries: a table of at most
 * `max_entries` (>= 1) entries, or NULL when that or a TTL (> 0 each) is
 * invalid, or creation fails. The TTLs are only checked here; the cache
 * keeps them. */
struct lru_table *lru_table_create_cache(size_t max_entries, int64_t ttl_ms,
                                         int64_t negative_ttl_ms, cache_clock_fn clock,
                                         void *clock_context, lru_node_free_fn free_node);

/* Frees every entry (through free_node) and the table. NULL is allowed. */
void lru_table_destroy(struct lru_table *table);

/* The table's clock now. */
int64_t lru_table_now_ms(const struct lru_table *table);

/* Looks `key` up, counting a hit, negative hit or miss (and an expiration
 * when a stale entry is dropped). A found fresh entry moves to the LRU head
 * and is stored in *node (negative ones too); otherwise *node is NULL. */
enum lru_result lru_table_lookup(struct lru_table *table, const void *key, size_t key_len,
                                 struct lru_node **node);

/* The fresh entry for `key` or NULL, without counting or touching the LRU
 * order (for membership tests such as "is this jti revoked"). A stale entry
 * is dropped and counted as an expiration. */
struct lru_node *lru_table_peek(struct lru_table *table, const void *key, size_t key_len);

/* Takes ownership of `node` (key, key_len and negative set) and links it,
 * fresh for ttl_ms (saturating; a ttl <= 0 makes it stale at once), in
 * place of any entry with the same key, evicting the LRU entry when the
 * table is full. Cannot fail. */
void lru_table_insert(struct lru_table *table, struct lru_node *node, int64_t ttl_ms);

/* Drops the entry for `key`. True if there was one. Not counted. */
bool lru_table_remove(struct lru_table *table, const void *key, size_t key_len);

/* Drops every entry for which match(node, context) is true and returns how
 * many: a linear scan, for rare actions (a revoked jti, a client's
 * tokens). Not counted as evictions or expirations. */
size_t lru_table_remove_if(struct lru_table *table,
                           bool (*match)(const struct lru_node *node, const void *context),
                           const void *context);

/* Drops every entry (not counted as evictions or expirations). */
void lru_table_clear(struct lru_table *table);

/* Drops every expired entry now; returns how many (counted as
 * expirations). */
size_t lru_table_sweep(struct lru_table *table);

/* The live counters; `size` is kept current. */
const struct cache_stats *lru_table_stats(const struct lru_table *table);

#endif
