/*
 * introspection_cache.h - a worker's process-local cache of token
 * introspection answers (RFC 7662), on the TTL + LRU core of lru_table.h
 * (the same one as the client cache, with the same counters).
 *
 * - Keyed by the SHA-256 digest of the token, computed by the caller with
 *   introspection_cache_key(); the cache never sees or keeps the token.
 *   Keys are compared with CRYPTO_memcmp.
 * - Values are a fixed-size struct introspection_entry_data, copied in and
 *   out by value: nothing the caller passes is kept, nothing handed out
 *   points into the cache.
 * - Positive entries live min(ttl_ms, the token's remaining lifetime as the
 *   caller gives it), negative ones (token inactive) negative_ttl_ms.
 *   Expired entries are dropped when looked up and by
 *   introspection_cache_sweep.
 * - lookup/put/put_negative are O(1); the table never resizes (sized from
 *   max_entries at creation). A put into a full cache evicts the least
 *   recently used entry.
 * - introspection_cache_remove_jti (revocation) and _remove_client (a
 *   client changed or revoked all its tokens) are linear scans of every
 *   entry: both are rare and the cache is bounded, so no index is kept.
 * - The clock is injectable so tests can move time.
 * - Not thread-safe: one cache per worker process.
 */
#ifndef TOKEND_INTROSPECTION_CACHE_H
#define TOKEND_INTROSPECTION_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/lru_table.h"

#define INTROSPECTION_CACHE_KEY_SIZE 32 /* SHA-256 */

/* What a positive introspection answer needs. Every string is
 * NUL-terminated inside its array; a put refuses data where one is not. */
struct introspection_entry_data {
    bool active;
    char jti[33];
    char client_id[129];
    char sub[256];
    char scope[512];
    char aud[256];
    int64_t iat; /* seconds since the epoch, as in the token */
    int64_t exp;
};

struct introspection_cache_options {
    size_t max_entries;      /* >= 1 */
    int64_t ttl_ms;          /* > 0 */
    int64_t negative_ttl_ms; /* > 0 */
    cache_clock_fn clock;    /* NULL = CLOCK_MONOTONIC */
    void *clock_context;
};

struct introspection_cache;

enum introspection_cache_result {
    INTROSPECTION_CACHE_MISS = 0,
    INTROSPECTION_CACHE_HIT,
    INTROSPECTION_CACHE_NEGATIVE,
};

/* SHA-256 of the `len` bytes of `token` into `out`: the cache key. Returns
 * TK_OK, or TK_ERROR when OpenSSL fails (then `out` is zeroed and must not
 * be used as a key). */
int introspection_cache_key(const char *token, size_t len,
                            uint8_t out[INTROSPECTION_CACHE_KEY_SIZE]);

/* Returns a new empty cache, or NULL when out of memory, when the options
 * are invalid, or when no randomness is available for the hash key. */
struct introspection_cache *
introspection_cache_create(const struct introspection_cache_options *options);

/* Frees the cache and every entry. NULL is allowed. Cannot fail. */
void introspection_cache_destroy(struct introspection_cache *cache);

/* Looks `key` up, counting a hit, negative hit, or miss (and an expiration
 * when a stale entry is dropped). A hit or negative hit moves the entry to
 * the LRU head. On a hit *out receives a copy of the data; otherwise *out is
 * zeroed (active false). `out` may be NULL. Cannot fail. */
enum introspection_cache_result
introspection_cache_lookup(struct introspection_cache *cache,
                           const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE],
                           struct introspection_entry_data *out);

/* Stores a copy of `data` (which must have active set) under `key`,
 * replacing any entry for that key (positive or negative). It stays fresh
 * for min(ttl_ms, expires_in_ms): `expires_in_ms` is the token's remaining
 * lifetime (its exp, with whatever leeway the caller allows, minus the wall
 * clock now), so a cached answer never outlives the token. Evicts the LRU
 * entry when full. Returns TK_OK; TK_INVALID when `data` is not active, a
 * string in it is not terminated, or expires_in_ms <= 0 (the token is
 * already expired: nothing to cache); TK_ERROR when out of memory. The cache
 * is unchanged on any error. */
int introspection_cache_put(struct introspection_cache *cache,
                            const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE],
                            const struct introspection_entry_data *data, int64_t expires_in_ms);

/* Records that the token with digest `key` is inactive, for
 * negative_ttl_ms, replacing any positive entry. Returns TK_OK or TK_ERROR
 * (out of memory; cache unchanged). */
int introspection_cache_put_negative(struct introspection_cache *cache,
                                     const uint8_t key[INTROSPECTION_CACHE_KEY_SIZE]);

/* Drops every positive entry whose data.jti equals `jti` (a revoked
 * token), and returns how many. A linear scan of the whole cache. NULL or
 * "" removes nothing. Not counted as evictions or expirations. Cannot
 * fail. */
size_t introspection_cache_remove_jti(struct introspection_cache *cache, const char *jti);

/* Drops every positive entry whose data.client_id equals `client_id` (the
 * client changed: disabled, deleted, or all its tokens revoked), and
 * returns how many. A linear scan. Not counted. Cannot fail. */
size_t introspection_cache_remove_client(struct introspection_cache *cache, const char *client_id);

/* Drops every entry (not counted as evictions or expirations). Cannot
 * fail. */
void introspection_cache_clear(struct introspection_cache *cache);

/* Drops every expired entry now; returns how many (counted as
 * expirations). Cannot fail. */
size_t introspection_cache_sweep(struct introspection_cache *cache);

/* The live counters; `size` is kept current. Cannot fail. */
const struct cache_stats *introspection_cache_get_stats(const struct introspection_cache *cache);

#endif
