/*
 * instance_stats.h - the counters of every process of one tokend instance,
 * kept in the shared-memory segment so that any worker can answer for all.
 *
 * One slot per live process (worker or flusher). A process claims a free
 * slot at start and is its only writer: counters move with a relaxed load
 * and store of its own slot (no locked instruction on the hot path), and
 * readers in other processes load them relaxed. When a process dies its
 * slot is retired: its counters are added to the instance's `retired`
 * totals and the slot is freed for a new process, so totals keep what dead
 * processes counted and a replacement starts from zero.
 */
#ifndef TOKEND_INSTANCE_STATS_H
#define TOKEND_INSTANCE_STATS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Slots in a segment: workers (at most 1024 by configuration) and the
 * flusher, with room for replacements whose predecessors are not retired
 * yet. */
#define INSTANCE_STATS_SLOTS 1100

/* Monotonic counters. Names are the ones /metrics and the JSON use. */
enum stat_counter {
    STAT_REQUESTS,              /* FastCGI requests answered, all endpoints */
    STAT_CACHE_HITS,            /* client cache: fresh positive entry */
    STAT_CACHE_MISSES,          /* nothing usable cached: the database was asked */
    STAT_CACHE_NEGATIVE_HITS,   /* fresh "no such client" entry */
    STAT_CACHE_EVICTIONS,       /* pushed out by LRU */
    STAT_CACHE_EXPIRATIONS,     /* dropped because their TTL ran out */
    STAT_TOKENS_ISSUED,         /* 200 answers of the token endpoint */
    STAT_TOKEN_INVALID_REQUEST, /* token endpoint errors, by RFC 6749 code */
    STAT_TOKEN_INVALID_CLIENT,  /*   ... */
    STAT_TOKEN_UNAUTHORIZED_CLIENT,
    STAT_TOKEN_UNSUPPORTED_GRANT_TYPE,
    STAT_TOKEN_INVALID_SCOPE,
    STAT_TOKEN_INVALID_TARGET,
    STAT_TOKEN_TEMPORARILY_UNAVAILABLE, /* 503s: database down or queue full */
    STAT_TOKEN_SERVER_ERROR,
    STAT_TOKEN_OTHER_ERROR,    /* 405 and anything not above */
    STAT_QUEUE_ENQUEUED,       /* token records put into the queue */
    STAT_QUEUE_FULL,           /* 503s because the queue stayed full */
    STAT_FLUSHED,              /* records committed to PostgreSQL (flusher) */
    STAT_FLUSH_BATCHES,        /* COPY transactions committed (flusher) */
    STAT_FLUSH_ERRORS,         /* batches that failed and were retried (flusher) */
    STAT_LATENCY_SUM_US,       /* token endpoint: sum of handling times */
    STAT_ADMIN_EVENTS_APPLIED, /* admin events this process applied */
    /* introspection answers by outcome, in the order of enum
     * introspection_outcome (token_introspection.h) */
    STAT_INTROSPECT_ACTIVE,
    STAT_INTROSPECT_MALFORMED,
    STAT_INTROSPECT_UNKNOWN_KEY,
    STAT_INTROSPECT_BAD_ALG,
    STAT_INTROSPECT_BAD_SIGNATURE,
    STAT_INTROSPECT_WRONG_ISSUER,
    STAT_INTROSPECT_EXPIRED,
    STAT_INTROSPECT_NOT_YET_VALID,
    STAT_INTROSPECT_REVOKED,
    STAT_INTROSPECT_CLIENT_REVOKED,
    STAT_INTROSPECT_CLIENT_GONE,
    STAT_INTROSPECT_CACHED_INACTIVE,
    STAT_INTROSPECT_UNAVAILABLE,
    STAT_INTROSPECT_REFUSED, /* 4xx: bad request, client not authenticated or not allowed */
    /* revocation answers */
    STAT_REVOKE_REVOKED,     /* recorded and announced */
    STAT_REVOKE_NOT_OWNER,   /* 200, no effect: the token is another client's */
    STAT_REVOKE_INACTIVE,    /* 200, no effect: invalid, expired or already revoked */
    STAT_REVOKE_UNAVAILABLE, /* 503: the database could not record it */
    STAT_REVOKE_REFUSED,     /* 4xx */
    /* the introspection (validation) cache, like the client cache above */
    STAT_ICACHE_HITS,
    STAT_ICACHE_MISSES,
    STAT_ICACHE_NEGATIVE_HITS,
    STAT_ICACHE_EVICTIONS,
    STAT_ICACHE_EXPIRATIONS,
    STAT_COUNTER_COUNT
};

/* Values that go up and down; not kept when a process dies. */
enum stat_gauge {
    GAUGE_CACHE_SIZE,     /* entries in this worker's client cache */
    GAUGE_LAST_FLUSH_US,  /* flusher: duration of the last committed batch */
    GAUGE_DB_UP,          /* flusher: 1 when its last database contact worked */
    GAUGE_DB_LAST_OK_MS,  /* flusher: wall-clock ms of the last working contact */
    GAUGE_HEARTBEAT_MS,   /* wall-clock ms the process last went round its loop */
    GAUGE_QUEUE_OLDEST_S, /* flusher: issued_at of the oldest queued record, 0 = none */
    GAUGE_ICACHE_SIZE,    /* entries in this worker's introspection cache */
    GAUGE_REVOKED_JTIS,   /* revoked token ids this worker holds */
    GAUGE_COUNT
};

/* Where each cache's counters live, for the readers (admin stats,
 * metrics): the client cache and the introspection cache have the same
 * counters. */
struct stat_cache_layout {
    const char *name; /* "clients", "introspection" */
    enum stat_counter hits, misses, negative_hits, evictions, expirations;
    enum stat_gauge size;
};
#define STAT_CACHE_COUNT 2
extern const struct stat_cache_layout stat_caches[STAT_CACHE_COUNT];

/* Token endpoint latency: upper bounds in microseconds; one more bucket
 * counts what is above the last (+Inf). Counts are per bucket, not
 * cumulative; /metrics cumulates them. */
#define STAT_LATENCY_BOUNDS 12
extern const uint32_t stat_latency_bounds_us[STAT_LATENCY_BOUNDS];

enum stat_role { STAT_ROLE_NONE = 0, STAT_ROLE_WORKER = 1, STAT_ROLE_FLUSHER = 2 };

struct stats_slot {
    alignas(64) _Atomic int32_t pid; /* 0 free, -1 being retired, else the owner */
    _Atomic int32_t role;            /* enum stat_role */
    _Atomic int64_t started_at_ms;   /* wall clock */
    _Atomic uint64_t events_applied; /* admin event sequence this process has applied */
    _Atomic uint64_t counters[STAT_COUNTER_COUNT];
    _Atomic int64_t gauges[GAUGE_COUNT];
    _Atomic uint64_t latency[STAT_LATENCY_BOUNDS + 1];
};

struct stats_region {
    alignas(64) _Atomic uint64_t retired[STAT_COUNTER_COUNT];
    _Atomic uint64_t retired_latency[STAT_LATENCY_BOUNDS + 1];
    _Atomic uint64_t retired_processes;
    struct stats_slot slots[INSTANCE_STATS_SLOTS];
};

/* Totals over the retired counts and every live slot. */
struct stats_totals {
    uint64_t counters[STAT_COUNTER_COUNT];
    uint64_t latency[STAT_LATENCY_BOUNDS + 1];
    uint64_t retired_processes;
};

const char *stat_counter_name(enum stat_counter counter);

/* Zeroes a region (segment creation). */
void stats_region_format(struct stats_region *region);

/* Claims a free slot for `pid` with `role`, zeroed, started now, having
 * applied admin events up to `events_seen`. NULL when every slot is taken
 * (the process then runs without shared counters; logged by the caller). */
struct stats_slot *stats_slot_claim(struct stats_region *region, pid_t pid, enum stat_role role,
                                    uint64_t events_seen);

/* Retires the slot of `pid` if it holds one: its counters join the retired
 * totals and the slot is freed. Safe to race with another retirer of the
 * same pid (one wins). Returns true when this call retired it. */
bool stats_retire_pid(struct stats_region *region, pid_t pid);

/* Retires the slots whose process no longer exists (kill(pid, 0) fails
 * with ESRCH). Returns how many. */
size_t stats_retire_dead(struct stats_region *region);

/* Retires every occupied slot: for a master taking over a segment left by
 * an instance that crashed (all its processes are gone, though their pids
 * may have been reused since). Returns how many. */
size_t stats_retire_all(struct stats_region *region);

/* Sums the retired totals and every live slot into `out`. */
void stats_totals(const struct stats_region *region, struct stats_totals *out);

/* One relaxed increment by the slot's owner (no-op on NULL). */
static inline void stats_add(struct stats_slot *slot, enum stat_counter counter, uint64_t n)
{
    if (slot != NULL) {
        uint64_t v = atomic_load_explicit(&slot->counters[counter], memory_order_relaxed);
        atomic_store_explicit(&slot->counters[counter], v + n, memory_order_relaxed);
    }
}

static inline void stats_set(struct stats_slot *slot, enum stat_counter counter, uint64_t v)
{
    if (slot != NULL) {
        atomic_store_explicit(&slot->counters[counter], v, memory_order_relaxed);
    }
}

static inline void stats_gauge_set(struct stats_slot *slot, enum stat_gauge gauge, int64_t v)
{
    if (slot != NULL) {
        atomic_store_explicit(&slot->gauges[gauge], v, memory_order_relaxed);
    }
}

static inline uint64_t stats_get(const struct stats_slot *slot, enum stat_counter counter)
{
    return atomic_load_explicit(&slot->counters[counter], memory_order_relaxed);
}

static inline int64_t stats_gauge_get(const struct stats_slot *slot, enum stat_gauge gauge)
{
    return atomic_load_explicit(&slot->gauges[gauge], memory_order_relaxed);
}

/* Counts one token endpoint answer that took `us` microseconds. */
void stats_observe_latency(struct stats_slot *slot, uint64_t us);

/* Wall-clock milliseconds (CLOCK_REALTIME). */
int64_t stats_wall_ms(void);

#endif
