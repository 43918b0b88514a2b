/*
 * token_queue.c - bounded MPSC ring of token records in shared memory.
 *
 * Choice: a Vyukov-style bounded queue (per-slot sequence numbers), adapted
 * to processes that can die at any instruction. Producers never take a lock:
 * an enqueue is a few atomic operations on the slot and the shared
 * enqueue_pos, so workers do not serialise on one another; the single
 * consumer (the flusher) needs no atomics beyond reading the slots.
 *
 * Slot states, for the slot that position p maps to (p & mask):
 *   sequence == p          free for position p (waiting for a producer)
 *   sequence == p + 1      published: the record for p is complete
 *   sequence >= p + cap    released or given up; free for the next lap
 * and `owner` holds (low 32 bits of the position, pid) of the last claim.
 *
 * Producer (claim, then publish; push does both):
 *   1. p = enqueue_pos; look at slot(p).
 *   2. sequence == p and owner still the claim of position p - cap (the
 *      previous lap): claim by CAS on `owner` ((p - cap, x) -> (p, my
 *      pid)). Exactly one producer wins a position. Requiring the previous
 *      lap's owner, not just "not p", matters: a producer whose reading of
 *      `sequence` is a lap old would otherwise steal a later lap's slot.
 *   3. Advance enqueue_pos from p to p+1 by CAS. Any producer that finds a
 *      slot already claimed for p (owner says so, or sequence > p) does the
 *      same, so a producer that dies between 2 and 3 cannot stop the ring.
 *   4. Copy the record, then publish with CAS(sequence, p -> p+1). The CAS,
 *      rather than a plain store, fails if the consumer gave the slot up
 *      meanwhile; the producer then reports TK_DECLINED and never hands
 *      that token out.
 *   sequence < p means the slot still holds the previous lap: the ring is
 *   full; the producer sleeps 1 ms and retries until its wait runs out.
 *
 * Consumer (peek, release): reads slots from dequeue_pos on. A published
 * slot is copied out. A slot whose owner is for this position but which is
 * not published belongs to a producer in the middle of step 4: if that pid
 * no longer exists (kill(pid, 0) == ESRCH), or the slot has stayed so for
 * stale_claim_ms, the consumer gives it up with CAS(sequence, p -> p+cap):
 * that producer never answered its client, so nothing a client holds is
 * lost, and a late publish fails its CAS. Otherwise the batch ends there.
 * After the batch is committed to PostgreSQL, release() frees each slot
 * with CAS(p+1 -> p+cap) (slots already given up are left alone) and only
 * then moves dequeue_pos. A consumer that dies before release leaves
 * dequeue_pos where it was: its successor re-reads and re-sends the same
 * records (the database insert is idempotent on jti).
 *
 * Ordering: claims happen in position order per producer and the consumer
 * reads in position order, so each producer's records arrive in the order
 * it pushed them. Memory ordering: acquire on every load a decision depends
 * on, release on publish and free; C11 atomics on lock-free 64-bit words
 * are address-free, so they work between processes sharing the mapping.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokend/logging.h"
#include "tokend/monotonic_clock.h"
#include "tokend/status.h"
#include "tokend/token_queue.h"

#define DEFAULT_STALE_CLAIM_MS 5000

static inline uint64_t owner_pack(uint64_t position, pid_t pid)
{
    return (position & 0xffffffffu) << 32 | (uint32_t)pid;
}

static inline bool owner_is_for(uint64_t owner, uint64_t position)
{
    return owner >> 32 == (position & 0xffffffffu);
}

static inline pid_t owner_pid(uint64_t owner)
{
    return (pid_t)(uint32_t)(owner & 0xffffffffu);
}

static size_t control_size(void)
{
    return (sizeof(struct token_queue_control) + 63) & ~(size_t)63;
}

size_t token_queue_region_size(uint64_t capacity)
{
    return control_size() + (size_t)capacity * sizeof(struct token_queue_slot);
}

void token_queue_format(void *region, uint64_t capacity)
{
    struct token_queue_control *control = region;
    struct token_queue_slot *slots = (void *)((char *)region + control_size());
    for (uint64_t i = 0; i < capacity; i++) {
        atomic_init(&slots[i].sequence, i);
        /* As if claimed one lap before the first position it serves. */
        atomic_init(&slots[i].owner, owner_pack(i - capacity, 0));
    }
    atomic_init(&control->enqueue_pos, 0);
    atomic_init(&control->skipped, 0);
    atomic_store_explicit(&control->dequeue_pos, 0, memory_order_release);
}

void token_queue_attach(struct token_queue *queue, void *region, uint64_t capacity)
{
    queue->control = region;
    queue->slots = (void *)((char *)region + control_size());
    queue->capacity = capacity;
    queue->mask = capacity - 1;
    queue->stall_position = UINT64_MAX;
    queue->stall_since_ms = 0;
    queue->stale_claim_ms = DEFAULT_STALE_CLAIM_MS;
    queue->self_pid = getpid();
}

void token_queue_set_producer_pid(struct token_queue *queue, pid_t pid)
{
    queue->self_pid = pid;
}

static void advance_enqueue(struct token_queue *queue, uint64_t position)
{
    uint64_t expected = position;
    atomic_compare_exchange_strong_explicit(&queue->control->enqueue_pos, &expected, position + 1,
                                            memory_order_acq_rel, memory_order_relaxed);
}

int token_queue_claim(struct token_queue *queue, int full_wait_ms, struct token_queue_claim *claim)
{
    const pid_t self = queue->self_pid;
    int64_t give_up_at_ms = -1;
    for (;;) {
        uint64_t position =
            atomic_load_explicit(&queue->control->enqueue_pos, memory_order_acquire);
        struct token_queue_slot *slot = &queue->slots[position & queue->mask];
        uint64_t sequence = atomic_load_explicit(&slot->sequence, memory_order_acquire);
        int64_t lag = (int64_t)(sequence - position);
        if (lag > 0) {
            /* Taken (and maybe published or given up) already. */
            advance_enqueue(queue, position);
            continue;
        }
        if (lag < 0) {
            /* The previous lap is not released yet: the ring is full. */
            int64_t now = monotonic_ms();
            if (give_up_at_ms < 0) {
                give_up_at_ms = now + full_wait_ms;
            }
            if (now >= give_up_at_ms) {
                return TK_UNAVAILABLE;
            }
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&pause, NULL);
            continue;
        }
        uint64_t owner = atomic_load_explicit(&slot->owner, memory_order_acquire);
        if (owner_is_for(owner, position)) {
            advance_enqueue(queue, position); /* claimed; help its claimer along */
            continue;
        }
        if (!owner_is_for(owner, position - queue->capacity)) {
            /* Our reading of `sequence` is older than this owner: the slot
             * has moved on since. Look again. */
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(&slot->owner, &owner,
                                                     owner_pack(position, self),
                                                     memory_order_acq_rel, memory_order_relaxed)) {
            continue;
        }
        advance_enqueue(queue, position);
        claim->position = position;
        claim->record = &slot->record;
        return TK_OK;
    }
}

int token_queue_publish(struct token_queue *queue, const struct token_queue_claim *claim)
{
    struct token_queue_slot *slot = &queue->slots[claim->position & queue->mask];
    uint64_t expected = claim->position;
    return atomic_compare_exchange_strong_explicit(&slot->sequence, &expected, claim->position + 1,
                                                   memory_order_release, memory_order_relaxed)
               ? TK_OK
               : TK_DECLINED;
}

int token_queue_push(struct token_queue *queue, const struct token_record *record, int full_wait_ms)
{
    struct token_queue_claim claim;
    int rc = token_queue_claim(queue, full_wait_ms, &claim);
    if (rc != TK_OK) {
        return rc;
    }
    memcpy(claim.record, record, sizeof(*record));
    return token_queue_publish(queue, &claim);
}

/* Decides about an unpublished head slot claimed for `position`. Returns
 * true when it was given up (and may be skipped). */
static bool give_up_if_abandoned(struct token_queue *queue, struct token_queue_slot *slot,
                                 uint64_t position, uint64_t owner)
{
    pid_t pid = owner_pid(owner);
    bool dead = pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
    bool stale = false;
    if (!dead) {
        int64_t now = monotonic_ms();
        if (queue->stall_position != position) {
            queue->stall_position = position;
            queue->stall_since_ms = now;
        }
        stale = now - queue->stall_since_ms >= queue->stale_claim_ms;
    }
    if (!dead && !stale) {
        return false;
    }
    uint64_t expected = position;
    if (!atomic_compare_exchange_strong_explicit(&slot->sequence, &expected,
                                                 position + queue->capacity, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        return false; /* published just now: read it on the next pass */
    }
    atomic_fetch_add_explicit(&queue->control->skipped, 1, memory_order_relaxed);
    log_warn("token queue: gave up slot %llu claimed by pid %d, which %s before publishing "
             "(its token was never handed out)",
             (unsigned long long)position, (int)pid, dead ? "died" : "stalled");
    return true;
}

size_t token_queue_visit(struct token_queue *queue, size_t max, token_queue_visit_fn visit,
                         void *context, uint64_t *span)
{
    uint64_t head = atomic_load_explicit(&queue->control->dequeue_pos, memory_order_acquire);
    size_t count = 0;
    uint64_t covered = 0;
    while (count < max && covered < queue->capacity) {
        uint64_t position = head + covered;
        struct token_queue_slot *slot = &queue->slots[position & queue->mask];
        uint64_t sequence = atomic_load_explicit(&slot->sequence, memory_order_acquire);
        if (sequence == position + 1) {
            visit(context, &slot->record);
            count++;
            covered++;
            continue;
        }
        if ((int64_t)(sequence - position) > 1) {
            covered++; /* given up earlier, not yet released */
            continue;
        }
        uint64_t owner = atomic_load_explicit(&slot->owner, memory_order_acquire);
        if (!owner_is_for(owner, position)) {
            break; /* nobody has claimed it: the end of the data */
        }
        if (give_up_if_abandoned(queue, slot, position, owner)) {
            covered++;
            continue;
        }
        break;
    }
    *span = covered;
    return count;
}

struct copy_out {
    struct token_record *out;
    size_t count;
};

static void copy_record(void *context, const struct token_record *record)
{
    struct copy_out *copy = context;
    memcpy(&copy->out[copy->count++], record, sizeof(*record));
}

size_t token_queue_peek(struct token_queue *queue, struct token_record *out, size_t max,
                        uint64_t *span)
{
    struct copy_out copy = {.out = out};
    return token_queue_visit(queue, max, copy_record, &copy, span);
}

void token_queue_release(struct token_queue *queue, uint64_t span)
{
    uint64_t head = atomic_load_explicit(&queue->control->dequeue_pos, memory_order_relaxed);
    for (uint64_t i = 0; i < span; i++) {
        uint64_t position = head + i;
        struct token_queue_slot *slot = &queue->slots[position & queue->mask];
        uint64_t expected = position + 1;
        atomic_compare_exchange_strong_explicit(&slot->sequence, &expected,
                                                position + queue->capacity, memory_order_release,
                                                memory_order_relaxed);
    }
    atomic_store_explicit(&queue->control->dequeue_pos, head + span, memory_order_release);
}

uint64_t token_queue_depth(const struct token_queue *queue)
{
    uint64_t head = atomic_load_explicit(&queue->control->dequeue_pos, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&queue->control->enqueue_pos, memory_order_acquire);
    return tail > head ? tail - head : 0;
}
