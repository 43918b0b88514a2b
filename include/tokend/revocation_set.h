/*
 * revocation_set.h - the ids (jti) of revoked tokens a worker knows of, each
 * kept until the token would have expired anyway, on the TTL core of
 * lru_table.h with no size limit: a revocation must never be forgotten to
 * make room.
 *
 * Filled from the revocations table when the worker starts (and again
 * after it may have missed events), and from ADMIN_EVENT_REVOKE events.
 * Not thread-safe: one set per worker process.
 */
#ifndef TOKEND_REVOCATION_SET_H
#define TOKEND_REVOCATION_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokend/lru_table.h"

struct revocation_set;

/* A new empty set, or NULL (out of memory, no randomness). `clock` as in
 * lru_table.h (NULL = CLOCK_MONOTONIC). */
struct revocation_set *revocation_set_create(cache_clock_fn clock, void *clock_context);

/* Frees the set. NULL is allowed. */
void revocation_set_destroy(struct revocation_set *set);

/* Remembers that `jti` is revoked for `keep_ms` more milliseconds (the
 * token's remaining lifetime plus the verifier's leeway; the caller works
 * it out from the wall clock). keep_ms <= 0 adds nothing: the token is
 * inactive by its exp already. Adding a jti again keeps the longer of the
 * two lifetimes. TK_OK, TK_INVALID (empty or over-long jti) or TK_ERROR
 * (out of memory: the set is unchanged, and the caller must not treat the
 * token as live). */
int revocation_set_add(struct revocation_set *set, const char *jti, int64_t keep_ms);

/* True when `jti` is revoked. */
bool revocation_set_contains(struct revocation_set *set, const char *jti);

/* Drops the entries whose tokens have expired; returns how many. */
size_t revocation_set_sweep(struct revocation_set *set);

/* How many jtis the set holds. */
size_t revocation_set_size(const struct revocation_set *set);

#endif
