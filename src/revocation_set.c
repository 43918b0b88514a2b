/*
 * revocation_set.c - revoked token ids, on lru_table.c without a size limit.
 *
 * Each entry is one allocation: the table node and the jti. Its deadline is
 * the token's exp plus the leeway, as the caller computed it; past that the
 * verifier calls the token expired, so the entry can go (lookups and
 * revocation_set_sweep drop it). The table's LRU order plays no part here,
 * since the table never evicts; peek is used for lookups so membership
 * tests neither reorder nor count.
 *
 * Invariants: at most one entry per jti; every jti is 1 to
 * REVOCATION_JTI_MAX bytes.
 *
 * Failure: create returns NULL; add returns TK_ERROR when out of memory
 * before touching the set.
 */
#include <stdlib.h>
#include <string.h>

#include "tokend/revocation_set.h"
#include "tokend/status.h"
#include "tokend/token_queue.h"

#define REVOCATION_JTI_MAX (TOKEN_RECORD_JTI_SIZE - 1)
#define EXPECTED_REVOKED   4096

struct revoked_entry {
    struct lru_node node; /* first: the table hands back this pointer */
    char jti[TOKEN_RECORD_JTI_SIZE];
};

struct revocation_set {
    struct lru_table *table;
};

static void entry_free(struct lru_node *node)
{
    free(node);
}

struct revocation_set *revocation_set_create(cache_clock_fn clock, void *clock_context)
{
    struct revocation_set *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        return NULL;
    }
    const struct lru_table_options options = {
        .max_entries = 0,
        .expected_entries = EXPECTED_REVOKED,
        .free_node = entry_free,
        .clock = clock,
        .clock_context = clock_context,
    };
    set->table = lru_table_create(&options);
    if (set->table == NULL) {
        free(set);
        return NULL;
    }
    return set;
}

void revocation_set_destroy(struct revocation_set *set)
{
    if (set == NULL) {
        return;
    }
    lru_table_destroy(set->table);
    free(set);
}

int revocation_set_add(struct revocation_set *set, const char *jti, int64_t keep_ms)
{
    size_t len = jti != NULL ? strlen(jti) : 0;
    if (len == 0 || len > REVOCATION_JTI_MAX) {
        return TK_INVALID;
    }
    if (keep_ms <= 0) {
        return TK_OK;
    }
    struct lru_node *existing = lru_table_peek(set->table, jti, len);
    int64_t now_ms = lru_table_now_ms(set->table);
    if (existing != NULL && existing->expires_at_ms - now_ms >= keep_ms) {
        return TK_OK;
    }
    struct revoked_entry *entry = calloc(1, sizeof(*entry));
    if (entry == NULL) {
        return TK_ERROR;
    }
    memcpy(entry->jti, jti, len);
    entry->node.key = entry->jti;
    entry->node.key_len = len;
    lru_table_insert(set->table, &entry->node, keep_ms);
    return TK_OK;
}

bool revocation_set_contains(struct revocation_set *set, const char *jti)
{
    return jti != NULL && lru_table_peek(set->table, jti, strlen(jti)) != NULL;
}

size_t revocation_set_sweep(struct revocation_set *set)
{
    return lru_table_sweep(set->table);
}

size_t revocation_set_size(const struct revocation_set *set)
{
    return (size_t)lru_table_stats(set->table)->size;
}
