/*
 * client_cache.h - a worker's process-local cache of client records, on the
 * TTL + LRU core of lru_table.h.
 *
 * - get/put/remove are O(1); the table never resizes (sized from
 *   max_entries at creation).
 * - Positive entries live `ttl_ms`, negative ones (client id unknown to the
 *   database) `negative_ttl_ms`. Expired entries are dropped when looked up
 *   and by client_cache_sweep.
 * - A put into a full cache evicts the least recently used entry.
 * - Each positive entry can remember the last secret that passed the full
 *   PBKDF2 check, as HMAC-SHA256 under a per-process random key (never the
 *   secret itself), so a hit can confirm the same secret in constant time
 *   without PBKDF2, and a different secret always falls through to the full
 *   check.
 * - The clock is injectable so tests can move time.
 * - Not thread-safe: one cache per worker process.
 *
 * Entry pointers stay valid until the next lookup, put, remove, clear or
 * sweep (a lookup may free an expired entry).
 */
#ifndef TOKEND_CLIENT_CACHE_H
#define TOKEND_CLIENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/client_record.h"
#include "tokend/lru_table.h"

struct client_cache_options {
    size_t max_entries;      /* >= 1 */
    int64_t ttl_ms;          /* > 0 */
    int64_t negative_ttl_ms; /* > 0 */
    cache_clock_fn clock;    /* NULL = CLOCK_MONOTONIC */
    void *clock_context;
};

struct client_cache;
struct client_cache_entry;

enum client_cache_result {
    CLIENT_CACHE_MISS = 0,
    CLIENT_CACHE_HIT,
    CLIENT_CACHE_NEGATIVE,
};

/* Returns a new empty cache, or NULL when out of memory or when the
 * options are invalid. */
struct client_cache *client_cache_create(const struct client_cache_options *options);

/* Frees the cache and every entry. NULL is allowed. Cannot fail. */
void client_cache_destroy(struct client_cache *cache);

/* Looks `client_id` up, counting a hit, negative hit, or miss (and an
 * expiration when a stale entry is dropped). A hit moves the entry to the
 * LRU head and sets *entry; otherwise *entry is NULL. Cannot fail. */
enum client_cache_result client_cache_lookup(struct client_cache *cache, const char *client_id,
                                             struct client_cache_entry **entry);

/* The record held by a positive entry. Strings belong to the entry. */
const struct client_record *client_cache_entry_record(const struct client_cache_entry *entry);

/* Stores a deep copy of `record`, replacing any entry for the same id
 * (positive or negative), with a fresh TTL and no remembered secret.
 * Evicts the LRU entry when full. Returns TK_OK and sets *entry (may be
 * NULL), or TK_ERROR when out of memory (the cache is unchanged then). */
int client_cache_put(struct client_cache *cache, const struct client_record *record,
                     struct client_cache_entry **entry);

/* Records that `client_id` does not exist, for negative_ttl_ms. Replaces a
 * positive entry. Returns TK_OK or TK_ERROR (cache unchanged). */
int client_cache_put_negative(struct client_cache *cache, const char *client_id);

/* Drops the entry for `client_id`. Returns true if there was one. */
bool client_cache_remove(struct client_cache *cache, const char *client_id);

/* Drops every entry (not counted as evictions or expirations). */
void client_cache_clear(struct client_cache *cache);

/* Drops every expired entry now; returns how many (counted as
 * expirations). Cannot fail. */
size_t client_cache_sweep(struct client_cache *cache);

/* True when `secret` is the secret last remembered for this entry (constant
 * time comparison of keyed digests). False when none is remembered. */
bool client_cache_secret_matches(const struct client_cache *cache,
                                 const struct client_cache_entry *entry, const char *secret);

/* Remembers `secret` (as its keyed digest) after a full check passed.
 * Cannot fail. */
void client_cache_remember_secret(const struct client_cache *cache,
                                  struct client_cache_entry *entry, const char *secret);

/* The live counters; `size` is kept current. Cannot fail. */
const struct cache_stats *client_cache_get_stats(const struct client_cache *cache);

#endif
