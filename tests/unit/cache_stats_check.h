/*
 * cache_stats_check.h - one assertion over every counter of a cache built
 * on lru_table.h (the client cache, the introspection cache), for their
 * unit tests. Include after unit_test.h.
 */
#ifndef TOKEND_TEST_CACHE_STATS_CHECK_H
#define TOKEND_TEST_CACHE_STATS_CHECK_H

#include <stdint.h>

#include "tokend/lru_table.h"

static inline void check_cache_stats(const struct cache_stats *stats, uint64_t hits,
                                     uint64_t misses, uint64_t negative_hits, uint64_t evictions,
                                     uint64_t expirations, uint64_t size)
{
    CHECK_INT(stats->hits, hits);
    CHECK_INT(stats->misses, misses);
    CHECK_INT(stats->negative_hits, negative_hits);
    CHECK_INT(stats->evictions, evictions);
    CHECK_INT(stats->expirations, expirations);
    CHECK_INT(stats->size, size);
}

#endif
