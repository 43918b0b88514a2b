/*
 * test_admin_events.c - the admin event ring and the stats slots, in one
 * process's memory (the ring and region are plain structs; the segment
 * only places them in shared memory).
 *
 * Checks: events come back in order exactly once; a reader that fell more
 * than a ring behind gets one clear instead of wrong events; an
 * over-long client id is refused and publishes nothing; slots are claimed
 * zeroed, retired into the totals exactly once, and reused; the latency
 * histogram puts values in the right buckets.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokend/admin_events.h"
#include "tokend/instance_stats.h"
#include "tokend/status.h"
#include "unit_test.h"

struct applied_log {
    int types[1024];
    char ids[1024][TOKEN_RECORD_CLIENT_ID_SIZE];
    size_t count;
};

static void record(void *context, enum admin_event_type type, const char *client_id,
                   int64_t expires_at_s)
{
    (void)expires_at_s;
    struct applied_log *log = context;
    if (log->count < 1024) {
        log->types[log->count] = (int)type;
        snprintf(log->ids[log->count], sizeof(log->ids[0]), "%s", client_id);
    }
    log->count++;
}

static struct admin_event_ring *new_ring(void)
{
    struct admin_event_ring *ring = malloc(sizeof(*ring));
    CHECK(ring != NULL && admin_event_ring_format(ring) == TK_OK);
    return ring;
}

static void test_events_in_order_once(void)
{
    struct admin_event_ring *ring = new_ring();
    uint64_t applied = admin_event_published(ring);
    struct applied_log log = {0};
    CHECK(admin_events_apply(ring, &applied, record, &log) == 0);
    uint64_t seq = 0;
    CHECK(admin_event_publish(ring, ADMIN_EVENT_INVALIDATE, "billing", &seq) == TK_OK);
    CHECK(seq == 1);
    CHECK(admin_event_publish(ring, ADMIN_EVENT_CLEAR, NULL, &seq) == TK_OK);
    CHECK(admin_event_publish(ring, ADMIN_EVENT_CLEANUP, NULL, &seq) == TK_OK);
    CHECK(seq == 3);
    CHECK(admin_events_apply(ring, &applied, record, &log) == 3);
    CHECK(applied == 3);
    CHECK(log.types[0] == ADMIN_EVENT_INVALIDATE && strcmp(log.ids[0], "billing") == 0);
    CHECK(log.types[1] == ADMIN_EVENT_CLEAR && log.types[2] == ADMIN_EVENT_CLEANUP);
    /* nothing new: nothing applied again */
    CHECK(admin_events_apply(ring, &applied, record, &log) == 0);
    CHECK(log.count == 3);
    free(ring);
}

static void test_reader_lapped_gets_one_clear(void)
{
    struct admin_event_ring *ring = new_ring();
    uint64_t applied = 0;
    struct applied_log log = {0};
    for (int i = 0; i < ADMIN_EVENT_RING_SIZE + 5; i++) {
        CHECK(admin_event_publish(ring, ADMIN_EVENT_INVALIDATE, "c", NULL) == TK_OK);
    }
    CHECK(admin_events_apply(ring, &applied, record, &log) == 1);
    CHECK(log.types[0] == ADMIN_EVENT_CLEAR);
    CHECK(applied == ADMIN_EVENT_RING_SIZE + 5);
    /* exactly a ring behind is still readable event by event */
    for (int i = 0; i < ADMIN_EVENT_RING_SIZE; i++) {
        CHECK(admin_event_publish(ring, ADMIN_EVENT_CLEANUP, NULL, NULL) == TK_OK);
    }
    log.count = 0;
    CHECK(admin_events_apply(ring, &applied, record, &log) == ADMIN_EVENT_RING_SIZE);
    CHECK(log.types[0] == ADMIN_EVENT_CLEANUP &&
          log.types[ADMIN_EVENT_RING_SIZE - 1] == ADMIN_EVENT_CLEANUP);
    free(ring);
}

static void test_bad_events_refused(void)
{
    struct admin_event_ring *ring = new_ring();
    char long_id[TOKEN_RECORD_CLIENT_ID_SIZE + 1];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    CHECK(admin_event_publish(ring, ADMIN_EVENT_INVALIDATE, long_id, NULL) == TK_INVALID);
    CHECK(admin_event_publish(ring, ADMIN_EVENT_INVALIDATE, "", NULL) == TK_INVALID);
    CHECK(admin_event_publish(ring, ADMIN_EVENT_INVALIDATE, NULL, NULL) == TK_INVALID);
    CHECK(admin_event_published(ring) == 0);
    free(ring);
}

static void test_slots_claim_retire_reuse(void)
{
    struct stats_region *region = malloc(sizeof(*region));
    CHECK(region != NULL);
    stats_region_format(region);
    pid_t me = getpid();
    struct stats_slot *a = stats_slot_claim(region, me, STAT_ROLE_WORKER, 7);
    struct stats_slot *b = stats_slot_claim(region, me + 100000, STAT_ROLE_WORKER, 0);
    CHECK(a != NULL && b != NULL && a != b);
    CHECK(atomic_load(&a->events_applied) == 7);
    stats_add(a, STAT_TOKENS_ISSUED, 5);
    stats_add(b, STAT_TOKENS_ISSUED, 3);
    stats_observe_latency(a, 50);      /* first bucket (<= 100 us) */
    stats_observe_latency(a, 100);     /* bound is inclusive */
    stats_observe_latency(b, 5000000); /* above the last bound: +Inf */
    struct stats_totals totals;
    stats_totals(region, &totals);
    CHECK(totals.counters[STAT_TOKENS_ISSUED] == 8);
    CHECK(totals.latency[0] == 2 && totals.latency[STAT_LATENCY_BOUNDS] == 1);
    CHECK(totals.counters[STAT_LATENCY_SUM_US] == 5000150);

    /* retiring keeps the counts, once */
    CHECK(stats_retire_pid(region, me + 100000));
    CHECK(!stats_retire_pid(region, me + 100000));
    stats_totals(region, &totals);
    CHECK(totals.counters[STAT_TOKENS_ISSUED] == 8);
    CHECK(totals.retired_processes == 1);
    /* the freed slot is reused, zeroed */
    struct stats_slot *c = stats_slot_claim(region, me + 200000, STAT_ROLE_WORKER, 0);
    CHECK(c == b);
    CHECK(stats_get(c, STAT_TOKENS_ISSUED) == 0);
    stats_totals(region, &totals);
    CHECK(totals.counters[STAT_TOKENS_ISSUED] == 8);
    /* a live pid is not retired by the dead-pid sweep; a dead one is */
    size_t before = (size_t)totals.retired_processes;
    CHECK(stats_retire_dead(region) == 1); /* me + 200000 does not exist */
    stats_totals(region, &totals);
    CHECK(totals.retired_processes == before + 1);
    CHECK(atomic_load(&a->pid) == me);
    free(region);
}

int main(void)
{
    RUN(test_events_in_order_once);
    RUN(test_reader_lapped_gets_one_clear);
    RUN(test_bad_events_refused);
    RUN(test_slots_claim_retire_reuse);
    return unit_test_finish();
}
