/*
 * instance_stats.c - claiming, retiring and summing the per-process stats
 * slots in the shared segment (see instance_stats.h for the model).
 *
 * Slot states, all moved by compare-and-swap on `pid`:
 *   0     free: a starting process may claim it (0 -> its pid);
 *   pid   owned: only that process writes its counters and gauges;
 *   -1    being retired: one retirer (the master when it reaps a child, or
 *         the flusher sweeping for dead pids, whichever swaps first) adds
 *         the counters to the region's retired totals, zeroes the slot and
 *         frees it (-1 -> 0).
 * A reader summing totals while a slot is being retired may count that
 * slot's counters twice or not at all for that instant; the next read is
 * exact again. Nothing on a request's path takes a lock.
 *
 * Claiming zeroes the slot before publishing the pid, so a reader that sees
 * the new pid sees zero counters (release on the pid store, acquire on the
 * reader's load of it).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "tokend/instance_stats.h"

const uint32_t stat_latency_bounds_us[STAT_LATENCY_BOUNDS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

const struct stat_cache_layout stat_caches[STAT_CACHE_COUNT] = {
    {"clients", STAT_CACHE_HITS, STAT_CACHE_MISSES, STAT_CACHE_NEGATIVE_HITS, STAT_CACHE_EVICTIONS,
     STAT_CACHE_EXPIRATIONS, GAUGE_CACHE_SIZE},
    {"introspection", STAT_ICACHE_HITS, STAT_ICACHE_MISSES, STAT_ICACHE_NEGATIVE_HITS,
     STAT_ICACHE_EVICTIONS, STAT_ICACHE_EXPIRATIONS, GAUGE_ICACHE_SIZE},
};

static const char *const counter_names[STAT_COUNTER_COUNT] = {
    [STAT_REQUESTS] = "requests",
    [STAT_CACHE_HITS] = "cache_hits",
    [STAT_CACHE_MISSES] = "cache_misses",
    [STAT_CACHE_NEGATIVE_HITS] = "cache_negative_hits",
    [STAT_CACHE_EVICTIONS] = "cache_evictions",
    [STAT_CACHE_EXPIRATIONS] = "cache_expirations",
    [STAT_TOKENS_ISSUED] = "tokens_issued",
    [STAT_TOKEN_INVALID_REQUEST] = "invalid_request",
    [STAT_TOKEN_INVALID_CLIENT] = "invalid_client",
    [STAT_TOKEN_UNAUTHORIZED_CLIENT] = "unauthorized_client",
    [STAT_TOKEN_UNSUPPORTED_GRANT_TYPE] = "unsupported_grant_type",
    [STAT_TOKEN_INVALID_SCOPE] = "invalid_scope",
    [STAT_TOKEN_INVALID_TARGET] = "invalid_target",
    [STAT_TOKEN_TEMPORARILY_UNAVAILABLE] = "temporarily_unavailable",
    [STAT_TOKEN_SERVER_ERROR] = "server_error",
    [STAT_TOKEN_OTHER_ERROR] = "other_error",
    [STAT_QUEUE_ENQUEUED] = "queue_enqueued",
    [STAT_QUEUE_FULL] = "queue_full",
    [STAT_FLUSHED] = "flushed",
    [STAT_FLUSH_BATCHES] = "flush_batches",
    [STAT_FLUSH_ERRORS] = "flush_errors",
    [STAT_LATENCY_SUM_US] = "latency_sum_us",
    [STAT_ADMIN_EVENTS_APPLIED] = "admin_events_applied",
    [STAT_INTROSPECT_ACTIVE] = "introspect_active",
    [STAT_INTROSPECT_MALFORMED] = "introspect_malformed",
    [STAT_INTROSPECT_UNKNOWN_KEY] = "introspect_unknown_key",
    [STAT_INTROSPECT_BAD_ALG] = "introspect_bad_alg",
    [STAT_INTROSPECT_BAD_SIGNATURE] = "introspect_bad_signature",
    [STAT_INTROSPECT_WRONG_ISSUER] = "introspect_wrong_issuer",
    [STAT_INTROSPECT_EXPIRED] = "introspect_expired",
    [STAT_INTROSPECT_NOT_YET_VALID] = "introspect_not_yet_valid",
    [STAT_INTROSPECT_REVOKED] = "introspect_revoked",
    [STAT_INTROSPECT_CLIENT_REVOKED] = "introspect_client_revoked",
    [STAT_INTROSPECT_CLIENT_GONE] = "introspect_client_gone",
    [STAT_INTROSPECT_CACHED_INACTIVE] = "introspect_cached_inactive",
    [STAT_INTROSPECT_UNAVAILABLE] = "introspect_unavailable",
    [STAT_INTROSPECT_REFUSED] = "introspect_refused",
    [STAT_REVOKE_REVOKED] = "revoke_revoked",
    [STAT_REVOKE_NOT_OWNER] = "revoke_not_owner",
    [STAT_REVOKE_INACTIVE] = "revoke_inactive",
    [STAT_REVOKE_UNAVAILABLE] = "revoke_unavailable",
    [STAT_REVOKE_REFUSED] = "revoke_refused",
    [STAT_ICACHE_HITS] = "introspection_cache_hits",
    [STAT_ICACHE_MISSES] = "introspection_cache_misses",
    [STAT_ICACHE_NEGATIVE_HITS] = "introspection_cache_negative_hits",
    [STAT_ICACHE_EVICTIONS] = "introspection_cache_evictions",
    [STAT_ICACHE_EXPIRATIONS] = "introspection_cache_expirations",
};

const char *stat_counter_name(enum stat_counter counter)
{
    return (unsigned)counter < STAT_COUNTER_COUNT ? counter_names[counter] : "unknown";
}

int64_t stats_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void stats_region_format(struct stats_region *region)
{
    memset(region, 0, sizeof(*region));
}

static void slot_zero(struct stats_slot *slot)
{
    for (int i = 0; i < STAT_COUNTER_COUNT; i++) {
        atomic_store_explicit(&slot->counters[i], 0, memory_order_relaxed);
    }
    for (int i = 0; i < GAUGE_COUNT; i++) {
        atomic_store_explicit(&slot->gauges[i], 0, memory_order_relaxed);
    }
    for (int i = 0; i <= STAT_LATENCY_BOUNDS; i++) {
        atomic_store_explicit(&slot->latency[i], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&slot->role, STAT_ROLE_NONE, memory_order_relaxed);
    atomic_store_explicit(&slot->started_at_ms, 0, memory_order_relaxed);
}

struct stats_slot *stats_slot_claim(struct stats_region *region, pid_t pid, enum stat_role role,
                                    uint64_t events_seen)
{
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        struct stats_slot *slot = &region->slots[i];
        int32_t expected = 0;
        /* -1 first, so that no reader counts the slot while it is zeroed. */
        if (atomic_load_explicit(&slot->pid, memory_order_relaxed) != 0 ||
            !atomic_compare_exchange_strong_explicit(&slot->pid, &expected, -1,
                                                     memory_order_acq_rel, memory_order_relaxed)) {
            continue;
        }
        slot_zero(slot);
        atomic_store_explicit(&slot->role, role, memory_order_relaxed);
        atomic_store_explicit(&slot->started_at_ms, stats_wall_ms(), memory_order_relaxed);
        atomic_store_explicit(&slot->events_applied, events_seen, memory_order_relaxed);
        atomic_store_explicit(&slot->gauges[GAUGE_HEARTBEAT_MS], stats_wall_ms(),
                              memory_order_relaxed);
        atomic_store_explicit(&slot->pid, (int32_t)pid, memory_order_release);
        return slot;
    }
    return NULL;
}

static void retire_slot(struct stats_region *region, struct stats_slot *slot)
{
    for (int i = 0; i < STAT_COUNTER_COUNT; i++) {
        uint64_t v = atomic_load_explicit(&slot->counters[i], memory_order_relaxed);
        if (v != 0) {
            atomic_fetch_add_explicit(&region->retired[i], v, memory_order_relaxed);
        }
    }
    for (int i = 0; i <= STAT_LATENCY_BOUNDS; i++) {
        uint64_t v = atomic_load_explicit(&slot->latency[i], memory_order_relaxed);
        if (v != 0) {
            atomic_fetch_add_explicit(&region->retired_latency[i], v, memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(&region->retired_processes, 1, memory_order_relaxed);
    slot_zero(slot);
    atomic_store_explicit(&slot->pid, 0, memory_order_release);
}

bool stats_retire_pid(struct stats_region *region, pid_t pid)
{
    if (pid <= 0) {
        return false;
    }
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        struct stats_slot *slot = &region->slots[i];
        int32_t expected = (int32_t)pid;
        if (atomic_load_explicit(&slot->pid, memory_order_relaxed) == expected &&
            atomic_compare_exchange_strong_explicit(&slot->pid, &expected, -1, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            retire_slot(region, slot);
            return true;
        }
    }
    return false;
}

size_t stats_retire_dead(struct stats_region *region)
{
    size_t retired = 0;
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        int32_t pid = atomic_load_explicit(&region->slots[i].pid, memory_order_acquire);
        if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH && stats_retire_pid(region, pid)) {
            retired++;
        }
    }
    return retired;
}

size_t stats_retire_all(struct stats_region *region)
{
    size_t retired = 0;
    for (size_t i = 0; i < INSTANCE_STATS_SLOTS; i++) {
        int32_t pid = atomic_load_explicit(&region->slots[i].pid, memory_order_acquire);
        if (pid > 0 && stats_retire_pid(region, pid)) {
            retired++;
        }
    }
    return retired;
}

void stats_totals(const struct stats_region *region, struct stats_totals *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < STAT_COUNTER_COUNT; i++) {
        out->counters[i] = atomic_load_explicit(&region->retired[i], memory_order_relaxed);
    }
    for (int i = 0; i <= STAT_LATENCY_BOUNDS; i++) {
        out->latency[i] = atomic_load_explicit(&region->retired_latency[i], memory_order_relaxed);
    }
    out->retired_processes = atomic_load_explicit(&region->retired_processes, memory_order_relaxed);
    for (size_t s = 0; s < INSTANCE_STATS_SLOTS; s++) {
        const struct stats_slot *slot = &region->slots[s];
        if (atomic_load_explicit(&slot->pid, memory_order_acquire) <= 0) {
            continue;
        }
        for (int i = 0; i < STAT_COUNTER_COUNT; i++) {
            out->counters[i] += atomic_load_explicit(&slot->counters[i], memory_order_relaxed);
        }
        for (int i = 0; i <= STAT_LATENCY_BOUNDS; i++) {
            out->latency[i] += atomic_load_explicit(&slot->latency[i], memory_order_relaxed);
        }
    }
}

void stats_observe_latency(struct stats_slot *slot, uint64_t us)
{
    if (slot == NULL) {
        return;
    }
    int bucket = 0;
    while (bucket < STAT_LATENCY_BOUNDS && us > stat_latency_bounds_us[bucket]) {
        bucket++;
    }
    uint64_t v = atomic_load_explicit(&slot->latency[bucket], memory_order_relaxed);
    atomic_store_explicit(&slot->latency[bucket], v + 1, memory_order_relaxed);
    stats_add(slot, STAT_LATENCY_SUM_US, us);
}
